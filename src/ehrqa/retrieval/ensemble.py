"""The evidence ensemble: normalise each scorer per query, take a weighted sum, keep the
sentences at or above a threshold, with at least ``min_links`` and at most ``max_links``
per query (for ST4 a query is one answer sentence; for ST2 it is the case's question).

With ``max`` normalisation a scorer alone and a threshold tau is exactly QU-NLP's
*relative thresholding* (keep what scores >= tau x the best). ``rerank_top`` lets the
cross-encoder score only each query's top candidates by the cheaper scorers, which
keeps it within a laptop's time budget.

:func:`tune` picks weights, threshold and ``max_links`` on a :class:`ScoreTable` by
exhaustive search (micro F1); :func:`cross_validate` reports held-out micro P/R/F1 by
tuning on all folds but one.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ehrqa.retrieval import Request, build_scorer

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

    def how(self, name: str) -> str:
        return self.normalise.get(name, DEFAULT_NORMALISE.get(name, "minmax"))


def select(combined: np.ndarray, threshold: float, min_links: int = 1, max_links: int | None = None) -> list[int]:
    """Indices kept for one query: score >= threshold, best first, at least ``min_links``, at most ``max_links``."""
    order = np.argsort(-combined, kind="stable")
    keep = [int(j) for rank, j in enumerate(order) if rank < min_links or combined[j] >= threshold]
    return keep[:max_links] if max_links is not None else keep


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
    return [[select(row, config.threshold, config.min_links, config.max_links) for row in m] for m in combined]


# ---------------------------------------------------------------------------------------------
# Tuning: every query row of every case flattened into one table of normalised scores.


@dataclass
class ScoreTable:
    """One entry per (query, sentence): its query row, gold label and normalised component scores."""

    row: np.ndarray  # int, query row index
    gold: np.ndarray  # bool
    scores: dict[str, np.ndarray]  # component -> normalised score
    row_group: np.ndarray  # per row: the group (case) it belongs to, for cross-validation folds

    @classmethod
    def build(
        cls,
        raw: dict[str, list[np.ndarray]],
        gold: Sequence[Sequence[set[int]]],
        config: EnsembleConfig,
        groups: Sequence[str],
    ) -> ScoreTable:
        """``raw``: component -> per-request matrices; ``gold``: per request, per query, the gold indices."""
        rows, labels, row_group = [], [], []
        normalised: dict[str, list[np.ndarray]] = {n: [] for n in raw}
        raw = apply_rerank(raw, config)
        row_id = 0
        for r, per_query in enumerate(gold):
            for i, gold_ids in enumerate(per_query):
                n = raw[next(iter(raw))][r].shape[1]
                rows.append(np.full(n, row_id))
                labels.append(np.isin(np.arange(n), list(gold_ids)))
                row_group.append(groups[r])
                for name, mats in raw.items():
                    normalised[name].append(normalise(mats[r][i].astype(float), config.how(name)))
                row_id += 1
        return cls(
            row=np.concatenate(rows) if rows else np.zeros(0, int),
            gold=np.concatenate(labels) if labels else np.zeros(0, bool),
            scores={n: (np.concatenate(v) if v else np.zeros(0)) for n, v in normalised.items()},
            row_group=np.array(row_group),
        )

    def subset(self, rows_mask: np.ndarray) -> ScoreTable:
        keep = rows_mask[self.row]
        new_index = np.cumsum(rows_mask) - 1
        return ScoreTable(
            row=new_index[self.row[keep]],
            gold=self.gold[keep],
            scores={n: v[keep] for n, v in self.scores.items()},
            row_group=self.row_group[rows_mask],
        )


@dataclass
class TuningGrid:
    weight_step: float = 0.1
    thresholds: tuple[float, ...] = tuple(np.round(np.arange(0.0, 1.0001, 0.02), 2))
    max_links: tuple[int | None, ...] = (1, 2, 3, 4, 5, None)
    min_links: int = 1


def weight_grid(names: Sequence[str], step: float) -> list[dict[str, float]]:
    """All weight vectors on the simplex with the given step (each component alone included)."""
    n_steps = round(1 / step)
    out = []
    for combo in itertools.product(range(n_steps + 1), repeat=len(names)):
        if sum(combo) == n_steps:
            out.append({name: round(c * step, 4) for name, c in zip(names, combo, strict=True)})
    return out


def _ranks(combined: np.ndarray, row: np.ndarray) -> np.ndarray:
    order = np.lexsort((-combined, row))
    sorted_rows = row[order]
    starts = np.searchsorted(sorted_rows, sorted_rows, side="left")
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order)) - starts
    return rank


def _counts(combined, rank, gold, thresholds, min_links, max_links):
    """(TP, |P|) for each threshold, vectorised."""
    always = rank < min_links
    eligible = ~always if max_links is None else (~always) & (rank < max_links)
    t = np.asarray(thresholds)
    pool = np.sort(combined[eligible])
    pool_gold = np.sort(combined[eligible & gold])
    predicted = always.sum() + len(pool) - np.searchsorted(pool, t - 1e-12, side="left")
    true_pos = (always & gold).sum() + len(pool_gold) - np.searchsorted(pool_gold, t - 1e-12, side="left")
    return true_pos, predicted


def micro(tp: float, predicted: float, gold: float) -> tuple[float, float, float]:
    """Micro precision, recall, F1 (0-1) from counts; no predictions and no gold counts as perfect."""
    if predicted == 0 and gold == 0:
        return 1.0, 1.0, 1.0
    p = tp / predicted if predicted else 0.0
    r = tp / gold if gold else 0.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def tune(table: ScoreTable, grid: TuningGrid, components: Sequence[str] | None = None) -> dict:
    """The weights, threshold and max_links with the best micro F1 on ``table``."""
    names = list(components or table.scores)
    n_gold = int(table.gold.sum())
    best = {"f1": -1.0}
    for weights in weight_grid(names, grid.weight_step):
        combined = sum(w * table.scores[n] for n, w in weights.items() if w > 0)
        rank = _ranks(combined, table.row)
        for k in grid.max_links:
            tp, predicted = _counts(combined, rank, table.gold, grid.thresholds, grid.min_links, k)
            f1 = np.where(predicted + n_gold > 0, 2 * tp / np.maximum(predicted + n_gold, 1), 0.0)
            i = int(np.argmax(f1))
            if f1[i] > best["f1"] + 1e-12:
                best = {
                    "f1": float(f1[i]),
                    "weights": weights,
                    "threshold": float(grid.thresholds[i]),
                    "max_links": k,
                    "min_links": grid.min_links,
                }
    return best


def evaluate(table: ScoreTable, params: dict) -> tuple[int, int, int]:
    """(TP, |P|, |gold|) of fixed parameters on ``table``."""
    combined = sum(w * table.scores[n] for n, w in params["weights"].items() if w > 0)
    rank = _ranks(combined, table.row)
    tp, predicted = _counts(combined, rank, table.gold, [params["threshold"]], params["min_links"], params["max_links"])
    return int(tp[0]), int(predicted[0]), int(table.gold.sum())


def cross_validate(
    table: ScoreTable, folds: dict[str, int], grid: TuningGrid, components: Sequence[str] | None = None
) -> dict:
    """Held-out micro P/R/F1 (0-1): tune on all folds but one, evaluate on it, sum the counts."""
    fold_of_row = np.array([folds[g] for g in table.row_group])
    tp = predicted = gold = 0
    for fold in sorted(set(folds.values())):
        train = table.subset(fold_of_row != fold)
        test = table.subset(fold_of_row == fold)
        params = tune(train, grid, components)
        a, b, c = evaluate(test, params)
        tp, predicted, gold = tp + a, predicted + b, gold + c
    p, r, f = micro(tp, predicted, gold)
    return {"precision": p, "recall": r, "f1": f, "tp": tp, "predicted": predicted, "gold": gold}


def make_folds(case_ids: Sequence[str], k: int, seed: int = 13) -> dict[str, int]:
    """Case id -> fold in 0..k-1, a seeded shuffle dealt round-robin."""
    ids = sorted(set(case_ids))
    order = np.random.default_rng(seed).permutation(len(ids))
    k = max(1, min(k, len(ids)))
    return {ids[j]: n % k for n, j in enumerate(order)}
