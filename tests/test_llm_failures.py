"""A model call that never got a reply is that case's failure in every LLM step, never a fallback.

ST1, ST2 and ST4 (as ST3): the case is recorded as failed with its status, the command ends with
one line naming it (exit 2), ``ehrqa run`` does not label the step ok, and a rerun against a
healthy server asks the model again for exactly those cases. Replies that arrive but cannot be
used still fall back (to the rule question, the aligner), and the run table, ``summary.json`` and
the records say so. A parameter every request is refused for stops the run at once in one line.
Each check is a real ``ehrqa`` subprocess against the loopback server.
"""

from __future__ import annotations

import json

import pytest
import yaml

from ehrqa.data.archehr import sample_dir
from fakes.openai_server import act
from test_failures_cli import assert_one_line_error
from test_failures_runs import CASES, case_of, ehrqa, records, xml_only

SERVER_FLAGS = ("--backend", "openai", "--model", "m", "--retries", "0")


def good_reply(body: dict) -> str:
    """A usable reply for the request's subtask: JSON naming the case's first ids, or a question."""
    case = CASES[case_of(body)]
    prompt = json.dumps(body["messages"])
    if "answer sentence id" in prompt:  # ST4
        return json.dumps({a.id: [case.sentences[0].id] for a in case.answer_sentences})
    if "Label each note sentence" in prompt:  # ST2
        return json.dumps({case.sentences[0].id: "essential"})
    return "What caused the patient's symptoms?"


# (command, step, extra flags, what case 102 meets, its recorded reason): ST1 and ST2 read the XML
# alone, ST4 needs the key's answer sentences
COMMANDS = [
    ("interpret", "st1", ("--method", "llm", "--data", None), "not-http", "not an HTTP reply"),
    ("identify", "st2", ("--data", None), "502", "HTTP 502"),
    ("align", "st4", ("--data", str(sample_dir())), "truncated", "truncated body"),
]


@pytest.mark.parametrize(("command", "step", "flags", "broken", "reason"), COMMANDS, ids=[c[0] for c in COMMANDS])
def test_no_reply_fails_the_case_and_a_healthy_rerun_asks_again(
    tmp_path, openai_server, command, step, flags, broken, reason
):
    flags = tuple(str(xml_only(tmp_path)) if f is None else f for f in flags)
    openai_server.responder = lambda body: act(broken) if case_of(body) == "102" else good_reply(body)
    out, run_dir = tmp_path / "out" / "submission.json", tmp_path / "run"
    args = (command, *flags, *SERVER_FLAGS, "--base-url", openai_server.base_url, "--cases", "101-103")
    args += ("--run-dir", run_dir)
    proc = ehrqa("-q", *args, "--out", out)
    assert_one_line_error(proc, "1 case(s) failed: 102", reason, "again")
    found = records(run_dir, step)
    assert {cid: r["status"] for cid, r in found.items()} == {"101": "ok", "102": "failed", "103": "ok"}
    assert found["102"]["prediction"] is None and not out.exists()

    openai_server.responder = good_reply  # the server is healthy again
    openai_server.reset()
    proc = ehrqa("-q", *args, "--out", out)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    assert {case_of(b) for b in openai_server.bodies} == {"102"}  # the model is asked, for that case only
    assert records(run_dir, step)["102"]["status"] == "ok"


def test_a_recipe_run_never_labels_a_step_without_replies_ok(tmp_path, openai_server):
    backend = {"kind": "openai", "model": "m", "base_url": openai_server.base_url, "retries": 0}
    steps = [{"subtask": 1, "method": "llm", "backend": "srv"}, {"subtask": 4, "method": "llm", "backend": "srv"}]
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump({"backends": {"srv": backend}, "steps": steps}))
    run_dir = tmp_path / "run"
    args = ("-q", "run", "--recipe", recipe, "--data", sample_dir(), "--cases", "101-102", "--out", run_dir)
    openai_server.responder = lambda body: act("503")  # e.g. a proxy that drops every request
    proc = ehrqa(*args)
    assert_one_line_error(proc, "ST1 (st1): 2 case(s) failed", "ST4 (st4): 2 case(s) failed", "HTTP 503")
    summary = json.loads((run_dir / "summary.json").read_text())
    assert [row["status"] for row in summary] == ["failed", "failed"]
    assert all(r["status"] == "failed" for step in ("st1", "st4") for r in records(run_dir, step).values())

    openai_server.responder = good_reply
    openai_server.reset()
    proc = ehrqa(*args)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((run_dir / "summary.json").read_text())
    assert [(row["status"], row["calls"]) for row in summary] == [("ok", 2), ("ok", 2)]
    assert openai_server.count == 4


def test_unusable_replies_fall_back_and_are_counted_in_the_summary_and_next_to_the_result(tmp_path, openai_server):
    openai_server.responder = lambda body: "I cannot tell." if case_of(body) == "102" else good_reply(body)
    run_dir = tmp_path / "run"
    proc = ehrqa(
        *("align", "--data", sample_dir(), "--cases", "101-103", *SERVER_FLAGS),  # no -q: stdout is wanted
        *("--base-url", openai_server.base_url, "--run-dir", run_dir, "--out", tmp_path / "s.json"),
    )
    assert proc.returncode == 0, proc.stderr
    assert "ST4: 1 case(s) got no usable reply and fell back: 102" in proc.stdout
    (row,) = json.loads((run_dir / "summary.json").read_text())
    assert (row["status"], row["fallbacks"], row["fallback_cases"]) == ("ok", 1, ["102"])
    assert records(run_dir, "st4")["102"]["status"] == "fallback"
    assert records(run_dir, "st4")["101"]["status"] == "ok"


def test_the_run_table_counts_fallbacks_and_names_the_citing_aligner():
    from ehrqa.commands.run import format_summary

    rows = [
        {
            "subtask": 3,
            "step": "st3",
            "title": "answer generation",
            "method": "llm",
            "status": "ok",
            "seconds": 1.0,
            "citations_by_aligner": "shipped",
        },
        {
            "subtask": 4,
            "step": "st4",
            "title": "evidence alignment",
            "method": "llm",
            "status": "ok",
            "seconds": 1.0,
            "fallbacks": 2,
            "fallback_cases": ["7", "9"],
        },
    ]
    table = format_summary(rows).splitlines()
    assert "llm + aligner citations" in table[2] and "fallback" not in table[2]
    assert table[3].endswith("not scored (no gold)  (2 fallback(s): 7, 9)")


def test_a_reasoning_model_works_as_typed_and_a_refused_setting_is_one_line(tmp_path, openai_server):
    openai_server.responder = good_reply
    args = ("-q", "align", "--data", sample_dir(), "--backend", "openai", "--base-url", openai_server.base_url)
    args += ("--model", "gpt-5-mini", "--cases", "101-103", "--concurrency", "1")
    proc = ehrqa(*args, "--out", tmp_path / "a" / "s.json")
    assert proc.returncode == 0, proc.stderr
    assert all("max_completion_tokens" in b and "temperature" not in b for b in openai_server.bodies)

    openai_server.reset()
    proc = ehrqa(*args, "--token-limit", "max_tokens", "--out", tmp_path / "b" / "s.json")
    assert_one_line_error(proc, "refuses the parameter 'max_tokens'", "gpt-5-mini", "token_limit")
    assert openai_server.count == 1  # stopped at the first refusal


def test_an_llm_answer_step_names_the_aligner_that_cites_it(tmp_path, openai_server):
    openai_server.responder = lambda body: "The patient had surgery."
    backend = {"kind": "openai", "model": "m", "base_url": openai_server.base_url}
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump({"backends": {"srv": backend}, "steps": [{"subtask": 3, "backend": "srv"}]}))
    run_dir = tmp_path / "run"
    proc = ehrqa("run", "--recipe", recipe, "--data", xml_only(tmp_path), "--cases", "101", "--out", run_dir)
    assert proc.returncode == 0, proc.stderr
    (row,) = json.loads((run_dir / "summary.json").read_text())
    assert row["citations_by_aligner"] == "shipped"
    assert "llm + aligner citations" in proc.stdout
    assert records(run_dir, "st3")["101"]["answer_sentences"]  # the aligner did cite the answer
