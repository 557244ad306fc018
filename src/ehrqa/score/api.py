"""The scoring API: official-format submissions (:func:`score`, :func:`score_submission`) and
in-process predictions (:func:`score_predictions`) against gold cases.

Every path ends in one computation: per-case records in submission order, their aggregate on
the 0-100 scale, an overall score, optional bootstrap CIs and a signature. ST2 and ST4 use the
set rules of :mod:`ehrqa.score.sets`; ST1 and ST3 use the registered text metrics
(:mod:`ehrqa.score.metric`), with the clinician question (ST1) or the clinician answer (ST3)
as the reference and the patient narrative as SARI's source.
"""

from __future__ import annotations

import platform
from collections.abc import Mapping, Sequence

from ehrqa.data.case import Case
from ehrqa.data.submission import WORD_LIMITS, _subtask, check_submission
from ehrqa.errors import DataError

# each metric module registers itself on import
from ehrqa.score import alignscore, bertscore, bleu, medcon, report, rouge, sari, sets  # noqa: F401
from ehrqa.score.metric import REGISTRY, MetricUnavailable, Resources, TextMetric, package_version
from ehrqa.score.report import ScoreResult
from ehrqa.text import truncate_words

METRICS = tuple(REGISTRY)
DEFAULT_METRICS = {
    1: ("rouge", "bertscore", "alignscore", "medcon"),
    3: ("bleu", "rouge", "sari", "bertscore", "alignscore", "medcon"),
}


def parse_metrics(spec: str | Sequence[str] | None, subtask: int) -> tuple[str, ...]:
    """``"bleu,rouge,sari"`` (or a list) -> validated metric names; None -> the subtask's defaults."""
    if spec is None:
        return DEFAULT_METRICS.get(subtask, ())
    names = spec.split(",") if isinstance(spec, str) else list(spec)
    names = [n.strip().lower() for n in names if n.strip()]
    unknown = [n for n in names if n not in REGISTRY]
    if unknown:
        raise DataError(f"unknown metric(s) {', '.join(unknown)}: choose from {', '.join(METRICS)}")
    if not names:
        raise DataError("no metrics given")
    return tuple(dict.fromkeys(names))


def select_cases(cases: Sequence[Case], case_ids: Sequence[str] | None) -> list[Case]:
    """Restrict to ``case_ids`` (in key order); ids missing from the key are an error."""
    from ehrqa.data.select import select_cases as select

    return select(cases, case_ids, flag="--case-ids", source="the key")


def score_submission(
    subtask: int | str,
    entries: list,
    cases: Sequence[Case],
    metrics: str | Sequence[str] | None = None,
    case_ids: Sequence[str] | None = None,
    bootstrap: int = 0,
    *,
    resources: Resources | None = None,
    seed: int = 0,
) -> dict:
    """Score official-format submission entries against gold cases; see :func:`score`."""
    return score(subtask, entries, cases, metrics, case_ids, bootstrap, resources=resources, seed=seed).to_dict()


def score(
    subtask: int | str,
    entries: list,
    cases: Sequence[Case],
    metrics: str | Sequence[str] | None = None,
    case_ids: Sequence[str] | None = None,
    bootstrap: int = 0,
    *,
    resources: Resources | None = None,
    seed: int = 0,
) -> ScoreResult:
    """Validate ``entries`` with the official loading rules and score them.

    ``metrics`` applies to ST1/ST3 (comma-separated names from :data:`METRICS`).
    ``case_ids`` restricts scoring to those cases (entries for other cases are ignored).
    ``bootstrap`` > 0 adds 95% percentile intervals from that many case resamples.
    """
    subtask = _subtask(subtask)
    selected = select_cases(cases, case_ids)
    if case_ids is not None:
        keep = {c.id for c in selected}
        entries = [
            e
            for e in entries
            if not (isinstance(e, dict) and isinstance(e.get("case_id"), str)) or e["case_id"] in keep
        ]
    check_submission(entries, subtask, selected)  # raises DataError naming the entry
    predictions = {e["case_id"]: e["prediction"] for e in entries}  # submission order: the official mean's order
    return _evaluate(subtask, predictions, selected, metrics, bootstrap, resources or Resources(), seed)


def score_predictions(
    subtask: int | str,
    predictions: Mapping[str, object],
    cases: Sequence[Case],
    metrics: str | Sequence[str] | None = None,
    bootstrap: int = 0,
    *,
    resources: Resources | None = None,
    seed: int = 0,
    per_case: bool = False,
) -> dict:
    """Score ``{case_id: prediction}`` in process, without writing or re-validating a submission.

    Predictions have the form of a submission's ``prediction`` field (what the tasks return and
    :func:`ehrqa.build_submission` takes); every case of ``cases`` needs one, and they are scored
    in case order, so the result equals :func:`score_submission` of the built submission.
    ``per_case=True`` adds ``"per_case"``: one record per case on the report's scale.
    """
    subtask = _subtask(subtask)
    missing = [c.id for c in cases if c.id not in predictions]
    if missing:
        raise DataError(f"predictions: no prediction for case(s) {', '.join(missing[:8])}")
    ordered = {c.id: predictions[c.id] for c in cases}
    result = _evaluate(subtask, ordered, list(cases), metrics, bootstrap, resources or Resources(), seed)
    out = result.to_dict()
    if per_case:
        out["per_case"] = result.per_case
    return out


# ---------------------------------------------------------------- the one computation


def _evaluate(
    subtask: int,
    predictions: Mapping[str, object],
    cases: Sequence[Case],
    metrics: str | Sequence[str] | None,
    bootstrap: int,
    resources: Resources,
    seed: int,
) -> ScoreResult:
    by_id = {c.id: c for c in cases}
    order = list(predictions)
    parts = {"ehrqa": _version(), "subtask": str(subtask), "n": str(len(order))}
    unavailable: dict[str, str] = {}
    scales: dict[str, float] = {}
    if subtask in sets.SCORERS:
        scorer = sets.SCORERS[subtask]
        records = [scorer.record(cid, predictions[cid], by_id[cid]) for cid in order]
        aggregate = scorer.aggregate
        parts["sets"] = scorer.signature
    else:
        texts = [truncate_words(predictions[cid], WORD_LIMITS[subtask]) for cid in order]  # the official rule
        references = _references(subtask, [by_id[cid] for cid in order])
        chosen, unavailable = _build_metrics(parse_metrics(metrics, subtask), resources)
        records = _text_records(order, texts, references, [by_id[cid].narrative for cid in order], chosen)
        scales = {m.key: m.scale for m in chosen}
        official = {m.key for m in chosen if m.official}
        for m in chosen:
            parts[m.label or m.key] = m.signature()

        def aggregate(rs: Sequence[dict]) -> dict:
            out = {key: report.mean_scaled([r[key] for r in rs], scale) for key, scale in scales.items()}
            report.add_overall(subtask, out, official)
            return out

    scores = aggregate(records) if records else {}
    ci = None
    if bootstrap and records:
        parts["bootstrap"] = f"{bootstrap}x-seed{seed}-percentile95"
        ci = report.bootstrap_ci(records, aggregate, bootstrap, seed)
    parts["numpy"] = package_version("numpy")
    parts["python"] = platform.python_version()
    return ScoreResult(
        subtask=subtask,
        scores=scores,
        per_case=[report.display(r, scales) for r in records],
        signature=report.signature_string(parts),
        unavailable=unavailable,
        ci=ci,
    )


def _build_metrics(names: Sequence[str], resources: Resources) -> tuple[list[TextMetric], dict[str, str]]:
    """The metric objects of the chosen names, and why each unavailable one is missing."""
    chosen: list[TextMetric] = []
    unavailable: dict[str, str] = {}
    for name in names:
        try:
            chosen.extend(REGISTRY[name](resources))
        except MetricUnavailable as e:
            unavailable[name] = str(e)
    return chosen, unavailable


def _references(subtask: int, cases: Sequence[Case]) -> list[str]:
    """ST1's reference is the clinician question (XML), ST3's the clinician answer (key)."""
    references = []
    for case in cases:
        reference = case.gold_question if subtask == 1 else case.answer
        if subtask == 1 and case.question_is_input:
            raise DataError(f"case {case.id}: its question is the user's own input (ehrqa convert), not a reference")
        if not reference:
            what = "clinician_question (XML)" if subtask == 1 else "clinician_answer_without_citations (key)"
            raise DataError(f"case {case.id}: no reference {what}")
        references.append(reference)
    return references


def _text_records(
    order: list[str], texts: list[str], references: list[str], sources: list[str], metrics: Sequence[TextMetric]
) -> list[dict]:
    """Per-case values of each metric (on its own scale: 0-1, SARI 0-100), one record per case."""
    if any(m.needs_source for m in metrics):
        for cid, source in zip(order, sources, strict=True):
            if not source:
                raise DataError(f"case {cid}: no patient narrative (SARI's source; pass the XML)")
    records = [{"case_id": cid} for cid in order]
    for metric in metrics:
        for record, value in zip(records, metric.values(texts, references, sources).values, strict=True):
            record[metric.key] = value
    return records


def _version() -> str:
    from ehrqa import __version__

    return __version__
