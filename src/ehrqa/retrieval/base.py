"""The evidence scorer interface (:class:`Scorer`) and the name -> scorer factory.

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


def build_scorer(name: str, options: dict | None = None, model_dir=None) -> Scorer:
    """A scorer by component name, configured by ``options`` (a recipe/config section)."""
    options = dict(options or {})
    if name == "bm25":
        from ehrqa.retrieval.bm25 import BM25Scorer

        return BM25Scorer(**options)
    if name == "tfidf":
        from ehrqa.retrieval.tfidf import TfidfScorer

        return TfidfScorer(**options)
    if name == "dense":
        from ehrqa.retrieval.dense import DenseScorer

        return DenseScorer(**options)
    if name == "cross_encoder":
        from ehrqa.retrieval.cross_encoder import CrossEncoderScorer

        return CrossEncoderScorer.from_model_dir(model_dir, **options)
    raise ValueError(f"unknown evidence scorer {name!r}: expected one of {', '.join(COMPONENTS)}")
