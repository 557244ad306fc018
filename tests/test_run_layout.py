"""The run layout: one-subtask outputs side by side, and two steps of one subtask in one run."""

from __future__ import annotations

import json

import pytest

from ehrqa.cli import main
from ehrqa.commands.run import format_summary
from ehrqa.data.archehr import read_dataset, sample_dir
from ehrqa.errors import DataError
from ehrqa.runs.config import parse_recipe
from ehrqa.runs.layout import RunLayout
from ehrqa.runs.pipeline import run
from ehrqa.runs.rundir import read_run
from ehrqa.tasks.base import Context
from ehrqa.view.runview import load_run_view
from helpers import ScriptedBackend

CASES = read_dataset()[:3]


def test_two_outputs_in_one_folder_are_two_runs_and_each_resumes(tmp_path, openai_server):
    from fakes.openai_server import reply

    def responder(body):
        text = body["messages"][-1]["content"]
        case = next(c for c in CASES if " ".join(c.sentences[0].text.split()) in text)
        return reply(json.dumps({a.id: [case.sentences[0].id] for a in case.answer_sentences}))

    openai_server.responder = responder
    base = ["-q", "align", "--method", "llm", "--backend", "openai", "--base-url", openai_server.base_url]
    base += ["--model", "m", "--data", str(sample_dir()), "--cases", *(c.id for c in CASES)]
    one, five = tmp_path / "out" / "st4_n1.json", tmp_path / "out" / "st4_n5.json"
    assert main([*base, "--samples", "1", "--out", str(one)]) == 0
    assert openai_server.count == 3
    assert main([*base, "--samples", "5", "--temperature", "0.7", "--out", str(five)]) == 0  # not refused
    assert openai_server.count == 3 + 15
    for out, votes in ((one, 1), (five, 5)):
        run_dir = RunLayout.for_output(out)
        assert run_dir.path == out.with_suffix(".run")
        records = read_run(run_dir.path).steps["st4"].records
        assert sorted(records) == sorted(c.id for c in CASES)
        assert {r["n_votes"] for r in records.values()} == {votes}
        assert json.loads(out.read_text()) == json.loads(run_dir.official(4).read_text())
    first = one.read_bytes()
    one.unlink()
    assert main([*base, "--samples", "1", "--out", str(one)]) == 0  # the same command again resumes
    assert openai_server.count == 18 and one.read_bytes() == first


TWO_ST2 = {
    "backends": {"default": {"kind": "hf"}},
    "steps": [{"subtask": 2, "name": "lex"}, {"subtask": 2, "name": "first", "method": "llm"}],
}


def test_two_steps_of_one_subtask_without_a_choice_are_refused_at_load():
    with pytest.raises(DataError) as error:
        parse_recipe(TWO_ST2, "two.yaml")
    message = str(error.value)
    assert message.startswith("two.yaml: steps lex, first are all ST2;") and "submit: true" in message
    assert "\n" not in message
    both = {**TWO_ST2, "steps": [{**s, "submit": True} for s in TWO_ST2["steps"]]}
    with pytest.raises(DataError, match="marked: lex, first"):
        parse_recipe(both, "two.yaml")


@pytest.mark.model
def test_two_steps_of_one_subtask_keep_their_own_outputs(tmp_path, monkeypatch, capsys):
    """Both steps' submissions and scores stay under steps/<step>/; subtask2/ is the chosen step's."""

    def first_sentence(request):
        case = next(c for c in CASES if c.id == request.case_id)
        return json.dumps({case.sentences[0].id: "essential"})

    backend = ScriptedBackend(first_sentence)
    monkeypatch.setattr(Context, "backend", lambda self, name: backend)
    chosen = {**TWO_ST2, "steps": [TWO_ST2["steps"][0], {**TWO_ST2["steps"][1], "submit": True}]}
    rows = run(parse_recipe(chosen, "two.yaml"), CASES, tmp_path / "run")
    layout = RunLayout(tmp_path / "run")
    assert [(r["step"], r["status"]) for r in rows] == [("lex", "ok"), ("first", "ok")]
    assert rows[0]["submission"] == str(layout.submission("lex").with_suffix(".zip"))
    assert rows[1]["submission"] == str(layout.official(2).with_suffix(".zip"))
    printed = format_summary(rows).splitlines()
    assert f"ST2 (lex) submission: {rows[0]['submission']}" in printed
    assert f"ST2 (first) submission: {rows[1]['submission']}" in printed

    written = read_run(layout.path)
    lex, first = written.steps["lex"], written.steps["first"]
    assert first.submission == [{"case_id": c.id, "prediction": [c.sentences[0].id]} for c in CASES]
    assert lex.submission != first.submission  # the aligner's choice, kept beside the chosen one
    assert json.loads(layout.official(2).read_text()) == first.submission
    assert lex.scores["scores"] == rows[0]["scores"] and first.scores["scores"] == rows[1]["scores"]
    assert lex.scores["scores"] != first.scores["scores"]
    assert written.submitted(2) is first and not lex.submit

    view = load_run_view(layout.path)
    assert view.subtasks[2].step == "first"
    assert view.subtasks[2].records == first.records and sorted(first.records) == sorted(c.id for c in CASES)
    assert view.subtasks[2].scores_source == "run"

    # ehrqa tune reads a named step's recorded votes through the same reader
    tune = ["tune", "--runs", str(layout.path), "--subtask", "2", "--folds", "3", "--thresholds", "0.5,1.0"]
    assert main([*tune, "--step", "first"]) == 0
    tuned = json.loads(capsys.readouterr().out)
    assert tuned["n_cases"] == len(CASES) and tuned["best"]["run"] == str(layout.path)
    assert main(tune) == 0 and json.loads(capsys.readouterr().out) == tuned  # the submitted step by default
    assert main([*tune, "--step", "st2"]) == 2
    assert "no step 'st2' (steps: first, lex)" in capsys.readouterr().err
