"""Per-(query, note sentence) features: the first stage of every aligner (features -> combiner ->
decision rule, :mod:`ehrqa.retrieval.aligner`). Lexical and dense similarity to the query (and,
for ST2, to the patient's words), structure (header, position, length), similarity to the
sentences that score best, and a trained cross-encoder's score.

:func:`feature_tensors` returns one ``(queries, sentences, features)`` array per case, with the
columns named by :data:`FEATURES` (and :data:`MODEL_FEATURES`). Only the official input of a
subtask is read: for ST2 the clinician question (the patient question when absent) and the
narrative; for ST4 each answer sentence's text, the clinician question and the narrative; never
labels or citations. The query can be widened (:data:`QUERY_MODES`).

Dense vectors come from an :class:`Encoder` (all-MiniLM-L6-v2 from its wheel by default) that
encodes every distinct text once per call and may keep a disk cache (the benchmarks use one).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ehrqa.data.case import Case

LEXICAL = ("bm25", "tfidf", "tfidf_raw")
DENSE = ("dense", "dense_minmax", "dense_rank", "dense_topsim", "dense_z", "neighbour_dense")
CONTEXT = ("ctx_tfidf", "ctx_dense", "narrative_dense")  # ctx: ST2 the patient's words, ST4 the clinician question
STRUCTURE = ("header", "position", "log_words", "log_sentences", "centrality", "tfidf_any")
FEATURES = LEXICAL + DENSE + CONTEXT + STRUCTURE
# A trained model's score (the model directory's cross-encoder): raw logits, NaN where a
# :class:`Rerank` left the pair unscored.
MODEL_FEATURES = ("cross_encoder",)
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
        from ehrqa.retrieval.dense import ENCODE_BATCH, encoder_dtype, prefixes

        self.model, self.batch_size = model, batch_size or ENCODE_BATCH
        self.prefixes = prefixes(model)
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

    def encode(self, texts: Sequence[str], role: str = "document") -> dict[str, np.ndarray]:
        """Text -> vector; ``role`` (``query``: what is asked, ``document``: a note sentence) picks
        the text's prefix, for models that expect one (:func:`ehrqa.retrieval.dense.prefixes`)."""
        prefix = self.prefixes.get(role, "")
        vectors = self._vectors([prefix + t for t in texts])
        return {t: vectors[prefix + t] for t in texts}

    def _vectors(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
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


QUERY_MODES = {2: ("clinician", "patient", "clinician+patient"), 4: ("answer", "answer+clinician")}


def st2_query(case: Case, mode: str = "clinician") -> str:
    """The ST2 query: the clinician question (the patient's when absent), optionally with the patient's."""
    clinician = case.clinician_question or case.patient_question
    if mode == "clinician":
        return clinician
    if mode == "patient":
        return case.patient_question
    if mode == "clinician+patient":
        return f"{clinician} {case.patient_question}" if case.patient_question != clinician else clinician
    raise ValueError(f"unknown ST2 query mode {mode!r}: expected one of {', '.join(QUERY_MODES[2])}")


def st4_queries(case: Case, mode: str = "answer") -> list[str]:
    """The ST4 queries: one per answer sentence."""
    texts = [a.text for a in case.answer_sentences or ()]
    if mode == "answer":
        return texts
    if mode == "answer+clinician":
        question = case.clinician_question or ""
        return [f"{t} {question}".strip() for t in texts]
    raise ValueError(f"unknown ST4 query mode {mode!r}: expected one of {', '.join(QUERY_MODES[4])}")


def queries_for(subtask: int, case: Case, mode: str | None = None) -> tuple[list[str], str]:
    """The queries of a case for a subtask (``mode``: one of :data:`QUERY_MODES`, None the first)
    and its context text: ST2 the patient's words (the narrative when they are the query), ST4
    the clinician question."""
    if subtask not in QUERY_MODES:
        raise ValueError(f"the aligner serves subtasks 2 and 4, not {subtask}")
    mode = mode or QUERY_MODES[subtask][0]
    question = case.clinician_question or case.patient_question
    if subtask == 2:
        context = case.patient_question if case.patient_question != question else case.narrative
        return [st2_query(case, mode)], context
    return st4_queries(case, mode), question or ""


NORMALISERS = ("max", "minmax")
DEFAULT_NORMALISE = {"bm25": "max", "tfidf": "max", "dense": "minmax", "cross_encoder": "minmax"}


def normalise(scores: np.ndarray, how: str) -> np.ndarray:
    """One query's scores mapped to [0, 1] (``max``: over the best, negatives 0; ``minmax``);
    NaN (unscored) entries become 0."""
    s = np.asarray(scores, dtype=float)
    out = np.zeros_like(s)
    ok = ~np.isnan(s)
    if not ok.any():
        return out
    top, bottom = s[ok].max(), s[ok].min()
    if how == "max":
        if top > 0:
            out[ok] = np.clip(s[ok], 0, None) / top
    elif how == "minmax":
        if top > bottom:
            out[ok] = (s[ok] - bottom) / (top - bottom)
        else:
            out[ok] = 1.0
    else:
        raise ValueError(f"unknown normalisation {how!r}: expected one of {', '.join(NORMALISERS)}")
    return out


def normalise_rows(matrix: np.ndarray, how: str) -> np.ndarray:
    """:func:`normalise` applied to each query row of a (queries x sentences) matrix."""
    matrix = np.asarray(matrix, dtype=float)
    return np.array([normalise(row, how) for row in matrix]).reshape(matrix.shape)


def top_mask(matrix: np.ndarray, top: int) -> np.ndarray:
    """True at each row's ``top`` best entries."""
    mask = np.zeros(matrix.shape, dtype=bool)
    for i, row in enumerate(matrix):
        mask[i, np.argsort(-row, kind="stable")[:top]] = True
    return mask


@dataclass(frozen=True)
class Rerank:
    """Score the cross-encoder feature only on each query's ``top`` candidates: the best by the
    mean of the ``by`` features, each normalised per query as ``normalise`` says (default
    :data:`DEFAULT_NORMALISE`). The other pairs stay NaN (unscored)."""

    top: int
    by: tuple[str, ...] = ("bm25", "tfidf")
    normalise: dict[str, str] = field(default_factory=dict)

    def candidates(self, columns: dict[str, np.ndarray]) -> np.ndarray:
        """The (queries x sentences) mask of pairs to score, from one case's feature columns."""
        missing = [n for n in self.by if n not in columns]
        if missing:
            raise ValueError(f"reranking needs the {', '.join(missing)} scores")
        how = {**DEFAULT_NORMALISE, **self.normalise}
        mean = np.mean([normalise_rows(columns[n], how.get(n, "minmax")) for n in self.by], axis=0)
        return top_mask(mean, self.top)


class Vectors(NamedTuple):
    """The dense vectors of a batch of cases: what is asked (queries, context, narrative; the
    ``query`` role) and the note sentences (the ``document`` role), each by text."""

    asked: dict[str, np.ndarray]
    documents: dict[str, np.ndarray]


def _row_rank(m: np.ndarray) -> np.ndarray:
    """0 for the best sentence of a row, 1 for the worst."""
    n = m.shape[1]
    ranks = np.argsort(np.argsort(-m, axis=1, kind="stable"), axis=1)
    return ranks / max(1, n - 1)


def feature_tensors(
    subtask: int,
    cases: Sequence[Case],
    encoder: Encoder | None = None,
    names: Sequence[str] = FEATURES,
    *,
    query: str | None = None,
    components: dict[str, dict] | None = None,
    model_dir: str | Path | None = None,
    rerank: Rerank | None = None,
) -> list[np.ndarray]:
    """Per case, a ``(queries, sentences, len(names))`` float array of the named features.

    ``query``: the query mode (:data:`QUERY_MODES`); ``components``: the scorers' options by name
    (``bm25``, ``tfidf``: :func:`ehrqa.retrieval.build_scorer`; ``cross_encoder``: its batch size);
    ``model_dir``: the directory holding the cross-encoder, when ``names`` has it; ``rerank``: score
    the cross-encoder on each query's best candidates only."""
    from ehrqa.retrieval import build_scorer

    unknown = sorted(set(names) - set(FEATURES) - set(MODEL_FEATURES))
    if unknown:
        known = ", ".join(FEATURES + MODEL_FEATURES)
        raise ValueError(f"unknown relevance features {', '.join(unknown)}: expected some of {known}")
    components = components or {}
    texts = [(queries_for(subtask, c, query), [s.text for s in c.sentences]) for c in cases]
    vectors = None
    if any(n in DENSE or n in ("ctx_dense", "narrative_dense", "centrality") for n in names):
        encoder = encoder or Encoder()
        with_context = "ctx_dense" in names
        asked = [t for (qs, ctx), _ in texts for t in (*qs, *([ctx] if with_context else []))]
        asked += [c.narrative for c in cases if c.narrative] if "narrative_dense" in names else []
        vectors = Vectors(encoder.encode(asked, role="query"), encoder.encode([s for _, ss in texts for s in ss]))
    bm25, tfidf = build_scorer("bm25", components.get("bm25")), build_scorer("tfidf", components.get("tfidf"))
    columns: list[dict[str, np.ndarray] | None] = []
    for case, ((queries, context), sentences) in zip(cases, texts, strict=True):
        if not queries or not sentences:
            columns.append(None)
            continue
        columns.append(_case_columns(case, queries, context, sentences, names, vectors, bm25, tfidf))
    if "cross_encoder" in names:
        scorer = build_scorer("cross_encoder", components.get("cross_encoder"), model_dir)
        live = [j for j, cols in enumerate(columns) if cols is not None]
        requests = [(texts[j][0][0], texts[j][1]) for j in live]
        candidates = [rerank.candidates(columns[j]) for j in live] if rerank else None
        for j, matrix in zip(live, scorer.score_requests(requests, candidates), strict=True):
            columns[j]["cross_encoder"] = matrix
    out = []
    for cols, ((queries, _), sentences) in zip(columns, texts, strict=True):
        if cols is None:
            out.append(np.zeros((len(queries), len(sentences), len(names))))
        else:
            out.append(np.stack([cols[n] for n in names], axis=-1).astype(float))
    return out


def _case_columns(case, queries, context, sentences, names, vectors, bm25, tfidf) -> dict[str, np.ndarray]:
    """One case's feature columns by name, each a (queries x sentences) matrix."""
    nq, ns = len(queries), len(sentences)
    cols: dict[str, np.ndarray] = {}
    cols["bm25"] = normalise_rows(bm25.score_matrix(queries, sentences), "max")
    raw_tfidf, *raw_ctx = tfidf.score_matrices([queries, [context]] if context else [queries], sentences)
    cols["tfidf"], cols["tfidf_raw"] = normalise_rows(raw_tfidf, "max"), raw_tfidf
    cols["tfidf_any"] = (raw_tfidf > 0).astype(float)
    ctx_tfidf = normalise_rows(raw_ctx[0], "max") if raw_ctx else np.zeros((1, ns))
    cols["ctx_tfidf"] = np.repeat(ctx_tfidf, nq, axis=0)
    words = np.array([max(1, len(s.split())) for s in sentences], dtype=float)
    per_sentence = {
        "header": np.array([float(is_header(s)) for s in sentences]),
        "position": np.arange(ns) / max(1, ns - 1),
        "log_words": np.log(words),
        "log_sentences": np.full(ns, np.log(ns)),
    }
    if vectors is not None:
        asked, documents = vectors
        s_vec = np.stack([documents[s] for s in sentences])
        q_vec = np.stack([asked[q] for q in queries])
        dense = q_vec @ s_vec.T
        cols["dense"], cols["dense_minmax"], cols["dense_rank"] = (
            dense,
            normalise_rows(dense, "minmax"),
            _row_rank(dense),
        )
        spread = dense.std(axis=1, keepdims=True)
        cols["dense_z"] = (dense - dense.mean(axis=1, keepdims=True)) / np.where(spread > 1e-6, spread, 1.0)
        floor = dense.min(axis=1, keepdims=True)
        padded = np.concatenate([floor, dense, floor], axis=1)
        cols["neighbour_dense"] = np.maximum(padded[:, :-2], padded[:, 2:])  # the better adjacent sentence
        similarity = s_vec @ s_vec.T
        top = np.argsort(-dense, axis=1, kind="stable")[:, : min(3, ns)]
        cols["dense_topsim"] = np.stack([similarity[row].mean(axis=0) for row in top])
        ctx = s_vec @ asked[context] if context and context in asked else np.zeros(ns)
        cols["ctx_dense"] = np.repeat(ctx[None, :], nq, axis=0)
        narrative = s_vec @ asked[case.narrative] if case.narrative and case.narrative in asked else np.zeros(ns)
        cols["narrative_dense"] = np.repeat(narrative[None, :], nq, axis=0)
        per_sentence["centrality"] = (similarity.sum(axis=1) - 1) / max(1, ns - 1)
    for name, values in per_sentence.items():
        cols[name] = np.repeat(values[None, :], nq, axis=0)
    return cols
