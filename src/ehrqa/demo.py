"""The main job on a dataset: predict every subtask that has a predictor, write the
official submission files, score what the key allows, and summarise.

Predictors see only what the official test input holds (``Case.without_gold``).
"""

from __future__ import annotations

import importlib
import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path

from ehrqa.data.case import Case
from ehrqa.data.submission import build_submission, write_submission
from ehrqa.tasks import SUBTASK_MODULES

log = logging.getLogger(__name__)

TITLES = {1: "question interpretation", 2: "evidence identification", 3: "answer generation", 4: "evidence alignment"}
# Keys shown in the summary, in order, when the scorer reports them.
HEADLINE_KEYS = {
    1: ["rougeLsum", "bertscore", "bertscore_proxy", "alignscore", "medcon", "medcon_proxy", "overall_score"],
    2: ["strict_micro_f1", "lenient_micro_f1", "strict_macro_f1"],
    3: ["bleu", "rougeLsum", "sari", "bertscore", "bertscore_proxy", "alignscore", "medcon", "medcon_proxy"],
    4: ["micro_precision", "micro_recall", "micro_f1", "macro_f1"],
}


def has_gold(subtask: int, cases: Sequence[Case]) -> bool:
    if subtask == 1:
        return all(c.clinician_question for c in cases)
    if subtask == 2:
        return all(c.relevance is not None for c in cases)
    if subtask == 3:
        return all(c.answer for c in cases)
    return all(c.answer_sentences and all(a.citations is not None for a in c.answer_sentences) for c in cases)


def has_input(subtask: int, cases: Sequence[Case]) -> bool:
    """ST4 needs the answer sentences to align; ST2/ST3 need the note."""
    if subtask == 4:
        return all(c.answer_sentences for c in cases)
    if subtask in (2, 3):
        return all(c.sentences for c in cases)
    return True


def run_subtask(subtask: int, cases: Sequence[Case], out_dir: Path) -> dict:
    """Predict, write ``out_dir/subtaskN/submission.{json,zip}``, score if gold exists."""
    row: dict = {"subtask": subtask, "title": TITLES[subtask]}
    try:
        task = importlib.import_module(f"ehrqa.tasks.{SUBTASK_MODULES[subtask]}")
    except ModuleNotFoundError:
        row["status"] = "no predictor yet"
        return row
    if not has_input(subtask, cases):
        row["status"] = "input missing from this dataset"
        return row
    start = time.perf_counter()
    predictions = task.predict([c.without_gold() for c in cases])
    entries = build_submission(subtask, predictions, cases)
    path = write_submission(entries, out_dir / f"subtask{subtask}" / "submission.json")
    row.update(status="ok", seconds=round(time.perf_counter() - start, 1), submission=str(path.with_suffix(".zip")))
    if has_gold(subtask, cases):
        try:
            from ehrqa.score import score_submission
        except ModuleNotFoundError:
            row["scores"] = None
        else:
            row["scores"] = score_submission(subtask, entries, cases)
    return row


def run_demo(cases: Sequence[Case], out_dir: str | Path = "demo-out", subtasks: Sequence[int] = (1, 2, 3, 4)) -> list:
    """Run the subtasks on cases; write submissions and ``summary.json`` under ``out_dir``."""
    out = Path(out_dir)
    rows = [run_subtask(n, cases, out) for n in subtasks]
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    return rows


def format_summary(rows: list[dict]) -> str:
    lines = []
    for row in rows:
        head = f"ST{row['subtask']} {row['title']:<24}"
        if row["status"] != "ok":
            lines.append(f"{head} {row['status']}")
            continue
        scores = row.get("scores")
        if scores is None:
            shown = "not scored (no gold or no scorer)"
        else:
            keys = [k for k in HEADLINE_KEYS[row["subtask"]] if isinstance(scores.get(k), (int, float))]
            shown = "  ".join(f"{k} {scores[k]:.2f}" for k in keys)
            if "overall_partial" in scores:
                shown += f"  overall_partial {scores['overall_partial']:.2f}"
        lines.append(f"{head} {shown}  ({row['seconds']} s)")
        lines.append(f"{'':28} -> {row['submission']}")
    return "\n".join(lines)
