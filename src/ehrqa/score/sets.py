"""ST2 (evidence identification) and ST4 (evidence alignment) precision, recall and F1.

The arithmetic follows the official scorers exactly: per-case values from Python floats,
micro values from integer sums over the submission entries, macro values as ``numpy.mean``
of the per-case values in submission order, and scaling to 0-100 only after averaging.

The two subtasks differ on empty cases: in ST2 a case where both the prediction and the
gold are empty scores (1, 1, 1); in ST4 such a case scores (0, 0, 0). :data:`SCORERS` gives,
for each, the per-case record builder, the aggregate of records and the signature.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ehrqa.data.case import Case
from ehrqa.data.submission import link_pairs
from ehrqa.errors import DataError

ST2_BOTH_EMPTY_IS_ONE = True
ST4_BOTH_EMPTY_IS_ONE = False
ST2_SIGNATURE = f"st2-strict+lenient-bothempty{int(ST2_BOTH_EMPTY_IS_ONE)}"
ST4_SIGNATURE = f"st4-pairs-bothempty{int(ST4_BOTH_EMPTY_IS_ONE)}"


@dataclass(frozen=True)
class Counts:
    """One case's set comparison: true positives, predicted and gold sizes."""

    tp: int
    n_pred: int
    n_gold: int


def count(predicted: Iterable, gold: Iterable) -> Counts:
    p, g = set(predicted), set(gold)
    return Counts(len(p & g), len(p), len(g))


def f1(precision: float, recall: float) -> float:
    """2PR/(P+R) on floats; 0 when both are 0."""
    if precision + recall == 0:
        return 0.0
    return 2 * precision * recall / (precision + recall)


def prf(c: Counts, *, both_empty_is_one: bool) -> tuple[float, float, float]:
    """Per-case P/R/F. Either side empty gives zeros, except (1, 1, 1) for
    "both empty" when ``both_empty_is_one`` (the ST2 rule)."""
    if c.n_pred == 0 and c.n_gold == 0:
        return (1.0, 1.0, 1.0) if both_empty_is_one else (0.0, 0.0, 0.0)
    if c.n_pred == 0 or c.n_gold == 0:
        return (0.0, 0.0, 0.0)
    p = c.tp / c.n_pred
    r = c.tp / c.n_gold
    return p, r, f1(p, r)


def micro(counts: Sequence[Counts], *, both_empty_is_one: bool) -> tuple[float, float, float]:
    """P/R/F from the sums of TP, |P| and |E| over all cases."""
    tp = sum(c.tp for c in counts)
    n_pred = sum(c.n_pred for c in counts)
    n_gold = sum(c.n_gold for c in counts)
    if n_pred == 0 and n_gold == 0 and both_empty_is_one:
        return 1.0, 1.0, 1.0
    p = tp / n_pred if n_pred else 0.0
    r = tp / n_gold if n_gold else 0.0
    return p, r, f1(p, r)


def macro(per_case: Sequence[tuple[float, float, float]]) -> tuple[float, float, float]:
    """Means of the per-case P, R and F (in the given order, as numpy sums them)."""
    if not per_case:
        return 0.0, 0.0, 0.0
    arr = [[v[i] for v in per_case] for i in range(3)]
    return float(np.mean(arr[0])), float(np.mean(arr[1])), float(np.mean(arr[2]))


def st2_counts(predicted: Iterable[str], essential: Iterable[str], supplementary: Iterable[str]) -> dict[str, Counts]:
    """Strict compares P with E; lenient compares P - S with E (supplementary
    predictions are ignored, not added to the gold)."""
    p = set(predicted)
    return {"strict": count(p, essential), "lenient": count(p - set(supplementary), essential)}


def st2_scores(counts: Sequence[dict[str, Counts]]) -> dict[str, float]:
    """The official ST2 keys on the 0-100 scale from per-case counts (submission order)."""
    out: dict[str, float] = {}
    for mode in ("strict", "lenient"):
        out.update(_micro_macro([c[mode] for c in counts], both_empty_is_one=ST2_BOTH_EMPTY_IS_ONE, prefix=f"{mode}_"))
    out["overall_score"] = out["strict_micro_f1"]
    return out


def _micro_macro(counts: Sequence[Counts], *, both_empty_is_one: bool, prefix: str = "") -> dict[str, float]:
    """``{prefix}{micro,macro}_{precision,recall,f1}`` on the 0-100 scale."""
    mic = micro(counts, both_empty_is_one=both_empty_is_one)
    mac = macro([prf(c, both_empty_is_one=both_empty_is_one) for c in counts])
    out: dict[str, float] = {}
    for kind, values in (("micro", mic), ("macro", mac)):
        for name, v in zip(("precision", "recall", "f1"), values, strict=True):
            out[f"{prefix}{kind}_{name}"] = v * 100
    return out


def st4_scores(counts: Sequence[Counts]) -> dict[str, float]:
    """The official ST4 keys on the 0-100 scale: micro over all pairs, macro over cases,
    no "both empty = 1" rule."""
    out = _micro_macro(counts, both_empty_is_one=ST4_BOTH_EMPTY_IS_ONE)
    out["overall_score"] = out["micro_f1"]
    return out


# ---------------------------------------------------------------- per-case records


def st2_record(case_id: str, predicted: Iterable[str], case: Case) -> dict:
    """One ST2 case: strict and lenient P/R/F (0-1), the strict counts, and ``_counts`` for aggregation."""
    if not case.has_gold(2):
        raise DataError(f"key: case {case_id}: no relevance labels (needed for subtask 2)")
    counts = st2_counts(predicted, case.essential_ids, case.supplementary_ids)
    rec: dict = {"case_id": case_id}
    for mode, c in counts.items():
        p, r, f = prf(c, both_empty_is_one=ST2_BOTH_EMPTY_IS_ONE)
        rec.update({f"{mode}_precision": p, f"{mode}_recall": r, f"{mode}_f1": f})
    c = counts["strict"]
    rec.update({"n_predicted": c.n_pred, "n_essential": c.n_gold, "n_correct": c.tp, "_counts": counts})
    return rec


def st4_record(case_id: str, links: Iterable[Mapping], case: Case) -> dict:
    """One ST4 case: P/R/F (0-1) over (answer, note sentence) pairs, the counts, and ``_counts``."""
    if not case.has_gold(4):
        raise DataError(f"key: case {case_id}: answer sentences without citations (needed for subtask 4)")
    c = count(link_pairs(links), case.citation_pairs)
    p, r, f = prf(c, both_empty_is_one=ST4_BOTH_EMPTY_IS_ONE)
    return {
        "case_id": case_id,
        "precision": p,
        "recall": r,
        "f1": f,
        "n_predicted": c.n_pred,
        "n_gold": c.n_gold,
        "n_correct": c.tp,
        "_counts": c,
    }


@dataclass(frozen=True)
class SetScorer:
    """How one of the set subtasks is scored: per-case records, their aggregate, the signature."""

    record: Callable[[str, object, Case], dict]
    aggregate: Callable[[Sequence[dict]], dict[str, float]]
    signature: str


SCORERS = {
    2: SetScorer(st2_record, lambda records: st2_scores([r["_counts"] for r in records]), ST2_SIGNATURE),
    4: SetScorer(st4_record, lambda records: st4_scores([r["_counts"] for r in records]), ST4_SIGNATURE),
}
