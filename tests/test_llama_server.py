"""Through a real OpenAI-compatible server: llama.cpp's (llama-cpp-python) serving SmolLM2-135M-Instruct.

``make test`` installs the server (scripts/install-llama-server.sh); one server process serves this
module. Requests go through a loopback counting proxy (tests/fakes/counting_proxy.py), so the tests
see exactly what reached the server. The model is far too small for the task: these tests check
the plumbing (every subtask end to end, schema-constrained JSON, seeds, concurrency, resuming),
never the quality of the answers. Cases and token limits are kept small: one thread generates.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from ehrqa.cli import main
from ehrqa.data.archehr import read_dataset
from ehrqa.llm import make_backend
from ehrqa.llm.backend import BackendSpec, ChatRequest, GenerationConfig
from fakes.counting_proxy import CountingProxy
from llama_server import LlamaServer, installed

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent
CASES = ("114", "107")  # the sample's two shortest notes (12 and 13 sentences)


@pytest.fixture(scope="module")
def llama(tmp_path_factory):
    if not installed():
        if os.environ.get("CI"):
            pytest.fail("llama-cpp-python is not installed; make test installs it (scripts/install-llama-server.sh)")
        pytest.skip("llama-cpp-python is not installed: bash scripts/install-llama-server.sh .venv/bin/python")
    from ehrqa.llm.models import smollm2_gguf

    with LlamaServer(smollm2_gguf(), log=tmp_path_factory.mktemp("llama") / "server.log") as server:
        yield server


@pytest.fixture
def proxy(llama):
    with CountingProxy(llama.base_url) as counting:
        yield counting


def llm_step(subtask: int, prompt: str, **settings) -> dict:
    return {"subtask": subtask, "method": "llm", "backend": "srv", "prompt": prompt, **settings}


def recipe_file(path: Path, base_url: str, steps: list[dict], **backend) -> str:
    spec = {"kind": "openai", "model": "smollm2", "base_url": base_url, "retries": 0, "timeout": 600, **backend}
    path.write_text(yaml.safe_dump({"name": "llama", "backends": {"srv": spec}, "steps": steps}), encoding="utf-8")
    return str(path)


def test_every_subtask_end_to_end_with_schema_constrained_json(proxy, tmp_path, capsys):
    steps = [
        llm_step(1, "st1-question@1", max_new_tokens=24, shots=0),
        llm_step(2, "st2-classify@1", max_new_tokens=256),
        llm_step(3, "st3-evidence@1", max_new_tokens=48, evidence="st2"),
        llm_step(4, "st4-align@1", max_new_tokens=160),
    ]
    recipe = recipe_file(tmp_path / "r.yaml", proxy.base_url, steps, response_format="json_object+schema")
    status = main(["run", "--recipe", recipe, "--cases", *CASES, "--out", str(tmp_path / "run")])
    assert status == 0, capsys.readouterr().err
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert [row["status"] for row in summary] == ["ok"] * 4
    assert all(row["calls"] >= len(CASES) for row in summary)
    assert all((tmp_path / "run" / f"subtask{n}" / "submission.json").exists() for n in (1, 2, 3, 4))
    sent = [b["response_format"] for b in proxy.bodies if "response_format" in b]
    assert sent and all(f["type"] == "json_object" and "schema" in f for f in sent)

    # Every ST2/ST4 reply is JSON of the schema: each of the case's ids, and only those.
    cases = {c.id: c for c in read_dataset(None) if c.id in CASES}
    replies = [json.loads(line) for line in (tmp_path / "run" / "cache" / "replies.jsonl").read_text().splitlines()]
    checked = 0
    for record in replies:
        case, prompt = cases[record["case_id"]], record["prompt"].split("@")[0]
        if prompt not in ("st2-classify", "st4-align"):
            continue
        reply = json.loads(record["reply"]["text"])
        note_ids = {s.id for s in case.sentences}
        if prompt == "st2-classify":
            assert set(reply) == note_ids
            assert set(reply.values()) <= {"essential", "supplementary", "not-relevant"}
        else:
            assert set(reply) == {a.id for a in case.answer_sentences}
            assert all(set(ids) <= note_ids for ids in reply.values())
        checked += 1
    assert checked == 2 * len(CASES)


def ask(backend, seeds: list[int]) -> list[str | None]:
    config = GenerationConfig(max_new_tokens=24, temperature=1.0)
    messages = ({"role": "user", "content": "Write one sentence about a hospital stay."},)
    requests = [ChatRequest(messages, config.for_sample(seed), "c", k) for k, seed in enumerate(seeds)]
    return [reply.text for reply in backend.complete(requests)]


def test_the_same_seed_gives_the_same_reply_and_other_seeds_differ(proxy):
    backend = make_backend(BackendSpec(kind="openai", model="smollm2", base_url=proxy.base_url, concurrency=1))
    # A prompt the server evaluates afresh and one it takes from its prompt cache give slightly
    # different logits, enough to change a sample at temperature 1: one warm-up request puts the
    # prompt in the cache, so every request below is computed the same way.
    ask(backend, [99])
    first, second, again, third = ask(backend, [11, 12, 11, 13])
    assert first and first == again
    assert len({first, second, third}) == 3
    assert [body["seed"] for body in proxy.bodies] == [99, 11, 12, 11, 13]


def test_concurrent_requests_are_all_answered_as_sequential_ones_are(proxy):
    spec = BackendSpec(kind="openai", model="smollm2", base_url=proxy.base_url, concurrency=1)
    ask(make_backend(spec), [99])  # the prompt in the server's cache (see the test above)
    sequential = ask(make_backend(spec), [21, 22, 23])
    all_open = threading.Barrier(3, timeout=120)  # the proxy forwards nothing until all three are open
    proxy.before_forward = lambda n, body: all_open.wait() >= 0
    concurrent = ask(make_backend(spec, concurrency=3), [21, 22, 23])
    assert proxy.max_in_flight == 3
    assert all(sequential) and concurrent == sequential


def test_a_killed_and_resumed_run_sends_no_request_twice(proxy, tmp_path):
    steps = [
        {"subtask": 1, "method": "llm", "backend": "srv", "prompt": "st1-question@1", "max_new_tokens": 16, "shots": 0}
    ]
    recipe = recipe_file(tmp_path / "r.yaml", proxy.base_url, steps, concurrency=1)
    run_dir = tmp_path / "run"
    cache = run_dir / "cache" / "replies.jsonl"
    command = [sys.executable, "-m", "ehrqa.cli", "run", "--recipe", recipe, "--out", str(run_dir)]
    command += ["--cases", "101", "102", "103"]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    running: list[subprocess.Popen] = []

    def kill_at_the_third(n: int, body: dict | None) -> bool:
        """The third request: once the first two replies are stored, kill the run (no reply for it)."""
        if n != 3:
            return True
        for _ in range(600):  # the client stores each reply just after receiving it
            if cache.exists() and len(cache.read_text().splitlines()) == 2:
                break
            time.sleep(0.1)
        running[0].send_signal(signal.SIGKILL)
        return False

    proxy.before_forward = kill_at_the_third
    running.append(subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    assert running[0].wait(timeout=600) == -signal.SIGKILL
    before = list(proxy.bodies)
    assert len(before) == 2 and len(cache.read_text().splitlines()) == 2

    proxy.before_forward = None
    resumed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    after = proxy.bodies[len(before) :]
    assert len(after) == 1 and after[0] not in before  # only the case that never got its reply
    records = [json.loads(line) for line in (run_dir / "steps" / "st1" / "records.jsonl").read_text().splitlines()]
    assert sorted(r["case_id"] for r in records) == ["101", "102", "103"]
