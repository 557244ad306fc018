"""Combining finished systems: votes over ST2/ST4 submissions, a medoid over ST1/ST3 ones, and
the vote threshold chosen by cross-validation from the vote counts a run recorded.

Inputs are run directories (their official submission of the subtask) or submission files. Voting never
calls a model: :func:`tune_threshold` re-decides every case from the counts in its records.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ehrqa.data.case import Case
from ehrqa.errors import DataError
from ehrqa.text import plural


def read_system(path: str | Path, subtask: int) -> list[dict]:
    """Submission entries from a run directory or a submission file (.json or .zip)."""
    from ehrqa.data.submission import read_submission
    from ehrqa.runs.layout import RunLayout

    path = Path(path)
    if path.is_dir():
        official = RunLayout(path).official(subtask)
        if not official.exists():
            raise DataError(f"{path}: no ST{subtask} submission in this run directory")
        path = official
    return read_submission(path)


def recorded_dataset(path: str | Path) -> dict | None:
    """What a run directory's ``run.json`` says about its dataset (name, sha256 of the XML and key);
    None for a submission file or a directory without ``run.json``."""
    from ehrqa.io import read_json
    from ehrqa.runs.layout import RunLayout

    run_file = RunLayout(path).run_file
    if not run_file.is_file():
        return None
    meta = read_json(run_file, "run config")
    data = meta.get("data") if isinstance(meta, dict) else None
    return data if isinstance(data, dict) and data.get("xml_sha256") else None


def check_same_dataset(paths: Sequence[str | Path]) -> None:
    """Refuse runs made on different datasets: their case ids may match while the cases do not."""
    first_path, first = None, None
    for path in paths:
        data = recorded_dataset(path)
        if data is None:
            continue
        if first is None:
            first_path, first = path, data
        elif data["xml_sha256"] != first["xml_sha256"]:
            raise DataError(
                f"{path} and {first_path} were run on different datasets (archehr-qa.xml sha256 "
                f"{data['xml_sha256'][:12]} vs {first['xml_sha256'][:12]}); combine runs of one dataset"
            )


def combine(subtask: int, systems: Sequence[Sequence[dict]], rule: str = "majority") -> list[dict]:
    """One submission from several: ST2/ST4 by ``rule`` (``majority``, ``union``, ``intersection``,
    a threshold F, or a vote count ``k``), ST1/ST3 by the medoid text. Case order: the first system's."""
    from ehrqa.llm.vote import links_from_prediction, medoid, prediction_from_links, vote_ids, vote_links

    by_system = [{e["case_id"]: e["prediction"] for e in entries} for entries in systems]
    order = [e["case_id"] for e in systems[0]]
    for k, predictions in enumerate(by_system[1:], 2):
        if set(predictions) != set(order):
            raise DataError(f"system {k} does not cover the same cases as system 1")
    combined = []
    for case_id in order:
        predictions = [p[case_id] for p in by_system]
        if subtask in (1, 3):
            value = predictions[medoid(predictions)]
        elif subtask == 2:
            value = vote_ids(predictions, _rule(rule)).kept
        else:
            answer_ids = [e["answer_id"] for e in predictions[0]]
            vote = vote_links([links_from_prediction(p) for p in predictions], _rule(rule), answer_ids=answer_ids)
            value = prediction_from_links(vote.kept)
        combined.append({"case_id": case_id, "prediction": value})
    return combined


def _rule(text: str):
    """``"0.5"`` -> 0.5, ``"2"`` -> 2 votes, words stay words."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


# ---- the vote threshold, chosen by k-fold cross-validation over recorded vote counts ----------


def _counts(subtask: int, record: dict, case: Case, threshold: float) -> tuple[int, int, int]:
    """(true positives, predicted, gold) of one case's votes at ``threshold``."""
    from ehrqa.llm.vote import parse_rule

    rule, total = parse_rule(threshold), record.get("n_votes") or 0
    if subtask == 2:
        kept = {sid for sid, n in (record.get("votes") or {}).items() if total and rule.keeps(n, total)}
        if not record.get("votes"):
            kept = set(record["prediction"])  # a fallback case: the aligner's answer, no votes
        gold = set(case.essential_ids)
    else:
        votes = record.get("votes")
        if votes is None:
            kept = {(e["answer_id"], sid) for e in record["prediction"] for sid in e["evidence_id"]}
        else:
            kept = {(aid, sid) for aid, row in votes.items() for sid, n in row.items() if rule.keeps(n, total)}
        gold = case.citation_pairs
    return len(kept & gold), len(kept), len(gold)


def _micro_f1(rows: list[tuple[int, int, int]]) -> float:
    tp, predicted, gold = (sum(r[i] for r in rows) for i in range(3))
    if predicted == 0 and gold == 0:
        return 1.0
    p = tp / predicted if predicted else 0.0
    r = tp / gold if gold else 0.0
    return 2 * p * r / (p + r) if p + r else 0.0


def tune_threshold(
    subtask: int,
    runs: dict[str, dict[str, dict]],
    cases: Sequence[Case],
    thresholds: Sequence[float],
    folds: int = 5,
) -> dict:
    """Choose a run (e.g. one per number of shots) and a vote threshold by k-fold CV.

    ``runs`` maps a run's name to its step records ``{case_id: record}``. For each fold, the
    (run, threshold) with the best micro-F1 on the other folds is scored on the held-out fold;
    the result holds the CV F1 (pooled over held-out folds) and the setting best on all cases.
    """
    if folds < 2:
        raise DataError(f"folds={folds}: cross-validation needs at least 2 folds")
    if not any(isinstance(r.get("votes"), dict) for records in runs.values() for r in records.values()):
        raise DataError(
            f"{', '.join(runs)}: no votes recorded (one sample per case): every threshold keeps the same "
            "sentences, so there is no threshold to tune; run the LLM step with several samples"
        )
    cases = [c for c in cases if all(c.id in records for records in runs.values())]
    if len(cases) < folds:
        raise DataError(f"{plural(len(cases), 'case')} with records in every run: too few for {folds} folds")
    settings = [(name, t) for name in runs for t in thresholds]
    table = {s: [_counts(subtask, runs[s[0]][c.id], c, s[1]) for c in cases] for s in settings}

    def best(indices: Sequence[int]) -> tuple[str, float]:
        return max(settings, key=lambda s: (_micro_f1([table[s][i] for i in indices]), -settings.index(s)))

    held_out_rows, chosen = [], []
    for fold in range(folds):
        test = [i for i in range(len(cases)) if i % folds == fold]
        train = [i for i in range(len(cases)) if i % folds != fold]
        setting = best(train)
        chosen.append({"fold": fold, "run": setting[0], "threshold": setting[1]})
        held_out_rows += [table[setting][i] for i in test]
    overall = best(range(len(cases)))
    return {
        "cv_micro_f1": 100 * _micro_f1(held_out_rows),
        "folds": chosen,
        "best": {"run": overall[0], "threshold": overall[1]},
        "in_sample_micro_f1": {f"{name}@{t}": 100 * _micro_f1(table[(name, t)]) for name, t in settings},
        "n_cases": len(cases),
    }
