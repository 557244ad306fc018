"""Per-(query, note sentence) features for the learned relevance model: lexical and dense
similarity to the query (and, for ST2, to the patient's words), structure (header, position,
length) and similarity to the sentences that score best.

:func:`feature_tensors` returns one ``(queries, sentences, features)`` array per case, with the
columns named by :data:`FEATURES`. Only the official input of a subtask is read: for ST2 the
clinician question (the patient question when absent) and the narrative; for ST4 each answer
sentence's text, the clinician question and the narrative; never labels or citations.

Dense vectors come from an :class:`Encoder` (all-MiniLM-L6-v2 from its wheel by default) that
encodes every distinct text once per call and may keep a disk cache (the benchmarks use one).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path

import numpy as np

from ehrqa.data.case import Case

LEXICAL = ("bm25", "tfidf", "tfidf_raw")
DENSE = ("dense", "dense_minmax", "dense_rank", "dense_topsim", "dense_z", "neighbour_dense")
CONTEXT = ("ctx_tfidf", "ctx_dense", "narrative_dense")  # ctx: ST2 the patient's words, ST4 the clinician question
STRUCTURE = ("header", "position", "log_words", "log_sentences", "centrality", "tfidf_any")
FEATURES = LEXICAL + DENSE + CONTEXT + STRUCTURE
LEXICAL_FEATURES = LEXICAL + ("ctx_tfidf",) + tuple(f for f in STRUCTURE if f != "centrality")
# The features whose direction agrees across sources (position, note length and centrality flip
# between clinical notes, consumer passages and the sample, so a model leaning on them does not
# transfer to a source it never saw; bench_heldout.py measures both sets).
ROBUST_FEATURES = (
    "dense",
    "dense_topsim",
    "tfidf",
    "bm25",
    "header",
    "log_words",
    "ctx_dense",
    "dense_z",
    "neighbour_dense",
    "narrative_dense",
    "tfidf_any",
)

_HEADER = re.compile(r"^[A-Z0-9 /&,()-]{3,}:?$|^[^.!?]{1,40}:$")


def is_header(text: str) -> bool:
    """A section header or label line: upper-case words, or a short phrase ending in a colon."""
    stripped = " ".join(text.split())
    return bool(stripped) and len(stripped.split()) <= 6 and bool(_HEADER.match(stripped))


def is_fragment(text: str, min_words: int = 4) -> bool:
    """A header, or too short to stand alone as an answer sentence."""
    return is_header(text) or len(text.split()) < min_words


class Encoder:
    """Unit-length sentence vectors (:func:`ehrqa.retrieval.dense.encode`), each distinct text
    encoded once per instance; optional cache dir; ``dtype``: ``bf16``, ``fp32`` or None (auto);
    ``tuned``: the fp16 top layers of a fine-tuned encoder (:mod:`ehrqa.train.encoder`)."""

    def __init__(
        self,
        model: str | None = None,
        cache: str | Path | None = None,
        batch_size: int | None = None,
        dtype: str | None = None,
        tuned: str | Path | None = None,
    ) -> None:
        from ehrqa.retrieval.dense import ENCODE_BATCH, encoder_dtype

        self.model, self.batch_size = model, batch_size or ENCODE_BATCH
        self.dtype = encoder_dtype(dtype)
        self.tuned = str(tuned) if tuned else None
        self.cache = Path(cache) if cache else None
        self._memory: dict[str, np.ndarray] = {}

    @cached_property
    def _salt(self) -> str:
        """The disk cache keys' salt: a tuned encoder's weights' hash, so a retrained one never
        reads stale vectors (read only when a cache is in use)."""
        if not self.tuned or not Path(self.tuned).is_file():  # a missing file fails on loading, in one line
            return ""
        return "\0" + hashlib.sha1(Path(self.tuned).read_bytes()).hexdigest()

    def _key(self, text: str) -> str:
        dtype = "" if self.dtype == "fp32" else f"\0{self.dtype}"  # fp32 keys as before bf16 existed
        return hashlib.sha1(f"{self.model or 'minilm'}{dtype}{self._salt}\0{text}".encode()).hexdigest()

    def encode(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        todo = [t for t in dict.fromkeys(texts) if t not in self._memory]
        if self.cache is not None and todo:
            self._load_cached(todo)
            todo = [t for t in todo if t not in self._memory]
        if todo:
            new = self._encode(todo)
            self._memory.update(new)
            if self.cache is not None:
                self._store(new)
        return {t: self._memory[t] for t in texts}

    def _encode(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        """Vectors of texts not seen yet (subclasses swap the encoder here)."""
        from ehrqa.retrieval.dense import encode

        return encode(texts, self.model, self.batch_size, self.dtype, self.tuned)

    def _load_cached(self, texts: Sequence[str]) -> None:
        path = self.cache / "vectors.npz"
        if not path.is_file():
            return
        if not hasattr(self, "_disk"):
            with np.load(path) as data:
                self._disk = dict(zip(data["keys"].tolist(), data["vectors"], strict=True))
        for t in texts:
            v = self._disk.get(self._key(t))
            if v is not None:
                self._memory[t] = v

    def _store(self, new: dict[str, np.ndarray]) -> None:
        self.cache.mkdir(parents=True, exist_ok=True)
        disk = getattr(self, "_disk", {})
        disk.update({self._key(t): v for t, v in new.items()})
        self._disk = disk
        keys = np.array(list(disk))
        tmp = self.cache / "vectors.tmp.npz"
        np.savez(tmp, keys=keys, vectors=np.stack(list(disk.values())))
        tmp.replace(self.cache / "vectors.npz")


def queries_for(subtask: int, case: Case) -> tuple[list[str], str]:
    """The queries of a case for a subtask and its context text (see the module docstring)."""
    question = case.clinician_question or case.patient_question
    if subtask == 2:
        return [question], case.patient_question if case.patient_question != question else case.narrative
    if subtask == 4:
        return [a.text for a in case.answer_sentences or ()], question or ""
    raise ValueError(f"learned relevance serves subtasks 2 and 4, not {subtask}")


def _row_max(m: np.ndarray) -> np.ndarray:
    top = m.max(axis=1, keepdims=True) if m.size else m
    return np.where(top > 0, np.clip(m, 0, None) / np.where(top > 0, top, 1), 0.0)


def _row_minmax(m: np.ndarray) -> np.ndarray:
    if not m.size:
        return m
    lo, hi = m.min(axis=1, keepdims=True), m.max(axis=1, keepdims=True)
    return np.where(hi > lo, (m - lo) / np.where(hi > lo, hi - lo, 1), 1.0)


def _row_rank(m: np.ndarray) -> np.ndarray:
    """0 for the best sentence of a row, 1 for the worst."""
    n = m.shape[1]
    ranks = np.argsort(np.argsort(-m, axis=1, kind="stable"), axis=1)
    return ranks / max(1, n - 1)


def feature_tensors(
    subtask: int, cases: Sequence[Case], encoder: Encoder | None = None, names: Sequence[str] = FEATURES
) -> list[np.ndarray]:
    """Per case, a ``(queries, sentences, len(names))`` float array of the named features."""
    from ehrqa.retrieval.bm25 import BM25Scorer
    from ehrqa.retrieval.tfidf import TfidfScorer

    unknown = sorted(set(names) - set(FEATURES))
    if unknown:
        raise ValueError(f"unknown relevance features {', '.join(unknown)}: expected some of {', '.join(FEATURES)}")
    dense_needed = any(n in DENSE or n in ("ctx_dense", "narrative_dense", "centrality") for n in names)
    texts = [(queries_for(subtask, c), [s.text for s in c.sentences]) for c in cases]
    vectors: dict[str, np.ndarray] = {}
    if dense_needed:
        encoder = encoder or Encoder()
        narratives = [c.narrative for c in cases if c.narrative]
        vectors = encoder.encode([t for (qs, ctx), ss in texts for t in (*qs, ctx, *ss)] + narratives)
    bm25, tfidf = BM25Scorer(), TfidfScorer()
    out = []
    for case, ((queries, context), sentences) in zip(cases, texts, strict=True):
        nq, ns = len(queries), len(sentences)
        if not nq or not ns:
            out.append(np.zeros((nq, ns, len(names))))
            continue
        cols: dict[str, np.ndarray] = {}
        cols["bm25"] = _row_max(bm25.score_matrix(queries, sentences))
        raw_tfidf = tfidf.score_matrix(queries, sentences)
        cols["tfidf"], cols["tfidf_raw"] = _row_max(raw_tfidf), raw_tfidf
        cols["tfidf_any"] = (raw_tfidf > 0).astype(float)
        ctx_tfidf = _row_max(tfidf.score_matrix([context], sentences)) if context else np.zeros((1, ns))
        cols["ctx_tfidf"] = np.repeat(ctx_tfidf, nq, axis=0)
        words = np.array([max(1, len(s.split())) for s in sentences], dtype=float)
        per_sentence = {
            "header": np.array([float(is_header(s)) for s in sentences]),
            "position": np.arange(ns) / max(1, ns - 1),
            "log_words": np.log(words),
            "log_sentences": np.full(ns, np.log(ns)),
        }
        if dense_needed:
            s_vec = np.stack([vectors[s] for s in sentences])
            q_vec = np.stack([vectors[q] for q in queries])
            dense = q_vec @ s_vec.T
            cols["dense"], cols["dense_minmax"], cols["dense_rank"] = dense, _row_minmax(dense), _row_rank(dense)
            spread = dense.std(axis=1, keepdims=True)
            cols["dense_z"] = (dense - dense.mean(axis=1, keepdims=True)) / np.where(spread > 1e-6, spread, 1.0)
            floor = dense.min(axis=1, keepdims=True)
            padded = np.concatenate([floor, dense, floor], axis=1)
            cols["neighbour_dense"] = np.maximum(padded[:, :-2], padded[:, 2:])  # the better adjacent sentence
            similarity = s_vec @ s_vec.T
            top = np.argsort(-dense, axis=1, kind="stable")[:, : min(3, ns)]
            cols["dense_topsim"] = np.stack([similarity[row].mean(axis=0) for row in top])
            ctx = s_vec @ vectors[context] if context else np.zeros(ns)
            cols["ctx_dense"] = np.repeat(ctx[None, :], nq, axis=0)
            narrative = s_vec @ vectors[case.narrative] if case.narrative else np.zeros(ns)
            cols["narrative_dense"] = np.repeat(narrative[None, :], nq, axis=0)
            per_sentence["centrality"] = (similarity.sum(axis=1) - 1) / max(1, ns - 1)
        for name, values in per_sentence.items():
            cols[name] = np.repeat(values[None, :], nq, axis=0)
        out.append(np.stack([cols[n] for n in names], axis=-1).astype(float))
    return out
