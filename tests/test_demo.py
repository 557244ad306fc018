"""The main job: ``ehrqa demo`` is ``ehrqa run`` with the shipped default recipe on the sample."""

import json

from ehrqa import check_submission, read_dataset, read_submission
from ehrqa.commands.run import format_summary
from ehrqa.runs.config import parse_recipe
from ehrqa.runs.pipeline import has_gold, run
from ehrqa.score import score_submission


def test_demo_writes_valid_submissions_and_scores_them(tmp_path):
    from ehrqa.cli import main

    assert main(["demo", "--out", str(tmp_path / "demo"), "--subtasks", "2,4"]) == 0
    cases = read_dataset()
    rows = json.loads((tmp_path / "demo" / "summary.json").read_text())
    assert [(r["subtask"], r["status"]) for r in rows] == [(2, "ok"), (4, "ok")]
    for row in rows:
        entries = read_submission(row["submission"])
        check_submission(entries, row["subtask"], cases)  # raises if invalid
        assert row["scores"] == score_submission(row["subtask"], entries, cases)
    summary = format_summary(rows)
    assert "ST2 evidence identification" in summary and "strict_micro_f1" in summary
    assert "ST4 evidence alignment" in summary and "micro_f1" in summary


def test_demo_skips_what_the_data_cannot_support(tmp_path):
    cases = [c.input_for(2) for c in read_dataset()][:2]
    recipe = parse_recipe({"steps": [{"subtask": 2}, {"subtask": 4}]}, "r")
    rows = run(recipe, cases, tmp_path)
    assert rows[0]["status"] == "ok" and "scores" not in rows[0]  # predicted, nothing to score against
    assert rows[1]["status"] == "input missing from this dataset"
    assert not has_gold(2, cases) and not has_gold(4, cases)
