"""The evidence ensemble: normalise each scorer per query, take a weighted sum, keep the
sentences at or above a threshold, with at least ``min_links`` and at most ``max_links``
per query (for ST4 a query is one answer sentence; for ST2 it is the case's question).

With ``max`` normalisation a scorer alone and a threshold tau is exactly QU-NLP's
*relative thresholding* (keep what scores >= tau x the best). ``rerank_top`` lets the
cross-encoder score only each query's top candidates by the cheaper scorers, which
keeps it within a laptop's time budget.

This module is inference only; :mod:`ehrqa.retrieval.tuning` searches the parameters.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ehrqa.retrieval.base import Request, build_scorer
from ehrqa.retrieval.relevance import DecisionRule, decide_row

NORMALISERS = ("max", "minmax")
DEFAULT_NORMALISE = {"bm25": "max", "tfidf": "max", "dense": "minmax", "cross_encoder": "minmax"}


def normalise(scores: np.ndarray, how: str) -> np.ndarray:
    """Per-query normalisation to [0, 1]; NaN (unscored) entries become 0."""
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
    def decision_rule(self) -> DecisionRule:
        """An absolute threshold on the combined score (with ``max`` normalisation and one scorer,
        QU-NLP's relative threshold)."""
        return DecisionRule("threshold", self.threshold, self.min_links, self.max_links)

    def how(self, name: str) -> str:
        return self.normalise.get(name, DEFAULT_NORMALISE.get(name, "minmax"))


def select(combined: np.ndarray, threshold: float, min_links: int = 1, max_links: int | None = None) -> list[int]:
    """Indices kept for one query: score >= threshold, best first, at least ``min_links``, at most ``max_links``."""
    return decide_row(combined, "threshold", threshold, min_links, max_links)


def pre_scores(raw: dict[str, list[np.ndarray]], config: EnsembleConfig) -> list[np.ndarray]:
    """Equal-weight mean of the normalised ``rerank_by`` scores: the rerank candidate order."""
    missing = [n for n in config.rerank_by if n not in raw]
    if missing:
        raise ValueError(f"reranking needs the {', '.join(missing)} scores")
    names = list(config.rerank_by)
    out = []
    for r in range(len(next(iter(raw.values())))):
        mats = [np.array([normalise(row, config.how(n)) for row in raw[n][r]]) for n in names]
        out.append(np.mean(mats, axis=0) if mats else np.zeros_like(raw["cross_encoder"][r]))
    return out


def top_mask(matrix: np.ndarray, top: int) -> np.ndarray:
    mask = np.zeros(matrix.shape, dtype=bool)
    for i, row in enumerate(matrix):
        mask[i, np.argsort(-row, kind="stable")[:top]] = True
    return mask


def apply_rerank(raw: dict[str, list[np.ndarray]], config: EnsembleConfig) -> dict[str, list[np.ndarray]]:
    """Cross-encoder scores outside each query's ``rerank_top`` candidates set to NaN (unscored), as
    :func:`component_scores` leaves them; used when all pairs were scored, e.g. during tuning."""
    if not config.rerank_top or "cross_encoder" not in raw:
        return raw
    masks = [top_mask(m, config.rerank_top) for m in pre_scores(raw, config)]
    masked = [np.where(mask, m, np.nan) for mask, m in zip(masks, raw["cross_encoder"], strict=True)]
    return {**raw, "cross_encoder": masked}


def component_scores(
    requests: Sequence[Request], config: EnsembleConfig, components: dict[str, dict], model_dir=None
) -> dict[str, list[np.ndarray]]:
    """Raw scores of every active scorer; the cross-encoder last, on rerank candidates only when asked."""
    raw: dict[str, list[np.ndarray]] = {}
    for name in config.needed:
        if name != "cross_encoder":
            raw[name] = build_scorer(name, components.get(name), model_dir).score_requests(requests)
    if "cross_encoder" in config.active:
        scorer = build_scorer("cross_encoder", components.get("cross_encoder"), model_dir)
        candidates = None
        if config.reranks:
            candidates = [top_mask(m, config.rerank_top) for m in pre_scores(raw, config)]
        raw["cross_encoder"] = scorer.score_requests(requests, candidates)
    return raw


def combine(raw: dict[str, list[np.ndarray]], config: EnsembleConfig) -> list[np.ndarray]:
    """Weighted sum of per-query normalised scores, divided by the total weight."""
    total = sum(config.weights.get(n, 0.0) for n in raw) or 1.0
    out = []
    for r in range(len(next(iter(raw.values())))):
        acc = 0.0
        for name, mats in raw.items():
            acc = acc + config.weights.get(name, 0.0) * np.array([normalise(row, config.how(name)) for row in mats[r]])
        out.append(np.asarray(acc, dtype=float).reshape(mats[r].shape) / total)
    return out


def decide(combined: Sequence[np.ndarray], config: EnsembleConfig) -> list[list[list[int]]]:
    """Selected sentence indices per request, per query."""
    return [config.decision_rule.select(m) for m in combined]
