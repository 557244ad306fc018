"""Scoring submissions exactly as the official ArchEHR-QA 2026 scorers do, offline.

``score_submission(subtask, entries, cases)`` returns the official keys on the 0-100 scale
plus a signature (and CIs with ``bootstrap=N``); :func:`score` returns a :class:`ScoreResult`
that also holds the per-case values. ST2 and ST4 need only the key; ST1 and ST3 also need
the XML (the narrative is SARI's source, the clinician question is ST1's reference).

Model-based metrics use the user's official resources when given (``bertscore_model``,
``alignscore_ckpt`` + ``alignscore_model``, ``quickumls_index``); otherwise labelled stand-ins
(``bertscore_proxy``, ``medcon_proxy``) are reported, never under the official names, and
the overall score becomes ``overall_partial`` with the list of metrics it averages.
"""

from __future__ import annotations

import platform
from collections.abc import Sequence
from dataclasses import dataclass, field

from ehrqa.data.case import Case
from ehrqa.data.submission import _subtask, check_submission
from ehrqa.errors import DataError
from ehrqa.score import report, sets
from ehrqa.score.report import LEADERBOARD, PROXY_KEYS

METRICS = ("bleu", "rouge", "sari", "bertscore", "alignscore", "medcon")
DEFAULT_METRICS = {1: ("rouge", "bertscore", "alignscore", "medcon"), 3: METRICS}
ROUGE_KEYS = ("rouge1", "rouge2", "rougeL", "rougeLsum")


class MetricUnavailable(Exception):
    """A metric cannot be computed here (missing resources); the message says what is needed."""


@dataclass(frozen=True)
class Resources:
    """Local paths to the official resources of the model-based metrics (all optional)."""

    bertscore_model: str | None = None  # a distilbert-base-uncased directory
    alignscore_ckpt: str | None = None  # AlignScore-base.ckpt
    alignscore_model: str | None = None  # a roberta-base directory
    quickumls_index: str | None = None  # a QuickUMLS index built from a UMLS release
    proxies: bool = True  # compute stand-ins where an official resource is missing


@dataclass
class ScoreResult:
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


def parse_metrics(spec: str | Sequence[str] | None, subtask: int) -> tuple[str, ...]:
    """``"bleu,rouge,sari"`` (or a list) -> validated metric names; None -> the subtask's defaults."""
    if spec is None:
        return DEFAULT_METRICS.get(subtask, ())
    names = spec.split(",") if isinstance(spec, str) else list(spec)
    names = [n.strip().lower() for n in names if n.strip()]
    unknown = [n for n in names if n not in METRICS]
    if unknown:
        raise DataError(f"unknown metric(s) {', '.join(unknown)}: choose from {', '.join(METRICS)}")
    if not names:
        raise DataError("no metrics given")
    return tuple(dict.fromkeys(names))


def select_cases(cases: Sequence[Case], case_ids: Sequence[str] | None) -> list[Case]:
    """Restrict to ``case_ids`` (in key order); ids missing from the key are an error."""
    if case_ids is None:
        return list(cases)
    wanted = [str(c) for c in case_ids]
    known = {c.id for c in cases}
    unknown = [c for c in wanted if c not in known]
    if unknown:
        raise DataError(f"--case-ids: not in the key: {', '.join(unknown[:8])}")
    keep = set(wanted)
    return [c for c in cases if c.id in keep]


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
    resources = resources or Resources()
    selected = select_cases(cases, case_ids)
    if case_ids is not None:
        keep = {c.id for c in selected}
        entries = [
            e
            for e in entries
            if not (isinstance(e, dict) and isinstance(e.get("case_id"), str)) or e["case_id"] in keep
        ]
    predictions = check_submission(entries, subtask, selected)
    by_id = {c.id: c for c in selected}
    order = list(predictions)  # submission order: the official scorers average in it
    parts = {"ehrqa": _version(), "subtask": str(subtask), "n": str(len(order))}
    unavailable: dict[str, str] = {}

    if subtask == 2:
        records = [_st2_record(cid, predictions[cid], by_id[cid]) for cid in order]

        def aggregate(rs):
            return sets.st2_scores([r["_counts"] for r in rs])

        parts["sets"] = "st2-strict+lenient-bothempty1"
    elif subtask == 4:
        records = [_st4_record(cid, predictions[cid], by_id[cid]) for cid in order]

        def aggregate(rs):
            return sets.st4_scores([r["_counts"] for r in rs])

        parts["sets"] = "st4-pairs-noemptyrule"
    else:
        names = parse_metrics(metrics, subtask)
        records, official, sig, unavailable = _text_records(subtask, order, predictions, by_id, names, resources)
        parts.update(sig)

        def aggregate(rs):
            keys = [k for k in rs[0] if not k.startswith("_") and k != "case_id"]
            out = {k: report.mean_scaled([r[k] for r in rs], k) for k in keys}
            report.add_overall(subtask, out, official)
            return out

    scores = aggregate(records) if records else {}
    ci = None
    if bootstrap and records:
        parts["bootstrap"] = f"{bootstrap}x-seed{seed}-percentile95"
        ci = report.bootstrap_ci(records, aggregate, bootstrap, seed)
    parts["numpy"] = _pkg_version("numpy")
    parts["python"] = platform.python_version()
    return ScoreResult(
        subtask=subtask,
        scores=scores,
        per_case=[_display(r) for r in records],
        signature=report.signature_string(parts),
        unavailable=unavailable,
        ci=ci,
    )


def _version() -> str:
    from ehrqa import __version__

    return __version__


def _display(record: dict) -> dict:
    out = {"case_id": record["case_id"]}
    for k, v in record.items():
        if k == "case_id" or k.startswith("_"):
            continue
        out[k] = v if isinstance(v, int) or k in report.ALREADY_PERCENT else v * 100
    return out


# ---------------------------------------------------------------- ST2 / ST4


def _st2_record(cid: str, predicted: list[str], case: Case) -> dict:
    if case.relevance is None:
        raise DataError(f"key: case {cid}: no relevance labels (needed for subtask 2)")
    counts = sets.st2_counts(predicted, case.essential_ids, case.supplementary_ids)
    rec: dict = {"case_id": cid}
    for mode, c in counts.items():
        p, r, f = sets.prf(c, both_empty_is_one=True)
        rec.update({f"{mode}_precision": p, f"{mode}_recall": r, f"{mode}_f1": f})
    c = counts["strict"]
    rec.update({"n_predicted": c.n_pred, "n_essential": c.n_gold, "n_correct": c.tp, "_counts": counts})
    return rec


def _st4_record(cid: str, links: dict[str, list[str]], case: Case) -> dict:
    if case.answer_sentences is None or any(a.citations is None for a in case.answer_sentences):
        raise DataError(f"key: case {cid}: answer sentences without citations (needed for subtask 4)")
    c = sets.count(sets.st4_pairs(links), case.citation_pairs)
    p, r, f = sets.prf(c, both_empty_is_one=False)
    return {
        "case_id": cid,
        "precision": p,
        "recall": r,
        "f1": f,
        "n_predicted": c.n_pred,
        "n_gold": c.n_gold,
        "n_correct": c.tp,
        "_counts": c,
    }


# ---------------------------------------------------------------- ST1 / ST3


def _text_records(subtask, order, predictions, by_id, names, resources):
    """Per-case metric values (0-1, SARI 0-100) and the bookkeeping for the report."""
    preds = [predictions[cid] for cid in order]
    refs, sources = [], []
    for cid in order:
        case = by_id[cid]
        ref = case.clinician_question if subtask == 1 else case.answer
        if not ref:
            what = "clinician_question (XML)" if subtask == 1 else "clinician_answer_without_citations (key)"
            raise DataError(f"case {cid}: no reference {what}")
        if not case.narrative and "sari" in names:
            raise DataError(f"case {cid}: no patient narrative (SARI's source; pass the XML)")
        refs.append(ref)
        sources.append(case.narrative)
    columns: dict[str, list[float]] = {}
    official: set[str] = set()
    sig: dict[str, str] = {}
    unavailable: dict[str, str] = {}
    if "bleu" in names:
        from ehrqa.score import bleu

        columns["bleu"] = [bleu.sentence_bleu(p, r) for p, r in zip(preds, refs, strict=True)]
        official.add("bleu")
        sig["bleu"] = f"tfnmt-max4-nosmooth-cased-tok13a-sacrebleu{_pkg_version('sacrebleu')}"
    if "rouge" in names:
        from ehrqa.score import rouge

        values = [rouge.sentence_rouge(p, r) for p, r in zip(preds, refs, strict=True)]
        for k in ROUGE_KEYS:
            columns[k] = [v[k] for v in values]
            official.add(k)
        sig["rouge"] = f"rouge-score{rouge.ROUGE_SCORE_VERSION}-nostem-lsum-newline"
    if "sari" in names:
        from ehrqa.score import sari

        columns["sari"] = [sari.sentence_sari(s, p, [r]) for s, p, r in zip(sources, preds, refs, strict=True)]
        official.add("sari")
        sig["sari"] = f"evaluate-sent-lc-tok13a-src=narrative-sacrebleu{_pkg_version('sacrebleu')}"
    for name in ("bertscore", "alignscore", "medcon"):
        if name not in names:
            continue
        try:
            result = _model_metric(name, preds, refs, resources)
        except MetricUnavailable as e:
            unavailable[name] = str(e)
            continue
        columns[result.key] = result.values
        if result.official:
            official.add(result.key)
        sig[result.key] = result.signature
    records = [{"case_id": cid} for cid in order]
    for key, values in columns.items():
        for rec, v in zip(records, values, strict=True):
            rec[key] = float(v)
    return records, official, sig, unavailable


@dataclass
class MetricValues:
    key: str  # report key: the official name, or its stand-in name
    values: list[float]  # per case, 0-1
    signature: str
    official: bool


def _model_metric(name: str, preds: list[str], refs: list[str], resources: Resources) -> MetricValues:
    if name == "bertscore":
        from ehrqa.score import bertscore

        if resources.bertscore_model:
            return bertscore.official(resources.bertscore_model).values(preds, refs)
        if resources.proxies:
            return bertscore.proxy().values(preds, refs)
        raise MetricUnavailable("needs --bertscore-model DIR (distilbert-base-uncased)")
    if name == "alignscore":
        from ehrqa.score import alignscore

        if resources.alignscore_ckpt:
            if not resources.alignscore_model:
                raise DataError("AlignScore: --alignscore-ckpt needs --alignscore-model DIR (roberta-base)")
            scorer = alignscore.AlignScorer.from_checkpoint(resources.alignscore_ckpt, resources.alignscore_model)
            return scorer.values(contexts=refs, claims=preds)
        raise MetricUnavailable("needs --alignscore-ckpt FILE (AlignScore-base.ckpt) and --alignscore-model DIR")
    if name == "medcon":
        from ehrqa.score import medcon

        if resources.quickumls_index:
            return medcon.Medcon(resources.quickumls_index, official=True).values(preds, refs)
        if resources.proxies:
            return medcon.Medcon(medcon.proxy_index(), official=False).values(preds, refs)
        raise MetricUnavailable("needs --quickumls-index DIR (built from a UMLS release)")
    raise ValueError(name)


def _pkg_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "?"


__all__ = [
    "METRICS",
    "LEADERBOARD",
    "PROXY_KEYS",
    "MetricUnavailable",
    "Resources",
    "ScoreResult",
    "parse_metrics",
    "score",
    "score_submission",
]
