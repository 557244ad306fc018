"""What a run shows a person: the summary table, the viewer page it writes, and progress bars without note text."""

from __future__ import annotations

import sys

import pytest

from ehrqa import read_dataset
from ehrqa.commands.run import format_summary, write_page
from ehrqa.runs.config import parse_recipe
from ehrqa.runs.pipeline import run
from helpers import ScriptedBackend, make_case

ROWS = [
    {
        "subtask": 1,
        "step": "st1",
        "title": "question interpretation",
        "method": "rule",
        "status": "ok",
        "seconds": 0.4,
        "calls": 0,
        "scores": {"rougeLsum": 17.214, "bertscore_proxy": 56.76, "overall_partial": 34.97},
        "submission": "out/subtask1/submission.zip",
    },
    {
        "subtask": 3,
        "step": "st3",
        "title": "answer generation",
        "method": "llm",
        "status": "failed",
        "failed": ["3", "4"],
        "reasons": ["timed out"],
        "seconds": 812.0,
        "calls": 14,
    },
    {
        "subtask": 3,
        "step": "st3b",
        "title": "answer generation",
        "method": "extractive",
        "status": "ok",
        "seconds": 1.2,
        "calls": 0,
        "submission": "out/subtask3/submission.zip",
    },
    {"subtask": 4, "step": "st4", "title": "evidence alignment", "method": "aligner", "status": "input missing"},
]


def test_summary_is_an_aligned_table():
    lines = format_summary(ROWS).splitlines()
    header, rule, *rows = lines[:6]
    assert header.split() == [
        "subtask",
        "method",
        "seconds",
        "model",
        "calls",
        "tokens",
        "in/out",
        "headline",
        "metrics",
    ]
    assert set(rule) == {"-", " "}
    method_at = header.index("method")
    calls_end = header.index("model calls") + len("model calls")
    for row in rows:
        assert row[method_at - 2 : method_at] == "  " and row[method_at] != " "  # the method column starts here
        assert row[calls_end - 1] != " " and row[calls_end : calls_end + 2] == "  "  # numbers right-aligned
    assert rows[0].startswith("ST1 question interpretation") and "rougeLsum 17.21" in rows[0]
    assert "overall_partial 34.97" in rows[0]
    assert "812.0" in rows[1] and " 14" in rows[1] and "  FAILED for 2 case(s): 3, 4 (timed out); rerun" in rows[1]
    assert rows[2].startswith("ST3 answer generation (st3b)") and rows[2].endswith("not scored (no gold)")
    assert rows[3].split()[-2:] == ["input", "missing"] and " -  " in rows[3]  # never ran: no seconds
    assert lines[6:] == [  # a named step's submission says which step wrote it
        "ST1 submission: out/subtask1/submission.zip",
        "ST3 (st3b) submission: out/subtask3/submission.zip",
    ]


@pytest.mark.model
def test_a_run_writes_its_page_and_the_path_comes_last(tmp_path, monkeypatch):
    from ehrqa.data.archehr import sample_dir

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # the viewer stays usable without its extra
    cases = read_dataset()[:2]
    xml = sample_dir() / "archehr-qa.xml"
    rows = run(parse_recipe({"steps": [{"subtask": 2}]}, "r"), cases, tmp_path / "run", data={"xml": str(xml)})
    assert rows[0]["status"] == "ok"
    lines = write_page(tmp_path / "run")
    page = tmp_path / "run" / "view" / "index.html"
    assert lines[-1].startswith(f"viewer page: {page} (") and "0 plots" in lines[-1]
    assert "note text (PHI)" in lines[0]
    assert page.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


def test_a_page_that_cannot_be_written_does_not_undo_the_run(tmp_path):
    (tmp_path / "empty").mkdir()
    assert write_page(tmp_path / "empty") == [
        f"viewer page not written: {tmp_path / 'empty'}: no run.json (is this a run directory from ehrqa run?)"
    ]


def test_model_calls_show_a_progress_bar_naming_the_prompt_never_the_note(capsys, monkeypatch):
    from ehrqa.tasks import generate
    from ehrqa.tasks.base import Context

    case = make_case().input_for(3)
    config = generate.GenerateConfig(method="llm", cite=False)
    monkeypatch.delenv("EHRQA_NO_PROGRESS", raising=False)
    ctx = Context(backends={"default": None})
    ctx._built["default"] = ScriptedBackend(["She had a blocked artery that the stent opened."])
    assert generate.predict([case], config, ctx) == {case.id: "She had a blocked artery that the stent opened."}
    err = capsys.readouterr().err
    assert "st3-answer@1 replies" in err and "/1 " in err  # one reply expected
    assert "Sentence 1 of the note" not in err and "blocked artery" not in err and "stent" not in err

    monkeypatch.setenv("EHRQA_NO_PROGRESS", "1")  # what -q sets
    ctx = Context(backends={"default": None})
    ctx._built["default"] = ScriptedBackend(["Another answer."])
    generate.predict([make_case("8").input_for(3)], config, ctx)
    assert capsys.readouterr().err == ""
