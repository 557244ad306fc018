"""The OpenAI-compatible backend against a real HTTP server process on 127.0.0.1 (no mock objects).

The server is a small stdlib ``http.server`` implementing ``POST /v1/chat/completions``. Its reply
is derived from the request, and it can be told (through the user message) to fail, stall or
count, so retries, timeouts and bounded concurrency are observed from outside.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request

import pytest

from ehrqa.data.archehr import read_dataset
from ehrqa.data.submission import check_submission, read_submission
from ehrqa.llm.backend import GenerationConfig, make_backend
from ehrqa.llm.openai import OpenAIChat, ServerError
from ehrqa.tasks.generate import predict

SERVER = textwrap.dedent(
    r"""
    import json, sys, threading, time
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    lock = threading.Lock()
    state = {"in_flight": 0, "max_in_flight": 0, "requests": 0, "failed": set()}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def _send(self, code, body):
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            with lock:
                if self.path.endswith("/reset"):
                    state["max_in_flight"] = 0
                self._send(200, {"max_in_flight": state["max_in_flight"], "requests": state["requests"]})

        def do_POST(self):
            if self.path != "/v1/chat/completions":
                return self._send(404, {"error": {"message": "not found"}})
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            user = body["messages"][-1]["content"]
            with lock:
                state["requests"] += 1
                state["in_flight"] += 1
                state["max_in_flight"] = max(state["max_in_flight"], state["in_flight"])
            try:
                code, answer = self._answer(body, user)
            finally:  # counted out before replying: the client may send its next request at once
                with lock:
                    state["in_flight"] -= 1
            self._send(code, answer)

        def _answer(self, body, user):
            if "FAIL-ONCE" in user and user not in state["failed"]:
                state["failed"].add(user)
                return 503, {"error": {"message": "busy"}}
            if "BAD-REQUEST" in user:
                return 400, {"error": {"message": "bad"}}
            if "STALL" in user:
                time.sleep(3)
            time.sleep(0.15)  # long enough for concurrent requests to overlap
            auth = self.headers.get("Authorization", "")
            kwargs = body.get("chat_template_kwargs", {})
            reply = (
                f"Reply to {len(body['messages'])} messages with max_tokens {body['max_tokens']}. "
                f"Auth {'yes' if auth.startswith('Bearer ') else 'no'}. "
                f"Thinking {kwargs.get('enable_thinking', 'default')} [3]. "
                f"Words {len(user.split())}."
            )
            return 200, {"choices": [{"index": 0, "message": {"role": "assistant", "content": reply}}]}

    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
    print("ready", flush=True)
    server.serve_forever()
    """
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    script = tmp_path_factory.mktemp("server") / "chat_server.py"
    script.write_text(SERVER)
    port = _free_port()
    proc = subprocess.Popen([sys.executable, str(script), str(port)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    yield f"http://127.0.0.1:{port}/v1"
    proc.terminate()
    proc.wait(timeout=10)


def _stats(base_url: str, reset: bool = False) -> dict:
    with urllib.request.urlopen(base_url + ("/reset" if reset else "/stats"), timeout=5) as r:
        return json.loads(r.read())


def _conv(text: str) -> list[dict]:
    return [{"role": "system", "content": "Be brief."}, {"role": "user", "content": text}]


def test_replies_come_back_in_order_with_settings_sent(server, monkeypatch):
    monkeypatch.setenv("EHRQA_TEST_KEY", "sk-test-secret")
    chat = OpenAIChat(server, "some-model", api_key_env="EHRQA_TEST_KEY", concurrency=3)
    replies = chat.chat([_conv("one"), _conv("two words"), _conv("now three words")], GenerationConfig(50))
    assert [r.split("Words ")[1] for r in replies] == ["1.", "2.", "3."]
    assert "max_tokens 50" in replies[0]
    assert "Auth yes" in replies[0]
    assert "Thinking default" in replies[0]  # no chat_template_kwargs for a non-Qwen3 model
    assert "sk-test-secret" not in json.dumps(chat.description)


def test_thinking_is_switched_off_for_qwen3(server):
    reply = OpenAIChat(server, "Qwen/Qwen3-4B").chat([_conv("q")], GenerationConfig(8))[0]
    assert "Thinking False" in reply
    assert "Auth no" in reply  # no key in the environment -> no header


def test_concurrency_is_bounded(server):
    before = _stats(server, reset=True)["requests"]
    chat = OpenAIChat(server, "m", concurrency=2)
    replies = chat.chat([_conv(f"case {i}") for i in range(6)], GenerationConfig(8))
    stats = _stats(server)
    assert len(replies) == 6 and stats["requests"] - before == 6
    assert stats["max_in_flight"] == 2


def test_retries_after_a_server_error(server):
    chat = OpenAIChat(server, "m", retries=2, backoff=0.05)
    before = _stats(server)["requests"]
    reply = chat.chat([_conv("FAIL-ONCE please")], GenerationConfig(8))[0]
    assert reply.startswith("Reply to 2 messages")
    assert _stats(server)["requests"] - before == 2


def test_client_errors_are_not_retried_and_name_no_text(server):
    chat = OpenAIChat(server, "m", retries=3, backoff=0.05)
    before = _stats(server)["requests"]
    with pytest.raises(ServerError) as err:
        chat.chat([_conv("BAD-REQUEST about the patient's cancer")], GenerationConfig(8))
    assert "HTTP 400" in str(err.value) and "cancer" not in str(err.value)
    assert _stats(server)["requests"] - before == 1


def test_timeout_gives_up_after_retries(server):
    chat = OpenAIChat(server, "m", timeout=0.5, retries=1, backoff=0.05)
    started = time.perf_counter()
    with pytest.raises(ServerError, match="after 2 attempts"):
        chat.chat([_conv("STALL")], GenerationConfig(8))
    assert time.perf_counter() - started < 3


def test_unreachable_server_is_reported():
    chat = OpenAIChat(f"http://127.0.0.1:{_free_port()}/v1", "m", retries=1, backoff=0.01)
    with pytest.raises(ServerError, match="after 2 attempts"):
        chat.chat([_conv("x")], GenerationConfig(8))


def test_generate_command_writes_a_valid_submission_and_no_key(server, tmp_path, monkeypatch):
    from ehrqa.cli import main

    monkeypatch.setenv("OPENAI_API_KEY", "sk-never-written")
    out = tmp_path / "st3" / "submission.json"
    code = main(["-q", "generate", "--backend", "openai", "--base-url", server, "--model", "served-model",
                 "--out", str(out), "--cases", "101-104"])  # fmt: skip
    assert code == 0
    cases = [c for c in read_dataset() if c.id in {"101", "102", "103", "104"}]
    entries = read_submission(out)
    answers = check_submission(entries, 3, cases)
    assert set(answers) == {c.id for c in cases}
    for answer in answers.values():
        assert "Auth yes" in answer and "[3]" not in answer and "\n" not in answer
    for path in (tmp_path / "st3").rglob("*"):
        if path.is_file() and path.suffix != ".zip":
            assert "sk-never-written" not in path.read_text(encoding="utf-8")
    assert (tmp_path / "st3" / "run" / "answers.jsonl").exists()


def test_make_backend_needs_url_and_model():
    with pytest.raises(ValueError, match="base URL"):
        make_backend("openai", model="m")
    with pytest.raises(ValueError, match="model name"):
        make_backend("openai", base_url="http://127.0.0.1:1/v1")
    with pytest.raises(ValueError, match="unknown backend"):
        make_backend("vllm")


def test_predict_through_the_server_resumes(server, tmp_path):
    cases = [c.without_gold() for c in read_dataset()][:5]
    chat = OpenAIChat(server, "m", concurrency=2)
    first = predict(cases[:3], backend=chat, run_dir=tmp_path / "run")
    before = _stats(server)["requests"]
    second = predict(cases, backend=chat, run_dir=tmp_path / "run")
    assert _stats(server)["requests"] - before == 2  # only the two new cases were asked
    assert all(second[c.id] == first[c.id] for c in cases[:3])
