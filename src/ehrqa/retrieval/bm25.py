"""BM25 over a per-case corpus: the case's note sentences are the documents.

Variants are those of ``rank-bm25`` (Trotman et al., "Improvements to BM25 and
Language Models Examined", 2014): ``okapi`` (Robertson's BM25), ``bm25l``, ``bm25plus``.
QU-NLP's *relative thresholding* keeps a sentence when its score is at least
``tau`` x the best score for that query: :func:`relative_selection`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ehrqa.retrieval.base import Scorer
from ehrqa.retrieval.tokens import tokenize

VARIANTS = ("okapi", "bm25l", "bm25plus")


class BM25Scorer(Scorer):
    name = "bm25"

    def __init__(self, variant: str = "okapi", k1: float = 1.5, b: float = 0.75, stem: bool = True) -> None:
        if variant not in VARIANTS:
            raise ValueError(f"unknown BM25 variant {variant!r}: expected one of {', '.join(VARIANTS)}")
        self.variant, self.k1, self.b, self.stem = variant, k1, b, stem

    def _index(self, sentences: Sequence[str]):
        import rank_bm25

        cls = {"okapi": rank_bm25.BM25Okapi, "bm25l": rank_bm25.BM25L, "bm25plus": rank_bm25.BM25Plus}[self.variant]
        # An empty sentence would make a zero-length document; one placeholder token keeps the maths defined.
        corpus = [tokenize(s, stem=self.stem) or ["\0"] for s in sentences]
        return cls(corpus, k1=self.k1, b=self.b)

    def score_matrix(self, queries: Sequence[str], sentences: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(queries), len(sentences)))
        if not sentences:
            return out
        index = self._index(sentences)
        for i, query in enumerate(queries):
            out[i] = index.get_scores(tokenize(query, stem=self.stem))
        return out


def relative_selection(scores: np.ndarray, tau: float) -> np.ndarray:
    """Indices of sentences scoring at least ``tau`` x the best score (none if the best is not positive)."""
    scores = np.asarray(scores, dtype=float)
    if scores.size == 0 or scores.max() <= 0:
        return np.array([], dtype=int)
    return np.flatnonzero(scores >= tau * scores.max())
