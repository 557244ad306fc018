"""The evidence scorer interface (:class:`Scorer`); :func:`ehrqa.retrieval.build_scorer` makes one by name.

Every scorer has the same small surface:

- ``score(query, sentences) -> array`` of one score per sentence (higher = better evidence);
- ``score_matrix(queries, sentences) -> array`` of shape (queries, sentences), for the
  several answer sentences of one case;
- ``score_requests([(queries, sentences), ...])`` for many cases at once, which the
  neural scorers override to batch their model calls.

Scores of different scorers live on different scales; :mod:`ehrqa.retrieval.ensemble`
normalises them per query before combining.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

Request = tuple[Sequence[str], Sequence[str]]  # (queries, note sentences) of one case

COMPONENTS = ("bm25", "tfidf", "dense", "cross_encoder")


class Scorer:
    """Base class: subclasses implement ``score_matrix`` (and may batch ``score_requests``)."""

    name = "scorer"

    def score_matrix(self, queries: Sequence[str], sentences: Sequence[str]) -> np.ndarray:
        raise NotImplementedError

    def score(self, query: str, sentences: Sequence[str]) -> np.ndarray:
        return self.score_matrix([query], sentences)[0]

    def score_requests(self, requests: Sequence[Request]) -> list[np.ndarray]:
        return [self.score_matrix(queries, sentences) for queries, sentences in requests]
