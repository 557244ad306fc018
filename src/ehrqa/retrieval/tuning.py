"""Tuning the evidence ensemble: every query row of every case flattened into one table of
normalised scores, an exhaustive search of weights / threshold / ``max_links`` on it (micro F1),
and k-fold cross-validation that tunes on all folds but one.

:func:`tune` picks the parameters on a :class:`ScoreTable`; :func:`cross_validate` reports held-out
micro P/R/F1; :func:`make_folds` deals case ids into seeded folds. Inference lives in
:mod:`ehrqa.retrieval.ensemble`.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ehrqa.retrieval.ensemble import EnsembleConfig, apply_rerank, normalise
from ehrqa.score.sets import Counts, micro


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
    p, r, f = micro([Counts(tp, predicted, gold)], both_empty_is_one=True)
    return {"precision": p, "recall": r, "f1": f, "tp": tp, "predicted": predicted, "gold": gold}


def make_folds(case_ids: Sequence[str], k: int, seed: int = 13) -> dict[str, int]:
    """Case id -> fold in 0..k-1, a seeded shuffle dealt round-robin."""
    ids = sorted(set(case_ids))
    order = np.random.default_rng(seed).permutation(len(ids))
    k = max(1, min(k, len(ids)))
    return {ids[j]: n % k for n, j in enumerate(order)}
