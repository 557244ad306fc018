"""The main job: predict, write official submissions, score, summarise (ST3 is covered in test_generate)."""

import json

from ehrqa import check_submission, read_dataset, read_submission
from ehrqa.demo import format_summary, has_gold, run_demo
from ehrqa.score import score_submission


def test_demo_writes_valid_submissions_and_scores_them(tmp_path):
    cases = read_dataset()
    rows = run_demo(cases, tmp_path, subtasks=(2, 4))
    assert [r["status"] for r in rows] == ["ok", "ok"]
    for row in rows:
        entries = read_submission(row["submission"])
        check_submission(entries, row["subtask"], cases)  # raises if invalid
        assert row["scores"] == score_submission(row["subtask"], entries, cases)
    assert json.loads((tmp_path / "summary.json").read_text())[0]["subtask"] == 2
    summary = format_summary(rows)
    assert "ST2 evidence identification  strict_micro_f1" in summary
    assert "ST4 evidence alignment" in summary and "micro_f1" in summary


def test_demo_skips_what_the_data_cannot_support(tmp_path):
    cases = [c.without_gold() for c in read_dataset()][:2]
    (row,) = run_demo(cases, tmp_path, subtasks=(2,))
    assert row["status"] == "ok" and "scores" not in row  # predicted, nothing to score against
    assert not has_gold(2, cases) and not has_gold(4, cases)
    no_answers = [c.__class__(id=c.id, narrative=c.narrative, sentences=c.sentences) for c in cases]
    (row,) = run_demo(no_answers, tmp_path, subtasks=(4,))
    assert row["status"] == "input missing from this dataset"
