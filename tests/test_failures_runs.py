"""Failure paths of runs, each a real ``ehrqa`` subprocess: remote backends, run directories, flags.

A server failure is a case's failure, not the run's: the failed cases are recorded with a reason
(a status, never text), every good reply is kept, the command ends with one line naming the failed
cases (exit 2), and running it again asks only for those. A wrong key, model or URL stops at once
with one line and a hint. A bad flag, path or run directory is one line naming it, and nothing
half-written is left behind.

The chat server is the in-process loopback fake (``tests/fakes/openai_server.py``, the
``openai_server`` fixture); the dataset is the bundled sample's XML without its key, so ST3 is not
scored and each run costs only the start-up of the command.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from ehrqa.data.archehr import read_dataset, sample_dir
from ehrqa.tasks.generate import EMPTY_REPLY_FALLBACK
from fakes.openai_server import act
from test_failures_cli import AS_NOBODY, assert_one_line_error, leftovers
from test_failures_cli import shared_dir as shared_dir_fixture  # noqa: F401 (registers the shared_dir fixture)

ROOT = Path(__file__).resolve().parents[1]
CASES = {c.id: c for c in read_dataset()}
SECRET = "sk-test-7f3a9c-never-written"


def ehrqa(*args: str, env: dict | None = None, as_nobody: bool = False) -> subprocess.CompletedProcess:
    """``ehrqa ARGS`` from this checkout's ``src`` in a fresh interpreter; text stdout and stderr.
    ``env`` adds variables (None removes one); ``as_nobody`` runs as an unprivileged user when root."""
    merged = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1", **(env or {})}
    full_env = {k: v for k, v in merged.items() if v is not None}
    prefix = AS_NOBODY if as_nobody and os.geteuid() == 0 else []
    return subprocess.run(
        [*prefix, sys.executable, "-m", "ehrqa.cli", *map(str, args)],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=300,
    )


def generate(server, tmp_path: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """``ehrqa -q generate`` against ``server`` (1 retry, a 1 s timeout) into ``tmp_path/out``."""
    return ehrqa(
        "-q",
        "generate",
        "--data",
        xml_only(tmp_path),
        "--backend",
        "openai",
        "--base-url",
        server.base_url,
        "--model",
        "m",
        "--retries",
        "1",
        "--timeout",
        "1",
        "--out",
        tmp_path / "out" / "submission.json",
        *args,
        env=env,
    )


def xml_only(tmp_path: Path) -> Path:
    """The bundled sample's XML alone (no key: nothing to score, so runs stay quick)."""
    data = tmp_path / "data"
    if not data.exists():
        data.mkdir()
        shutil.copy(sample_dir() / "archehr-qa.xml", data / "archehr-qa.xml")
    return data


def case_of(body: dict) -> str:
    """The id of the case whose narrative a request's messages hold."""
    text = " ".join(" ".join(str(m.get("content", "")).split()) for m in body["messages"])
    found = [cid for cid, case in CASES.items() if " ".join(case.narrative.split()) in text]
    assert len(found) == 1, found
    return found[0]


def records(run_dir: Path, step: str = "st3") -> dict[str, dict]:
    """The last record per case of a step; every line of the file must be whole JSON."""
    lines = (run_dir / "steps" / step / "records.jsonl").read_text(encoding="utf-8").splitlines()
    parsed = [json.loads(line) for line in lines]  # a torn or half-written line fails here
    return {r["case_id"]: r for r in parsed}


def all_bytes(folder: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------- remote backends: stop at once


def test_a_refused_key_stops_at_once_naming_the_variable(tmp_path, openai_server):
    openai_server.api_key = "the-right-key"
    proc = generate(openai_server, tmp_path, "--cases", "101-105", "--concurrency", "1", env={"OPENAI_API_KEY": SECRET})
    assert_one_line_error(proc, "HTTP 401", "OPENAI_API_KEY", "refused", openai_server.base_url)
    assert openai_server.count == 1  # not 5: the worker stops before the failure is reported
    assert SECRET not in proc.stderr + proc.stdout
    # a variable that is not set is named as such
    proc = generate(openai_server, tmp_path, "--cases", "101", "--api-key-env", "EHRQA_TEST_NO_SUCH_KEY")
    assert_one_line_error(proc, "HTTP 401", "EHRQA_TEST_NO_SUCH_KEY is not set")
    out = tmp_path / "out"
    assert not (out / "submission.json").exists() and leftovers(out) == []
    assert SECRET.encode() not in all_bytes(out)


def test_an_unknown_model_stops_at_once_with_a_hint(tmp_path, openai_server):
    openai_server.models = {"served-model"}
    proc = generate(openai_server, tmp_path, "--cases", "101-105", "--concurrency", "1")
    assert_one_line_error(proc, "HTTP 404", "model 'm'", "model name", "/v1", openai_server.base_url)
    assert openai_server.count == 1
    assert not (tmp_path / "out" / "submission.json").exists()


def test_nobody_listening_is_one_line_naming_the_url(tmp_path):
    port = free_port()

    class Gone:  # a base URL where the connection is refused
        base_url = f"http://127.0.0.1:{port}/v1"

    proc = generate(Gone, tmp_path, "--cases", "101-102")
    assert_one_line_error(proc, f"127.0.0.1:{port}/v1", "connection refused", "server running")
    out = tmp_path / "out"
    assert not (out / "submission.json").exists() and leftovers(out) == []


# ---------------------------------------------------------------- remote backends: one case's failure


def test_a_case_that_always_gets_400_costs_no_other_case(tmp_path, openai_server):
    openai_server.responder = lambda body: act("400") if case_of(body) == "102" else None
    proc = generate(openai_server, tmp_path, "--cases", "101-104")
    line = assert_one_line_error(proc, "1 case(s) failed: 102", "HTTP 400", "again")
    assert "101" not in line and "103" not in line
    assert openai_server.count == 4  # a 400 is not retried
    run_dir = tmp_path / "out" / "submission.run"
    first = records(run_dir)
    assert {cid: r["status"] for cid, r in first.items()} == {"101": "ok", "102": "failed", "103": "ok", "104": "ok"}
    assert first["102"]["reason"] == "HTTP 400" and first["102"]["prediction"] is None
    assert not (tmp_path / "out" / "submission.json").exists() and not (run_dir / "steps" / "st3" / "done").exists()
    assert leftovers(tmp_path / "out") == []

    openai_server.responder = None  # the server is fixed: the rerun asks only for the failed case
    openai_server.reset()
    proc = generate(openai_server, tmp_path, "--cases", "101-104")
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    assert [case_of(b) for b in openai_server.bodies] == ["102"]
    entries = {e["case_id"]: e["prediction"] for e in json.loads((tmp_path / "out" / "submission.json").read_text())}
    assert sorted(entries) == ["101", "102", "103", "104"]
    for cid in ("101", "103", "104"):  # the good replies of the first run, kept
        assert entries[cid] == first[cid]["prediction"]
    assert records(run_dir)["102"]["status"] == "ok"


# Each case meets one kind of broken server; 101 and 111 get good replies.
BROKEN = {
    "102": ("500", "HTTP 500"),
    "103": ("slow=5", "timeout"),
    "104": ("malformed-json", "body is not JSON"),
    "105": ("non-utf8", "body is not UTF-8"),
    "106": ("truncated", "truncated body"),
    "107": ("not-http", "not an HTTP reply"),
    "108": ("empty-body", "empty body"),
    "109": ("empty-choices", "no choices"),
    "110": ("json-null", "body is JSON null"),
}


def test_every_kind_of_broken_reply_is_a_failed_case_retried_then_redone_alone(tmp_path, openai_server):
    openai_server.responder = lambda body: act(BROKEN[case_of(body)][0]) if case_of(body) in BROKEN else None
    proc = ehrqa(
        "generate",  # without -q: the per-request warnings come before the one error line
        *("--data", xml_only(tmp_path), "--backend", "openai", "--base-url", openai_server.base_url, "--model", "m"),
        *("--retries", "1", "--timeout", "1", "--cases", "101-111", "--out", tmp_path / "out" / "s.json"),
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    *warnings, last = proc.stderr.splitlines()
    assert last.startswith("ehrqa: error: ST3 (st3): 9 case(s) failed: 102, 103,"), last
    assert "and 1 more" in last
    assert len(warnings) == 9 and all(w.startswith("ehrqa: WARNING: ") for w in warnings), warnings
    sent: dict[str, int] = {}
    for body in openai_server.bodies:
        sent[case_of(body)] = sent.get(case_of(body), 0) + 1
    assert sent == {cid: 2 if cid in BROKEN else 1 for cid in CASES if "101" <= cid <= "111"}  # each retried once
    run_dir = tmp_path / "out" / "s.run"
    found = records(run_dir)
    for cid, (_, reason) in BROKEN.items():
        assert found[cid]["status"] == "failed" and found[cid]["reason"] == f"{reason} after 2 attempts", cid
    assert found["101"]["status"] == found["111"]["status"] == "ok"
    assert leftovers(tmp_path / "out") == []

    openai_server.responder = None
    openai_server.reset()  # the rerun, with the default timeout and retries, continues the same run
    proc = ehrqa(
        "-q",
        *("generate", "--data", xml_only(tmp_path), "--backend", "openai", "--base-url", openai_server.base_url),
        *("--model", "m", "--cases", "101-111", "--out", tmp_path / "out" / "s.json"),
    )
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    assert sorted(case_of(b) for b in openai_server.bodies) == sorted(BROKEN)
    assert len(json.loads((tmp_path / "out" / "s.json").read_text())) == 11


def test_a_null_content_reply_is_the_fixed_fallback_and_never_asked_again(tmp_path, openai_server):
    openai_server.responder = lambda body: act("null-content")
    proc = generate(openai_server, tmp_path, "--cases", "101-103")
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    entries = json.loads((tmp_path / "out" / "submission.json").read_text())
    assert [e["prediction"] for e in entries] == [EMPTY_REPLY_FALLBACK] * 3
    assert {r["status"] for r in records(tmp_path / "out" / "submission.run").values()} == {"fallback"}
    assert openai_server.count == 3
    openai_server.reset()
    proc = generate(openai_server, tmp_path, "--cases", "101-103")
    assert proc.returncode == 0 and openai_server.count == 0


def test_the_api_key_is_sent_but_never_written(tmp_path, openai_server):
    openai_server.api_key = SECRET
    proc = generate(openai_server, tmp_path, "--cases", "101-102", env={"OPENAI_API_KEY": SECRET})
    assert proc.returncode == 0, proc.stderr
    assert openai_server.count == 2 and all(r.authorized for r in openai_server.received)
    assert (tmp_path / "out" / "submission.run" / "run.json").exists()
    assert SECRET.encode() not in all_bytes(tmp_path / "out")
    assert SECRET not in proc.stdout + proc.stderr


def test_a_failed_case_in_a_recipe_run_is_named_after_the_summary(tmp_path, openai_server):
    import yaml

    openai_server.responder = lambda body: act("400") if case_of(body) == "103" else None
    recipe = tmp_path / "recipe.yaml"
    backend = {"kind": "openai", "model": "m", "base_url": openai_server.base_url, "retries": 0}
    recipe.write_text(yaml.safe_dump({"backends": {"srv": backend}, "steps": [{"subtask": 3, "backend": "srv"}]}))
    args = ("run", "--recipe", recipe, "--data", xml_only(tmp_path), "--cases", "101-103", "--out", tmp_path / "r")
    proc = ehrqa("-q", *args)
    assert_one_line_error(proc, "ST3 (st3): 1 case(s) failed: 103", "HTTP 400")
    assert proc.stdout == ""  # -q: errors only; the summary table goes to summary.json
    assert json.loads((tmp_path / "r" / "summary.json").read_text())[0]["failed"] == ["103"]
    openai_server.responder = None
    openai_server.reset()
    assert ehrqa("-q", *args).returncode == 0
    assert [case_of(b) for b in openai_server.bodies] == ["103"]


# ---------------------------------------------------------------- run directories


def test_a_torn_last_record_is_cut_before_appending_and_its_case_redone(tmp_path, openai_server):
    assert generate(openai_server, tmp_path, "--cases", "101-103").returncode == 0
    run_dir = tmp_path / "out" / "submission.run"
    path = run_dir / "steps" / "st3" / "records.jsonl"
    whole = path.read_bytes()
    last = json.loads(whole.splitlines()[-1])["case_id"]
    cut = whole.rstrip(b"\n")
    path.write_bytes(cut[: len(cut) - 20])  # a kill in the middle of the last record
    (run_dir / "steps" / "st3" / "done").unlink()
    openai_server.reset()
    proc = generate(openai_server, tmp_path, "--cases", "101-103")
    assert proc.returncode == 0, proc.stderr
    assert openai_server.count == 0  # the torn case is redone from the run's reply cache
    found = records(run_dir)  # every line parses
    assert sorted(found) == ["101", "102", "103"] and all(r["status"] == "ok" for r in found.values())
    lines = path.read_text().splitlines()
    assert len(lines) == 3 and json.loads(lines[-1])["case_id"] == last  # cut, then appended again


def test_a_last_record_missing_only_its_newline_is_kept_when_appending(tmp_path):
    from ehrqa.io import JsonlWriter, read_jsonl

    path = tmp_path / "records.jsonl"
    path.write_text('{"case_id": "1"}\n{"case_id": "2"}')  # whole, but the newline never made it
    assert [r["case_id"] for r in read_jsonl(path)] == ["1", "2"]
    with JsonlWriter(path) as writer:
        writer.write({"case_id": "3"})
    assert [json.loads(line)["case_id"] for line in path.read_text().splitlines()] == ["1", "2", "3"]


@pytest.mark.parametrize(
    "content, message",
    [
        ('{"format": "ehrqa-run/1", "recipe": ', "not valid JSON"),
        ("", "is empty"),
        ("  \n", "is empty"),
        ('["a", "list"]', "not an ehrqa run config"),
        ('{"format": "something-else/9"}', "not an ehrqa run config"),
    ],
)
def test_a_corrupt_or_empty_run_config_is_one_line_and_left_alone(tmp_path, content, message):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "run.json").write_text(content)
    proc = ehrqa("run", "--recipe", "default", "--subtasks", "1", "--out", run_dir)
    assert_one_line_error(proc, str(run_dir / "run.json"), message)
    assert (run_dir / "run.json").read_text() == content
    assert sorted(p.name for p in run_dir.iterdir()) == ["run.json"]


def test_records_without_their_run_config_are_refused_not_resumed(tmp_path):
    step = tmp_path / "run" / "steps" / "st1"
    step.mkdir(parents=True)
    record = '{"case_id": "101", "prediction": "Why?", "status": "ok"}\n'
    (step / "records.jsonl").write_text(record)
    proc = ehrqa("run", "--recipe", "default", "--subtasks", "1", "--out", tmp_path / "run")
    assert_one_line_error(proc, str(tmp_path / "run"), "no run.json", "--force")
    assert (step / "records.jsonl").read_text() == record and not (tmp_path / "run" / "run.json").exists()


def test_a_run_directory_that_is_a_file(tmp_path):
    a_file = tmp_path / "afile"
    a_file.write_text("keep me\n")
    proc = ehrqa("run", "--recipe", "default", "--subtasks", "1", "--out", a_file)
    assert_one_line_error(proc, str(a_file), "is a file, not a run directory")
    proc = ehrqa("generate", "--out", tmp_path / "s.json", "--run-dir", a_file, "--cases", "101")
    assert_one_line_error(proc, str(a_file), "is a file, not a run directory")
    assert a_file.read_text() == "keep me\n" and sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


@pytest.fixture
def shared(shared_dir_fixture) -> Path:  # noqa: F811 (the fixture imported above, by name)
    """A folder the unprivileged user can reach (``shared_dir`` of test_failures_cli)."""
    return shared_dir_fixture


def test_unwritable_run_directories(shared):
    locked = shared / "locked"
    locked.mkdir(mode=0o555)
    proc = ehrqa("run", "--recipe", "default", "--subtasks", "1", "--out", locked / "r", as_nobody=True)
    assert_one_line_error(proc, str(locked / "r"), "cannot create the run directory", "permission denied")
    writable = shared / "writable"
    writable.mkdir()
    writable.chmod(0o777)  # mkdir applies the umask
    args = ("generate", "--out", writable / "s.json", "--run-dir", locked / "r", "--cases", "101")
    assert_one_line_error(ehrqa(*args, as_nobody=True), str(locked / "r"), "cannot create the run directory")
    existing = shared / "existing"  # a run directory the user may read but not write
    existing.mkdir(mode=0o555)
    args = ("generate", "--out", writable / "s.json", "--run-dir", existing, "--cases", "101")
    assert_one_line_error(ehrqa(*args, as_nobody=True), str(existing / "run.json"), "cannot write")
    assert [list(d.iterdir()) for d in (locked, writable, existing)] == [[], [], []]


# ---------------------------------------------------------------- --out


def test_an_unwritable_out_is_refused_before_any_work(shared):
    locked = shared / "locked"
    locked.mkdir(mode=0o555)
    writable = shared / "writable"
    writable.mkdir()
    writable.chmod(0o777)  # mkdir applies the umask
    args = ("generate", "--out", locked / "s.json", "--run-dir", writable / "r", "--cases", "101")
    assert_one_line_error(ehrqa(*args, as_nobody=True), f"--out {locked / 's.json'}", "permission denied")
    proc = ehrqa("generate", "--out", locked / "deeper" / "s.json", "--cases", "101", as_nobody=True)
    assert_one_line_error(proc, f"cannot write in {locked}", "permission denied")
    a_file = shared / "afile"
    a_file.write_text("")
    proc = ehrqa("generate", "--out", a_file / "deeper" / "s.json", "--cases", "101")
    assert_one_line_error(proc, "--out", f"{a_file} is a file, not a folder")
    assert list(locked.iterdir()) == [] and list(writable.iterdir()) == []  # no run directory was begun


def test_an_out_that_is_a_directory(tmp_path):
    folder = tmp_path / "sub"
    folder.mkdir()
    for command in ("generate", "interpret", "identify", "align"):
        proc = ehrqa(command, "--out", folder, "--cases", "101")
        assert_one_line_error(proc, f"--out {folder}", "is a directory", "submission.json")
    assert list(folder.iterdir()) == [] and sorted(p.name for p in tmp_path.iterdir()) == ["sub"]
    assert leftovers(tmp_path) == []


# ---------------------------------------------------------------- flags


@pytest.mark.parametrize("value", ["x", "", "5", "1,,x", ","])
def test_bad_subtasks_are_one_line(tmp_path, value):
    proc = ehrqa("run", "--recipe", "default", "--subtasks", value, "--out", tmp_path / "r")
    assert_one_line_error(proc, "--subtasks", repr(value))
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    "cases, message",
    [(["3-1"], "range 3-1 runs backwards"), (["999"], "not in the dataset: 999"), (["101", "abc"], "abc")],
)
def test_bad_case_selections_are_one_line(tmp_path, cases, message):
    for command in (
        ["run", "--recipe", "default", "--out", tmp_path / "r"],
        ["generate", "--out", tmp_path / "s.json"],
    ):
        proc = ehrqa(*command, "--cases", *cases)
        assert_one_line_error(proc, "--cases", message)
    assert list(tmp_path.iterdir()) == []


def test_a_model_path_that_is_not_there_is_refused_before_loading(tmp_path):
    proc = ehrqa("generate", "--method", "llm", "--model", "/no/such/dir", "--out", tmp_path / "s.json")
    assert_one_line_error(proc, "--model /no/such/dir", "no such model directory")
    empty = tmp_path / "empty-model"
    empty.mkdir()
    proc = ehrqa("generate", "--model", empty, "--out", tmp_path / "s.json")
    assert_one_line_error(proc, f"--model {empty}", "no config.json")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty-model"]  # no run directory was begun


@pytest.mark.parametrize(
    "flags, named",
    [
        (["--base-url", "http://127.0.0.1:9/v1"], "--base-url"),
        (["--timeout", "3"], "--timeout"),
        (["--retries", "2"], "--retries"),
        (["--concurrency", "2"], "--concurrency"),
        (["--api-key-env", "MY_KEY"], "--api-key-env"),
        (["--method", "llm", "--base-url", "http://127.0.0.1:9/v1"], "--base-url"),
        (["--method", "extractive", "--timeout", "3"], "--timeout"),
        (["--backend", "openai", "--base-url", "http://127.0.0.1:9/v1", "--model", "m", "--adapter", "a"], "--adapter"),
    ],
)
def test_backend_flags_for_another_backend_are_refused(tmp_path, flags, named):
    proc = ehrqa("generate", "--out", tmp_path / "s.json", "--cases", "101", *flags)
    assert_one_line_error(proc, named)
    assert list(tmp_path.iterdir()) == []


def test_recipe_files_of_the_wrong_kind(tmp_path):
    listed = tmp_path / "list.json"
    listed.write_text('["not", "a", "mapping"]')
    generator = ROOT / "recipes" / "cpu-smollm2.yaml"
    run_recipe = ROOT / "src" / "ehrqa" / "recipes" / "runs" / "default.yaml"
    checks = [
        (["run", "--recipe", listed, "--out", tmp_path / "r"], [str(listed), "not list"]),
        (["run", "--recipe", generator, "--out", tmp_path / "r"], [str(generator), "generator"]),
        (["train", "generator", "--recipe", listed, "--output", tmp_path / "g"], [str(listed), "not list"]),
        (["train", "generator", "--recipe", run_recipe, "--output", tmp_path / "g"], [str(run_recipe), "generator"]),
    ]
    for args, fragments in checks:
        assert_one_line_error(ehrqa(*args), *fragments)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["list.json"]


def test_a_recipe_of_the_wrong_kind_for_train_aligner(tmp_path):
    listed = tmp_path / "list.json"
    listed.write_text('["not", "a", "mapping"]')
    run_recipe = ROOT / "src" / "ehrqa" / "recipes" / "runs" / "default.yaml"
    assert_one_line_error(ehrqa("train", "aligner", "--recipe", listed, "--out", tmp_path / "m"), str(listed))
    assert_one_line_error(ehrqa("train", "aligner", "--recipe", run_recipe, "--out", tmp_path / "m"), "aligner")


def test_quiet_hides_every_progress_bar(tmp_path):
    """Loud, a local model run draws bars (the model loader's and ehrqa's over replies); -q, none."""
    from tiny_models import build_tiny_qwen3

    model = build_tiny_qwen3(tmp_path / "tiny-qwen3")  # a random 2-layer Qwen3: loads in a moment
    env = {"EHRQA_NO_PROGRESS": None, "TQDM_DISABLE": None, "HF_HUB_DISABLE_PROGRESS_BARS": None}
    args = ["generate", "--data", xml_only(tmp_path), "--model", model, "--max-new-tokens", "2", "--cases", "101"]
    loud = ehrqa(*args, "--out", tmp_path / "loud" / "s.json", env=env)
    assert loud.returncode == 0, loud.stderr
    assert "Loading weights" in loud.stderr and "replies" in loud.stderr and "%|" in loud.stderr, loud.stderr
    quiet = ehrqa(*args, "-q", "--out", tmp_path / "quiet" / "s.json", env=env)
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr
    assert (tmp_path / "quiet" / "s.json").exists()
