"""Cross-encoder: a fine-tuned MiniLM reads (query, note sentence) together and
outputs one relevance logit.

No pretrained reranker exists offline, so the model is all-MiniLM-L6-v2 with a new
one-logit head, fine-tuned by :mod:`ehrqa.train.cross_encoder`. Only the head and the
top encoder layers are trained, so a model directory stores just those tensors
(``cross_encoder.safetensors``, fp16) and they are laid over the shipped base model at
load time. The directory's ``aligner.json`` names the base model and the stored layers.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

from ehrqa.retrieval.base import Request, Scorer

CONFIG_NAME = "aligner.json"
WEIGHTS_NAME = "cross_encoder.safetensors"


def new_cross_encoder(base_model: str | None, max_length: int = 128):
    """A CrossEncoder with a fresh one-logit head on top of ``base_model`` (default: shipped MiniLM)."""
    import logging

    from sentence_transformers import CrossEncoder
    from transformers.utils import logging as hf_logging

    from ehrqa.progress import model_loading
    from ehrqa.retrieval.dense import resolve_model

    # Both reports are expected here, for every load: transformers' "classifier newly initialised"
    # and sentence-transformers' "Converting SentenceTransformer model ... to CrossEncoder".
    verbosity = hf_logging.get_verbosity()
    st_logger = logging.getLogger("sentence_transformers")
    st_level = st_logger.level
    hf_logging.set_verbosity_error()
    st_logger.setLevel(logging.ERROR)
    try:
        with model_loading():
            return CrossEncoder(resolve_model(base_model), num_labels=1, max_length=max_length, device="cpu")
    finally:
        hf_logging.set_verbosity(verbosity)
        st_logger.setLevel(st_level)


@lru_cache(maxsize=2)
def load_cross_encoder(model_dir: str):
    """The fine-tuned cross-encoder stored in ``model_dir`` (base model + stored trained tensors)."""
    import torch
    from safetensors.torch import load_file

    config = json.loads((Path(model_dir) / CONFIG_NAME).read_text(encoding="utf-8"))["cross_encoder"]
    model = new_cross_encoder(config.get("base_model"), config.get("max_length", 128))
    trained = load_file(str(Path(model_dir) / config.get("weights", WEIGHTS_NAME)))
    params = dict(model.model.named_parameters())
    unknown = sorted(set(trained) - set(params))
    if unknown:
        raise ValueError(f"{model_dir}: cross-encoder weights name unknown tensors: {', '.join(unknown[:3])}")
    with torch.no_grad():
        for name, tensor in trained.items():
            params[name].copy_(tensor.to(params[name].dtype))
    model.model.eval()
    return model


class CrossEncoderScorer(Scorer):
    name = "cross_encoder"

    def __init__(self, model, batch_size: int = 64) -> None:
        self.model, self.batch_size = model, batch_size

    @classmethod
    def from_model_dir(cls, model_dir, batch_size: int = 64) -> CrossEncoderScorer:
        if model_dir is None:
            raise ValueError("the cross-encoder scorer needs a model directory holding trained weights")
        return cls(load_cross_encoder(str(Path(model_dir).resolve())), batch_size=batch_size)

    def score_pairs(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        if not pairs:
            return np.zeros(0)
        logits = self.model.predict(
            list(pairs), batch_size=self.batch_size, show_progress_bar=False, activation_fn=_identity()
        )
        return np.asarray(logits, dtype=float).reshape(-1)

    def score_requests(
        self, requests: Sequence[Request], candidates: Sequence[np.ndarray] | None = None
    ) -> list[np.ndarray]:
        """Scores for every (query, sentence) pair; with ``candidates`` (one boolean matrix per
        request) only the marked pairs are scored and the others are NaN."""
        pairs, where = [], []
        out = [np.full((len(q), len(s)), np.nan) for q, s in requests]
        for r, (queries, sentences) in enumerate(requests):
            for i, query in enumerate(queries):
                for j, sentence in enumerate(sentences):
                    if candidates is None or candidates[r][i, j]:
                        pairs.append((query, sentence))
                        where.append((r, i, j))
        for (r, i, j), value in zip(where, self.score_pairs(pairs), strict=True):
            out[r][i, j] = value
        return out

    def score_matrix(self, queries: Sequence[str], sentences: Sequence[str]) -> np.ndarray:
        return self.score_requests([(queries, sentences)])[0]


def _identity():
    import torch

    return torch.nn.Identity()
