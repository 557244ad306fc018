"""A run directory read for people to look at: cases, predictions, records and per-case scores.

Reads the run through :func:`ehrqa.runs.rundir.read_run`; each subtask shows the step submitted for
it (the only step of that subtask, or the one marked ``submit: true``). Per-case scores come from
that step's scores when the run wrote them; otherwise they are computed here with
:func:`ehrqa.score.score` when the data has gold, using only the cheap metrics for ST1/ST3
(``rouge`` / ``bleu,rouge,sari``) so that a page renders in seconds.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ehrqa.data.case import Case
from ehrqa.errors import DataError

if TYPE_CHECKING:
    from ehrqa.runs.rundir import StepRun

log = logging.getLogger(__name__)

SUBTASKS = (1, 2, 3, 4)
# The per-case number shown for each subtask, and its label in the index.
HEADLINE = {1: "rougeLsum", 2: "strict_f1", 3: "overall", 4: "f1"}
HEADLINE_LABEL = {1: "ST1 ROUGE-Lsum", 2: "ST2 strict F1", 3: "ST3 score", 4: "ST4 F1"}
# Metrics computed here when the run has no scores file (model-based ones would load models).
CHEAP_METRICS = {1: "rouge", 3: "bleu,rouge,sari"}
ST3_LEADERBOARD = ("bleu", "rougeLsum", "sari", "bertscore", "alignscore", "medcon")


@dataclass
class SubtaskView:
    subtask: int
    step: str  # the run's step shown for this subtask
    predictions: dict[str, object]  # case id -> official prediction
    records: dict[str, dict]  # case id -> the step's record (votes, answer_sentences, status)
    per_case: dict[str, dict[str, float]] = field(default_factory=dict)  # case id -> metric -> 0-100
    scores: dict = field(default_factory=dict)  # aggregate, ehrqa.score keys
    scores_source: str = ""  # "run" (the step's scores), "computed (bleu,rouge,sari)" or ""

    def headline(self, case_id: str) -> float | None:
        values = self.per_case.get(case_id)
        if not values:
            return None
        if self.subtask == 3:
            found = [values.get(k, values.get(f"{k}_proxy")) for k in ST3_LEADERBOARD]
            found = [v for v in found if isinstance(v, (int, float))]
            return sum(found) / len(found) if found else None
        value = values.get(HEADLINE[self.subtask])
        return float(value) if isinstance(value, (int, float)) else None


@dataclass
class RunView:
    path: Path
    name: str
    meta: dict
    cases: list[Case]
    subtasks: dict[int, SubtaskView]
    data_name: str = ""

    @property
    def has_gold(self) -> bool:
        return any(c.has_key for c in self.cases)

    def case_score(self, case_id: str) -> float | None:
        """Mean of the case's per-subtask headline numbers (the index's default sort key)."""
        values = [v for v in (s.headline(case_id) for s in self.subtasks.values()) if v is not None]
        return sum(values) / len(values) if values else None


def load_run_view(path: str | Path, *, compute_scores: bool = True) -> RunView:
    """Read a run directory; a missing ``run.json`` or dataset is a one-line :class:`DataError`."""
    from ehrqa.data.archehr import read_dataset
    from ehrqa.runs.rundir import read_run

    run = read_run(path)
    data = dict(run.meta.get("data") or {})
    for name, value in (run.meta.get("data_files") or {}).items():  # ehrqa run keeps the paths apart
        data.setdefault(name, value)
    if not data.get("xml"):
        raise DataError(f"{run.layout.run_file}: no data.xml (the dataset the run read)")
    cases = read_dataset(None, xml=data["xml"], key=data.get("key"))
    subtasks = {}
    for n in SUBTASKS:
        step = run.submitted(n)
        view = _subtask_view(n, step) if step is not None else None
        if view is not None:
            _attach_scores(view, step, cases, compute_scores)
            subtasks[n] = view
    if not subtasks:
        raise DataError(f"{run.path}: no step records or submissions")
    ran = {cid for view in subtasks.values() for cid in (*view.predictions, *view.records)}
    cases = [c for c in cases if c.id in ran]  # a run over some cases (--cases) shows only those
    return RunView(run.path, run.path.name, run.meta, cases, subtasks, data_name=str(data.get("name") or ""))


def _subtask_view(n: int, step: StepRun) -> SubtaskView | None:
    if step.submission is not None:
        entries = [e for e in step.submission if isinstance(e, dict) and "case_id" in e]
        predictions = {str(e["case_id"]): e.get("prediction") for e in entries}
    else:
        predictions = {
            cid: r["prediction"]
            for cid, r in step.records.items()
            if r.get("status", "ok") != "failed" and "prediction" in r
        }
    if not predictions and not step.records:
        return None
    return SubtaskView(n, step.name, predictions, step.records)


def _attach_scores(view: SubtaskView, step: StepRun, cases: list[Case], compute: bool) -> None:
    if isinstance(step.scores, dict):
        view.scores = step.scores.get("scores") or {}
        view.per_case = _per_case_dict(step.scores.get("per_case"))
        view.scores_source = "run"
        return
    gold = {c.id: c for c in cases if c.has_key}
    if not compute or not view.predictions or not all(cid in gold for cid in view.predictions):
        return
    from ehrqa import score as scoring

    entries = [{"case_id": cid, "prediction": p} for cid, p in view.predictions.items()]
    metrics = CHEAP_METRICS.get(view.subtask)
    try:
        result = scoring.score(view.subtask, entries, cases, metrics=metrics, case_ids=list(view.predictions))
    except DataError as e:  # e.g. gold without citations: show predictions only
        log.warning("subtask %d: per-case scores not computed (%s)", view.subtask, e)
        return
    view.scores = dict(result.scores)
    view.per_case = _per_case_dict(result.per_case)
    view.scores_source = f"computed: {metrics}" if metrics else "computed"


def _per_case_dict(raw) -> dict[str, dict[str, float]]:
    """``{case id: {metric: value}}`` from a step's scores file or ehrqa.score's list of records."""
    rows = raw.items() if isinstance(raw, dict) else ((r.get("case_id"), r) for r in raw or () if isinstance(r, dict))
    return {
        str(cid): {k: float(v) for k, v in values.items() if isinstance(v, (int, float)) and k != "case_id"}
        for cid, values in rows
        if cid is not None and isinstance(values, dict)
    }


def vote_threshold_points(
    view: SubtaskView, cases: list[Case]
) -> tuple[list[tuple[int, float, float]], tuple[float, float]] | None:
    """Micro precision/recall (0-100) of the vote rule t ("at least t votes") for each count t, and the run's own
    point, from ST2 votes ``{sentence id: count}`` or ST4 votes ``{answer id: {note id: count}}``.
    None when the records carry no votes or the cases no gold."""
    from ehrqa.llm.vote import parse_rule

    by_id = {c.id: c for c in cases}
    voted = {cid: r for cid, r in view.records.items() if isinstance(r.get("votes"), dict) and cid in by_id}
    if view.subtask not in (2, 4) or not voted:
        return None
    gold: dict[str, set] = {}
    counts: dict[str, dict] = {}
    for cid, record in voted.items():
        case = by_id[cid]
        if not case.has_gold(view.subtask):
            return None
        if view.subtask == 2:
            gold[cid] = set(case.essential_ids)
            counts[cid] = {sid: n for sid, n in record["votes"].items() if isinstance(n, (int, float))}
        else:
            gold[cid] = case.citation_pairs
            counts[cid] = {
                (aid, nid): n
                for aid, links in record["votes"].items()
                if isinstance(links, dict)
                for nid, n in links.items()
                if isinstance(n, (int, float))
            }
    top = max(
        [int(r.get("n_votes") or 0) for r in voted.values()] + [int(n) for c in counts.values() for n in c.values()]
    )
    points = []
    for t in range(1, top + 1):
        rule = parse_rule(t)  # at least t votes
        totals = {cid: voted[cid].get("n_votes") or top for cid in counts}
        predicted = {cid: {k for k, n in c.items() if rule.keeps(n, totals[cid])} for cid, c in counts.items()}
        points.append((t, *_micro(predicted, gold)))
    chosen = {cid: _predicted_set(view.subtask, view.predictions.get(cid)) for cid in voted}
    return points, _micro(chosen, gold)


def _predicted_set(subtask: int, prediction) -> set:
    from ehrqa.data.submission import link_pairs

    return {str(s) for s in prediction or ()} if subtask == 2 else link_pairs(prediction)


def _micro(predicted: dict[str, set], gold: dict[str, set]) -> tuple[float, float]:
    from ehrqa.score.sets import count, micro

    precision, recall, _ = micro([count(predicted[c], gold[c]) for c in predicted], both_empty_is_one=False)
    return 100.0 * precision, 100.0 * recall
