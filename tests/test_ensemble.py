"""ehrqa ensemble (votes over submissions) and ehrqa tune (threshold by CV from recorded votes)."""

from __future__ import annotations

import json

import pytest

from ehrqa.cli import main
from ehrqa.data.archehr import read_dataset
from ehrqa.data.submission import write_submission
from ehrqa.runs.ensemble import combine, tune_threshold


def st2(*predictions):
    return [{"case_id": str(i), "prediction": list(p)} for i, p in enumerate(predictions, 1)]


def test_st2_votes_by_hand():
    a, b, c = st2(["1", "2", "3"]), st2(["1", "2"]), st2(["1", "4"])
    assert combine(2, [a, b, c], "majority")[0]["prediction"] == ["1", "2"]  # 3 and 2 of 3 votes
    assert combine(2, [a, b, c], "union")[0]["prediction"] == ["1", "2", "3", "4"]
    assert combine(2, [a, b, c], "intersection")[0]["prediction"] == ["1"]
    assert combine(2, [a, b, c], "3")[0]["prediction"] == ["1"]
    assert combine(2, [a, b, c], "0.3")[0]["prediction"] == ["1", "2", "3", "4"]  # 0.9 -> 1 vote


def test_st4_votes_and_text_medoid():
    def st4(links):
        return [{"case_id": "1", "prediction": [{"answer_id": a, "evidence_id": e} for a, e in links.items()]}]

    systems = [st4({"1": ["2"], "2": []}), st4({"1": ["2", "3"], "2": ["3"]}), st4({"1": ["3"], "2": []})]
    assert combine(4, systems, "majority")[0]["prediction"] == [
        {"answer_id": "1", "evidence_id": ["2", "3"]},
        {"answer_id": "2", "evidence_id": []},
    ]
    texts = [[{"case_id": "1", "prediction": t}] for t in ("a stent was placed", "a stent was placed today", "no")]
    assert combine(3, texts, "medoid")[0]["prediction"] == "a stent was placed"


def test_ensemble_command_over_run_dirs_and_files(tmp_path):
    cases = read_dataset()
    for k, keep in enumerate([3, 2, 1]):
        entries = [{"case_id": c.id, "prediction": [s.id for s in c.sentences[:keep]]} for c in cases]
        write_submission(entries, tmp_path / f"run{k}" / "subtask2" / "submission.json")
    out = tmp_path / "voted.json"
    runs = [str(tmp_path / "run0"), str(tmp_path / "run1" / "subtask2" / "submission.zip"), str(tmp_path / "run2")]
    assert main(["ensemble", "--subtask", "2", "--runs", *runs, "--out", str(out)]) == 0
    voted = json.loads(out.read_text())
    assert all(len(e["prediction"]) == 2 for e in voted)
    assert main(["ensemble", "--subtask", "2", "--runs", runs[0], "--out", str(out)]) == 2


def test_tune_picks_the_threshold_the_votes_support():
    cases = read_dataset()
    records = {}
    for c in cases:
        gold, others = list(c.essential_ids), [s.id for s in c.sentences if s.id not in c.essential_ids]
        votes = {sid: 4 for sid in gold} | {sid: 2 for sid in others[:3]}  # wrong ones get 2 of 5 votes
        records[c.id] = {"case_id": c.id, "prediction": gold, "votes": votes, "n_votes": 5}
    result = tune_threshold(2, {"run": records}, cases, [0.2, 0.6, 1.0], folds=2)
    assert result["best"] == {"run": "run", "threshold": 0.6}
    assert result["cv_micro_f1"] == pytest.approx(100.0)
    assert result["in_sample_micro_f1"]["run@1.0"] == 0.0
