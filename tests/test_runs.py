"""Runs: recipes, the run directory, resume after SIGKILL, refusal of changed settings, the reply cache."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from ehrqa.config import from_dict
from ehrqa.data.archehr import read_dataset
from ehrqa.errors import DataError
from ehrqa.runs.config import load_recipe, parse_recipe
from ehrqa.runs.pipeline import run
from ehrqa.runs.rundir import read_run
from ehrqa.tasks.generate import GenerateConfig

ROOT = Path(__file__).resolve().parents[1]


def openai_recipe(base_url: str, **st3) -> dict:
    return {
        "name": "fake-server",
        "seed": 7,
        "backends": {
            "fake": {"kind": "openai", "model": "fake-model", "base_url": base_url, "concurrency": 1, "retries": 0}
        },
        "steps": [{"subtask": 3, "method": "llm", "backend": "fake", **st3}],
    }


def ehrqa(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ehrqa.cli", *args], capture_output=True, text=True, **kwargs)


def test_shipped_recipes_load_and_every_step_is_typed():
    recipe = load_recipe("default")
    assert [s.subtask for s in recipe.steps] == [1, 2, 3, 4]
    assert isinstance(recipe.steps[2].config, GenerateConfig)
    assert recipe.steps[2].config.prompt == "st3-answer@1"


@pytest.mark.parametrize(
    "change, message",
    [
        ({"steps": [{"subtask": 3, "method": "llm", "sampels": 5}]}, "steps[0].sampels: unknown key"),
        ({"steps": [{"subtask": 3, "samples": "five"}]}, "steps[0].samples: expected a whole number"),
        ({"steps": [{"subtask": 9}]}, "steps[0]: each step needs 'subtask: 1|2|3|4'"),
        ({"steps": [{"subtask": 3, "method": "llm", "backend": "nope"}]}, "backend 'nope' is not defined"),
        ({"steps": [{"subtask": 3, "evidence": "st2"}]}, "evidence 'st2' is not an earlier step"),
        ({"steps": [{"subtask": 2, "method": "magic"}]}, "method is one of aligner, llm"),
        ({"stepz": []}, "stepz: unknown key"),
        ({"threads": "two", "steps": [{"subtask": 1}]}, "threads: expected a whole number"),
        ({"steps": ["st1"]}, "steps[0]: expected a mapping"),
        ({"backends": {"x": {"kind": "openai"}}, "steps": [{"subtask": 1}]}, "needs a base URL"),
        ({"steps": [{"subtask": 3, "method": "llm", "samples": 3}], "backends": {"default": {}}}, "greedy"),
        ({"steps": [{"subtask": 2, "submit": "yes"}]}, "steps[0].submit: expected true or false"),
        ({"steps": [{"subtask": 2}, {"subtask": 2, "name": "b"}]}, "steps st2, b are all ST2; mark exactly one"),
    ],
)
def test_bad_recipes_are_one_line_errors(change, message):
    with pytest.raises(DataError) as err:
        parse_recipe(change, "r.yaml")
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_recipe_errors_on_the_command_line_are_one_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("- just\n- a list\n")
    result = ehrqa("run", "--recipe", str(bad), "--out", str(tmp_path / "r"))
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "not list" in result.stderr
    assert "Traceback" not in result.stderr


def test_floats_written_as_text_are_numbers():
    assert from_dict(GenerateConfig, {"temperature": "7e-1"}).temperature == pytest.approx(0.7)


@pytest.mark.model
def test_deterministic_steps_write_submissions_scores_and_records(tmp_path):
    cases = read_dataset()
    recipe = parse_recipe({"steps": [{"subtask": 1}, {"subtask": 2}, {"subtask": 4}]}, "r")
    rows = run(recipe, cases, tmp_path / "run")
    assert [r["status"] for r in rows] == ["ok", "ok", "ok"]
    loaded = read_run(tmp_path / "run")
    assert set(loaded.steps) == {"st1", "st2", "st4"}
    assert all(step.done for step in loaded.steps.values())
    for n in (1, 2, 4):
        entries = json.loads(loaded.layout.official(n).read_text())
        assert [e["case_id"] for e in entries] == [c.id for c in cases]
        step = loaded.submitted(n)
        assert step.name == f"st{n}" and step.submission == entries
        assert set(step.scores["per_case"]) == {c.id for c in cases}
    assert loaded.meta["recipe"]["steps"][0]["method"] == "rule"
    assert loaded.meta["threads"] >= 1 and loaded.meta["versions"]["ehrqa"]


@pytest.mark.model
def test_st1_never_sees_the_clinician_question(tmp_path):
    """Scrambling every field ST1's official input lacks changes no ST1 prediction."""
    from dataclasses import replace

    cases = read_dataset()
    scrambled = [
        replace(c, clinician_question="Scrambled?", question_phrases=(), sentences=c.sentences[:1], specialty="none")
        for c in cases
    ]
    recipe = parse_recipe({"steps": [{"subtask": 1}]}, "r")
    run(recipe, cases, tmp_path / "a")
    run(recipe, scrambled, tmp_path / "b")
    a = json.loads((tmp_path / "a" / "subtask1" / "submission.json").read_text())
    b = json.loads((tmp_path / "b" / "subtask1" / "submission.json").read_text())
    assert a == b
    assert all(c.input_for(1).clinician_question is None and not c.input_for(1).sentences for c in cases)


@pytest.mark.model
def test_a_changed_recipe_or_prompt_is_refused_on_resume(tmp_path, monkeypatch, openai_server):
    cases = read_dataset()[:2]
    recipe = parse_recipe(openai_recipe(openai_server.base_url), "r")
    run(recipe, cases, tmp_path / "run")
    other = parse_recipe(openai_recipe(openai_server.base_url, max_new_tokens=50), "r")
    with pytest.raises(DataError, match="different recipe"):
        run(other, cases, tmp_path / "run")
    # a prompt file edited in place keeps its name but not its sha256
    from ehrqa.llm import prompt as prompt_module

    edited = tmp_path / "prompts"
    edited.mkdir()
    for f in prompt_module.PROMPT_DIR.glob("*.md"):
        (edited / f.name).write_text(f.read_text().replace("a few sentences", "two sentences"))
    monkeypatch.setattr(prompt_module, "PROMPT_DIR", edited)
    prompt_module.load_prompt.cache_clear()
    with pytest.raises(DataError, match="different prompts"):
        run(recipe, cases, tmp_path / "run")
    rows = run(recipe, cases, tmp_path / "run", force=True)
    assert rows[0]["status"] == "ok"
    prompt_module.load_prompt.cache_clear()


def test_records_without_a_run_config_are_refused(tmp_path):
    steps = tmp_path / "run" / "steps" / "st1"
    steps.mkdir(parents=True)
    (steps / "records.jsonl").write_text('{"case_id": "1", "prediction": "x?", "status": "ok"}\n')
    with pytest.raises(DataError, match="no run.json"):
        run(parse_recipe({"steps": [{"subtask": 1}]}, "r"), read_dataset(), tmp_path / "run")


@pytest.mark.model
def test_a_second_identical_run_sends_no_request(tmp_path, openai_server):
    cases = read_dataset()[:3]
    recipe = parse_recipe(openai_recipe(openai_server.base_url, temperature=0.8, samples=2), "r")
    run(recipe, cases, tmp_path / "run")
    sent = openai_server.count
    assert sent == 6
    seeds = [b["seed"] for b in openai_server.bodies]
    assert len(set(seeds)) == 6  # every (case, sample) its own seed
    # a deleted records file (the step redone) is answered from the reply cache
    for path in (tmp_path / "run" / "steps").glob("*/*"):
        path.unlink()
    rows = run(recipe, cases, tmp_path / "run")
    assert openai_server.count == sent and rows[0]["calls"] == 0
    # a new run directory with the same seed asks again, with the same seeds
    run(recipe, cases, tmp_path / "again")
    assert [b["seed"] for b in openai_server.bodies[sent:]] == seeds


@pytest.mark.model
def test_a_failing_case_is_recorded_and_the_rerun_retries_only_it(tmp_path, openai_server):
    cases = read_dataset()[:3]
    bad = cases[1].id

    def responder(body):
        text = body["messages"][-1]["content"]
        return "400" if " ".join(cases[1].narrative.split()) in text and openai_server.count < 4 else None

    from fakes.openai_server import act

    openai_server.responder = lambda body: act(responder(body)) if responder(body) else None
    recipe = parse_recipe(openai_recipe(openai_server.base_url), "r")
    rows = run(recipe, cases, tmp_path / "run")
    assert rows[0]["status"] == "failed" and rows[0]["failed"] == [bad]
    assert rows[0]["reasons"] and "Traceback" not in str(rows[0])
    assert not (tmp_path / "run" / "subtask3").exists()
    before = openai_server.count
    rows = run(recipe, cases, tmp_path / "run")
    assert rows[0]["status"] == "ok"
    assert openai_server.count == before + 1  # only the failed case was asked again


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip().startswith("{")]


def test_sigkill_mid_st3_then_rerun_equals_an_uninterrupted_run(tmp_path, openai_server):
    from fakes.openai_server import reply

    openai_server.responder = lambda body: reply(f"Answer {len(body['messages'][-1]['content'])}.", delay=0.25)
    recipe_file = tmp_path / "recipe.yaml"
    recipe_file.write_text(yaml.safe_dump(openai_recipe(openai_server.base_url)))
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    out = tmp_path / "killed"
    args = [sys.executable, "-m", "ehrqa.cli", "-q", "run", "--recipe", str(recipe_file), "--out", str(out)]
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    records = out / "steps" / "st3" / "records.jsonl"
    deadline = time.time() + 60
    while time.time() < deadline and (not records.exists() or len(_records(records)) < 3):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    n_before = len(_records(records))
    assert 3 <= n_before < 14 and not (out / "subtask3").exists()
    assert ehrqa("-q", "run", "--recipe", str(recipe_file), "--out", str(out), env=env).returncode == 0
    assert ehrqa("-q", "run", "--recipe", str(recipe_file), "--out", str(tmp_path / "whole"), env=env).returncode == 0
    ids = [r["case_id"] for r in _records(records)]
    assert sorted(ids) == sorted({c.id for c in read_dataset()}) and len(ids) == len(set(ids))
    killed = (out / "subtask3" / "submission.json").read_bytes()
    assert killed == (tmp_path / "whole" / "subtask3" / "submission.json").read_bytes()


def test_command_line_overrides_reach_steps_and_backends():
    from ehrqa.commands.run import apply_overrides

    data = yaml.safe_load((ROOT / "recipes" / "runs" / "open-llm.yaml").read_text())
    data = apply_overrides(data, ["st4.samples=3", "backends.llm.model=my-model", "seed=9"])
    recipe = parse_recipe(data, "open-llm.yaml")
    assert recipe.step("st4").config.samples == 3 and recipe.backends["llm"].model == "my-model"
    assert recipe.seed == 9
    with pytest.raises(DataError, match="no step named 'st9'"):
        apply_overrides(data, ["st9.samples=3"])
    with pytest.raises(DataError, match="backends.NAME.KEY"):
        apply_overrides(data, ["backends.nope.model=x"])


@pytest.mark.parametrize("name", ["default", "open-llm", "open-llm-ensemble", "nomic-st2"])
def test_shipped_run_recipes_parse(name):
    recipe = load_recipe(name)
    assert recipe.steps and all(s.config for s in recipe.steps)


@pytest.mark.model
def test_the_same_model_at_another_address_continues_the_run(tmp_path, openai_server):
    cases = read_dataset()[:2]
    run(parse_recipe(openai_recipe(openai_server.base_url), "r"), cases, tmp_path / "run")
    moved = openai_recipe("http://127.0.0.1:9/v1")  # nothing listens there: nothing may be asked
    moved["backends"]["fake"]["timeout"] = 5.0
    rows = run(parse_recipe(moved, "r"), cases, tmp_path / "run")
    assert rows[0]["status"] == "ok" and rows[0]["calls"] == 0
    with pytest.raises(DataError, match="different recipe"):
        other_model = openai_recipe(openai_server.base_url)
        other_model["backends"]["fake"]["model"] = "another-model"
        run(parse_recipe(other_model, "r"), cases, tmp_path / "run")
