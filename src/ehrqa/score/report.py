"""Turning per-case values into the official report: means, overall scores, CIs, the result object.

Per-case records are plain dicts (``case_id`` plus values); the aggregate of a list of
records is a pure function, so the bootstrap simply re-aggregates resampled records.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ehrqa.score.metric import proxy_key

# Leaderboard metrics of the text subtasks, in the official order.
LEADERBOARD = {
    1: ("alignscore", "rougeLsum", "medcon", "bertscore"),
    3: ("bleu", "rougeLsum", "sari", "bertscore", "alignscore", "medcon"),
}


def overall(values: Sequence[float]) -> float:
    """The official overall score: ``numpy.mean`` of the leaderboard metrics (0-100 each).

    QU-NLP's (9.42, 27.04, 55.42, 43.00, 25.28, 37.04) -> 32.86666666666667.
    """
    return float(np.mean(np.asarray(values, dtype=float)))


def mean_scaled(values: Sequence[float], scale: float) -> float:
    """``numpy.mean`` of per-case values in submission order, then x ``scale`` (100, or 1 for SARI)."""
    return float(np.mean(np.asarray(values, dtype=float))) * scale


def add_overall(subtask: int, scores: dict[str, float], official: set[str]) -> None:
    """Add ``overall_score`` when every leaderboard metric was computed with its official
    resources (names in ``official``); else ``overall_partial`` over what was computed,
    with ``overall_partial_metrics`` naming the keys it averages."""
    names = LEADERBOARD[subtask]
    if all(n in scores and n in official for n in names):
        scores["overall_score"] = overall([scores[n] for n in names])
        return
    used = []
    for n in names:
        if n in scores:
            used.append(n)
        elif proxy_key(n) in scores:
            used.append(proxy_key(n))
    if used:
        scores["overall_partial"] = overall([scores[n] for n in used])
        scores["overall_partial_metrics"] = used


def bootstrap_ci(
    records: Sequence[dict],
    aggregate: Callable[[Sequence[dict]], dict],
    n_resamples: int,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, list[float]]:
    """Percentile confidence intervals from resampling cases with replacement."""
    rng = np.random.default_rng(seed)
    n = len(records)
    samples: dict[str, list[float]] = {}
    for _ in range(n_resamples):
        idx = rng.integers(0, n, size=n)
        agg = aggregate([records[i] for i in idx])
        for k, v in agg.items():
            if isinstance(v, float | int) and not isinstance(v, bool):
                samples.setdefault(k, []).append(float(v))
    tail = (1 - level) / 2 * 100
    return {k: [float(np.percentile(v, tail)), float(np.percentile(v, 100 - tail))] for k, v in samples.items()}


def signature_string(parts: Mapping[str, str]) -> str:
    """sacreBLEU-style ``name:value|name:value`` string."""
    return "|".join(f"{k}:{v}" for k, v in parts.items())


def display(record: dict, scales: Mapping[str, float]) -> dict:
    """A per-case record as reported: values on the 0-100 scale, counts as integers, no ``_`` fields."""
    out = {"case_id": record["case_id"]}
    for k, v in record.items():
        if k == "case_id" or k.startswith("_"):
            continue
        out[k] = v if isinstance(v, int) else v * scales.get(k, 100.0)
    return out


@dataclass
class ScoreResult:
    """The scores of one submission, with the per-case records, the signature and any CIs."""

    subtask: int
    scores: dict  # official keys (+ stand-ins, overall_partial) on the 0-100 scale
    per_case: list[dict]  # one record per case, submission order, 0-100 scale
    signature: str
    unavailable: dict[str, str] = field(default_factory=dict)
    ci: dict[str, list[float]] | None = None

    def to_dict(self) -> dict:
        out = dict(self.scores)
        out["n_cases"] = len(self.per_case)
        if self.unavailable:
            out["unavailable"] = dict(self.unavailable)
        if self.ci is not None:
            out["ci95"] = self.ci
        out["signature"] = self.signature
        return out


def write_per_case(records: Sequence[dict], path: str | Path) -> Path:
    """Per-case values (0-100 like the report, counts as integers) as CSV or JSON Lines."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    if path.suffix.lower() == ".csv":
        import csv

        fields = list(dict.fromkeys(k for r in records for k in r))
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=fields)
            w.writeheader()
            w.writerows(records)
    else:
        tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    tmp.replace(path)
    return path
