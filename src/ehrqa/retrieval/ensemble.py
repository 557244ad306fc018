"""The weighted combiner: normalise each feature per query, take a weighted sum, and keep the
sentences at or above a threshold, with at least ``min_links`` and at most ``max_links`` per
query (for ST4 a query is one answer sentence; for ST2 it is the case's question).

It is one of the two combiners of an aligner (features -> combiner -> decision rule,
:mod:`ehrqa.retrieval.aligner`); the other is the logistic one of :mod:`ehrqa.retrieval.relevance`.
With ``max`` normalisation a feature alone and a threshold tau is exactly QU-NLP's *relative
thresholding* (keep what scores >= tau x the best). ``rerank_top`` lets the cross-encoder score
only each query's top candidates by the cheaper features, which keeps it within a laptop's time
budget.

This module is inference only; :mod:`ehrqa.retrieval.tuning` searches the weights, threshold and
links.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ehrqa.retrieval.features import DEFAULT_NORMALISE, NORMALISERS, Rerank, normalise, normalise_rows
from ehrqa.retrieval.relevance import DecisionRule, decide_row

__all__ = ["NORMALISERS", "EnsembleConfig", "apply_rerank", "combine", "decide", "normalise", "select"]


@dataclass
class EnsembleConfig:
    """How one subtask combines its scorers and decides links."""

    weights: dict[str, float]
    threshold: float = 0.5
    min_links: int = 1
    max_links: int | None = None
    normalise: dict[str, str] = field(default_factory=dict)
    rerank_top: int | None = None  # cross-encoder scores only this many candidates per query
    rerank_by: tuple[str, ...] = ("bm25", "tfidf")  # the cheap scorers that choose those candidates

    @classmethod
    def from_dict(cls, d: dict) -> EnsembleConfig:
        known = {"weights", "threshold", "min_links", "max_links", "normalise", "rerank_top", "rerank_by"}
        unknown = sorted(set(d) - known - {"query", "cv"})
        if unknown:
            raise ValueError(f"ensemble config: unknown keys {', '.join(unknown)}")
        values = {k: v for k, v in d.items() if k in known}
        if "rerank_by" in values:
            values["rerank_by"] = tuple(values["rerank_by"])
        return cls(**values)

    def to_dict(self) -> dict:
        return {
            "weights": self.weights,
            "threshold": self.threshold,
            "min_links": self.min_links,
            "max_links": self.max_links,
            "normalise": self.normalise,
            "rerank_top": self.rerank_top,
            "rerank_by": list(self.rerank_by),
        }

    @property
    def active(self) -> list[str]:
        return [name for name, w in self.weights.items() if w > 0]

    @property
    def reranks(self) -> bool:
        return bool(self.rerank_top) and self.weights.get("cross_encoder", 0) > 0

    @property
    def needed(self) -> list[str]:
        """Scorers to run: the weighted ones, and the candidate choosers when the cross-encoder reranks."""
        extra = [n for n in self.rerank_by if n not in self.active] if self.reranks else []
        return self.active + extra

    @property
    def features(self) -> list[str]:
        """The feature columns :meth:`scores` reads, in order: :attr:`needed`."""
        return self.needed

    @property
    def rerank(self) -> Rerank | None:
        """How the cross-encoder feature picks its candidates, when it reranks."""
        return Rerank(self.rerank_top, tuple(self.rerank_by), dict(self.normalise)) if self.reranks else None

    @property
    def decision_rule(self) -> DecisionRule:
        """An absolute threshold on the combined score (with ``max`` normalisation and one scorer,
        QU-NLP's relative threshold)."""
        return DecisionRule("threshold", self.threshold, self.min_links, self.max_links)

    def how(self, name: str) -> str:
        return self.normalise.get(name, DEFAULT_NORMALISE.get(name, "minmax"))

    def scores(self, tensor: np.ndarray, names: Sequence[str] | None = None) -> np.ndarray:
        """``(queries, sentences, features)`` -> the weighted sum of the per-query normalised
        columns (named ``names``, default :attr:`features`), divided by their total weight."""
        names = list(self.features if names is None else names)
        total = sum(self.weights.get(n, 0.0) for n in names) or 1.0
        combined = np.zeros(tensor.shape[:2])
        for i, name in enumerate(names):
            if self.weights.get(name, 0.0):
                combined = combined + self.weights[name] * normalise_rows(tensor[..., i], self.how(name))
        return combined / total


def select(combined: np.ndarray, threshold: float, min_links: int = 1, max_links: int | None = None) -> list[int]:
    """Indices kept for one query: score >= threshold, best first, at least ``min_links``, at most ``max_links``."""
    return decide_row(combined, "threshold", threshold, min_links, max_links)


def apply_rerank(raw: dict[str, list[np.ndarray]], config: EnsembleConfig) -> dict[str, list[np.ndarray]]:
    """Cross-encoder scores outside each query's ``rerank_top`` candidates set to NaN (unscored), as
    :func:`~ehrqa.retrieval.features.feature_tensors` leaves them; used when all pairs were scored,
    e.g. during tuning."""
    rerank = config.rerank
    if rerank is None or "cross_encoder" not in raw:
        return raw
    masked = []
    for r, matrix in enumerate(raw["cross_encoder"]):
        mask = rerank.candidates({n: raw[n][r] for n in rerank.by if n in raw})
        masked.append(np.where(mask, matrix, np.nan))
    return {**raw, "cross_encoder": masked}


def combine(raw: dict[str, list[np.ndarray]], config: EnsembleConfig) -> list[np.ndarray]:
    """:meth:`EnsembleConfig.scores` of per-request score matrices given by feature name."""
    names = list(raw)
    return [config.scores(np.stack([raw[n][r] for n in names], axis=-1), names) for r in range(len(raw[names[0]]))]


def decide(combined: Sequence[np.ndarray], config: EnsembleConfig) -> list[list[list[int]]]:
    """Selected sentence indices per request, per query."""
    return [config.decision_rule.select(m) for m in combined]
