"""The OpenAI-compatible backend against a real HTTP server on 127.0.0.1 (tests/fakes/openai_server.py).

The server records what it received, so the settings, seeds and ``response_format`` that were sent
are checked from outside; scripted failures exercise every retry and failure path.
"""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

import pytest

from ehrqa.errors import DataError
from ehrqa.llm import make_backend
from ehrqa.llm.backend import (
    BackendFatal,
    BackendSpec,
    ChatRequest,
    GenerationConfig,
    ServerError,
    sample_seed,
)
from ehrqa.llm.openai import OpenAIChat
from fakes.openai_server import CANNED, Act, FakeOpenAIServer, reply

KEY = "sk-test-secret-4711"
PHI = "Mrs Example has a rare cancer"  # stands for note text that must never reach logs or errors
GREEDY = GenerationConfig(max_new_tokens=50)
SAMPLED = GenerationConfig(max_new_tokens=50, temperature=0.7, top_p=0.9, n=5)


def _request(text: str, config: GenerationConfig = GREEDY, case_id: str = "", sample: int = 0) -> ChatRequest:
    messages = ({"role": "system", "content": "Be brief."}, {"role": "user", "content": text})
    return ChatRequest(messages, config, case_id=case_id, sample=sample)


def _samples(case_id: str, run_seed: int = 13) -> list[ChatRequest]:
    """One request per sample of ``case_id``, each with its own derived seed, as the run code builds them."""
    return [
        _request(f"question of case {case_id}", SAMPLED.for_sample(sample_seed(run_seed, case_id, k)), case_id, k)
        for k in range(SAMPLED.n)
    ]


def _chat(server: FakeOpenAIServer, model: str = "some-model", **kwargs) -> OpenAIChat:
    kwargs = {"retries": 2, "backoff": 0.01, **kwargs}
    return OpenAIChat(server.base_url, model, api_key_env="EHRQA_TEST_KEY", **kwargs)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- what is sent, what comes back ----------------------------------------------------------------


def test_replies_come_back_in_order_with_the_settings_sent(openai_server, monkeypatch):
    monkeypatch.setenv("EHRQA_TEST_KEY", KEY)
    chat = _chat(openai_server, concurrency=3)
    replies = chat.complete([_request("one"), _request("two words"), _request("now three words")])
    assert [r.text for r in replies] == ["echo: one", "echo: two words", "echo: now three words"]
    assert all(r.ok and r.error is None for r in replies)
    body = openai_server.bodies[0]
    assert body["model"] == "some-model" and body["max_tokens"] == 50 and body["temperature"] == 0.0
    assert [m["role"] for m in body["messages"]] == ["system", "user"]
    assert "seed" not in body  # greedy: a seed means nothing
    assert "n" not in body and "response_format" not in body and "chat_template_kwargs" not in body
    assert all(r.authorized for r in openai_server.received)
    assert KEY not in json.dumps(chat.description)


def test_thinking_is_switched_off_for_qwen3_and_no_key_means_no_header(openai_server, monkeypatch):
    monkeypatch.delenv("EHRQA_TEST_KEY", raising=False)
    assert _chat(openai_server, "Qwen/Qwen3-4B").complete([_request("q")])[0].ok
    assert openai_server.bodies[0]["chat_template_kwargs"] == {"enable_thinking": False}
    assert not openai_server.received[0].authorized


def test_usage_tokens_and_seconds_are_kept(openai_server):
    openai_server.push(reply("An answer.", usage=(123, 7), delay=0.05))
    got = _chat(openai_server).complete([_request("q")])[0]
    assert (got.text, got.prompt_tokens, got.completion_tokens) == ("An answer.", 123, 7)
    assert got.seconds >= 0.05  # the request's own wall time, retries included
    assert got.to_dict() == {"text": "An answer.", "prompt_tokens": 123, "completion_tokens": 7, "seconds": got.seconds}


def test_on_reply_is_called_in_the_calling_thread_once_per_request(openai_server):
    calls = []
    requests = [_request(f"case {i} [fake:slow=0.0{i}]") for i in range(5)]
    replies = _chat(openai_server, concurrency=3).complete(
        requests, on_reply=lambda i, r: calls.append((i, r, threading.get_ident()))
    )
    assert sorted(i for i, _, _ in calls) == [0, 1, 2, 3, 4]
    assert {thread for _, _, thread in calls} == {threading.get_ident()}
    assert all(replies[i] is r for i, r, _ in calls)


def test_concurrency_is_bounded(openai_server):
    replies = _chat(openai_server, concurrency=2).complete([_request(f"case {i} [fake:slow=0.3]") for i in range(6)])
    assert all(r.ok for r in replies) and openai_server.count == 6
    assert openai_server.max_in_flight == 2


def test_an_empty_batch_sends_nothing(openai_server):
    assert _chat(openai_server).complete([]) == []
    assert openai_server.count == 0


# -- samples and seeds ----------------------------------------------------------------------------


def test_each_sample_sends_its_own_seed_and_a_rerun_sends_the_same(openai_server):
    chat = _chat(openai_server)
    chat.complete(_samples("101") + _samples("102"))
    first = [(b["messages"][-1]["content"], b["seed"]) for b in openai_server.bodies]
    seeds_101 = [seed for text, seed in first if text.endswith("101")]
    assert len(set(seeds_101)) == 5  # five samples of one case, five different seeds
    assert set(seeds_101) == {sample_seed(13, "101", k) for k in range(5)}
    assert not set(seeds_101) & {seed for text, seed in first if text.endswith("102")}
    assert all(b["temperature"] == 0.7 and b["top_p"] == 0.9 and "n" not in b for b in openai_server.bodies)

    openai_server.reset()
    chat.complete(_samples("101") + _samples("102"))  # a rerun (or a resume) asks the same
    assert sorted((b["messages"][-1]["content"], b["seed"]) for b in openai_server.bodies) == sorted(first)


def test_a_request_for_several_samples_is_refused_before_anything_is_sent(openai_server):
    with pytest.raises(ValueError, match="one request per sample"):
        _chat(openai_server).complete([_request("q", SAMPLED)])
    assert openai_server.count == 0


@pytest.mark.parametrize(
    ("built_with", "asked", "sent"),
    [(True, True, True), (True, False, False), (False, True, False)],
)
def test_response_format_only_when_the_server_supports_it_and_json_is_asked(openai_server, built_with, asked, sent):
    config = GenerationConfig(json=asked)
    assert _chat(openai_server, response_format=built_with).complete([_request("q", config)])[0].ok
    body = openai_server.bodies[0]
    assert (body.get("response_format") == {"type": "json_object"}) is sent
    assert ("response_format" in body) is sent


@pytest.mark.parametrize("name", sorted(CANNED))
def test_canned_json_contents_come_back_verbatim(openai_server, name):
    assert _chat(openai_server).complete([_request(f"align [fake:{name}]")])[0].text == CANNED[name]


# -- failures: retried ----------------------------------------------------------------------------

RETRIED = {
    "500": "HTTP 500",
    "502": "HTTP 502",
    "408": "HTTP 408",
    "409": "HTTP 409",
    "429": "HTTP 429",
    "malformed-json": "body is not JSON",
    "non-utf8": "body is not UTF-8",
    "truncated": "truncated body",
    "not-http": "not an HTTP reply",
    "empty-body": "empty body",
    "json-null": "body is JSON null",
    "empty-choices": "no choices",
}


@pytest.mark.parametrize("name", sorted(RETRIED))
def test_a_passing_failure_is_retried_and_answered(openai_server, name):
    got = _chat(openai_server, retries=2).complete([_request(f"q [fake:{name}*1]")])[0]
    assert got.ok and got.text == f"echo: q [fake:{name}*1]"
    assert got.extra == {"attempts": 2}
    assert openai_server.count == 2


@pytest.mark.parametrize("name", sorted(RETRIED))
def test_a_lasting_failure_is_the_requests_failure_named_without_text(openai_server, name):
    got = _chat(openai_server, retries=2).complete([_request(f"{PHI} [fake:{name}]")])[0]
    assert got.text is None and not got.ok
    assert got.error == f"{RETRIED[name]} after 3 attempts"
    assert openai_server.count == 3


def test_a_timeout_is_retried_then_reported(openai_server):
    got = _chat(openai_server, timeout=0.3, retries=1).complete([_request("q [fake:slow=5]")])[0]
    assert got.text is None and got.error == "timeout after 2 attempts"
    assert openai_server.count == 2


def test_retry_after_is_honoured_when_longer_than_the_back_off(openai_server):
    openai_server.push(Act("status", status=429, headers=(("Retry-After", "0.3"),)))
    got = _chat(openai_server, backoff=0.01).complete([_request("q")])[0]
    assert got.ok and got.extra == {"attempts": 2}
    assert got.seconds >= 0.3  # it waited as told, not the 0.01 s back-off


def test_retries_zero_means_one_attempt(openai_server):
    got = _chat(openai_server, retries=0).complete([_request("q [fake:503]")])[0]
    assert got.error == "HTTP 503" and openai_server.count == 1


# -- failures: not retried ------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["400", "422"])
def test_a_refused_request_fails_at_once(openai_server, status):
    got = _chat(openai_server, retries=3).complete([_request(f"{PHI} [fake:{status}]")])[0]
    assert got.text is None and got.error == f"HTTP {status}"
    assert openai_server.count == 1


def test_one_always_refused_case_does_not_cost_the_others(openai_server):
    requests = [_request("case 1"), _request("case 2 [fake:400]"), _request("case 3 [fake:500*1]"), _request("case 4")]
    arrived = {}
    replies = _chat(openai_server, concurrency=2).complete(requests, on_reply=arrived.__setitem__)
    assert [r.text for r in replies] == ["echo: case 1", None, "echo: case 3 [fake:500*1]", "echo: case 4"]
    assert replies[1].error == "HTTP 400"
    assert arrived == dict(enumerate(replies))  # every reply was handed over as it came


def test_null_content_is_a_finished_empty_reply(openai_server):
    got = _chat(openai_server).complete([_request("q [fake:null-content]")])[0]
    assert got.ok and got.text == ""
    assert openai_server.count == 1


# -- failures that stop the run -------------------------------------------------------------------


@pytest.mark.parametrize("status", [401, 403])
def test_a_refused_key_stops_at_once_naming_the_variable_and_url(monkeypatch, status):
    monkeypatch.setenv("EHRQA_TEST_KEY", KEY)
    with FakeOpenAIServer() as server:
        server.push(str(status))
        with pytest.raises(BackendFatal) as err:
            _chat(server, retries=3).complete([_request("q")])
        assert server.count == 1
        base_url = server.base_url
    message = str(err.value)
    assert f"HTTP {status}" in message and "EHRQA_TEST_KEY" in message and base_url in message
    assert KEY not in message and "\n" not in message


def test_a_missing_key_is_named_as_missing(monkeypatch):
    monkeypatch.delenv("EHRQA_TEST_KEY", raising=False)
    with FakeOpenAIServer(api_key="the-right-key") as server:
        with pytest.raises(BackendFatal, match="EHRQA_TEST_KEY is not set"):
            _chat(server).complete([_request("q")])
        monkeypatch.setenv("EHRQA_TEST_KEY", "the-right-key")
        assert _chat(server).complete([_request("q")])[0].ok


def test_an_unknown_model_stops_at_once_naming_model_and_url():
    with FakeOpenAIServer(models={"served-model"}) as server:
        with pytest.raises(BackendFatal) as err:
            _chat(server, "no-such-model").complete([_request("q")])
        assert server.count == 1
        base_url = server.base_url
    message = str(err.value)
    assert "'no-such-model'" in message and base_url in message
    assert "is the model name right? is the URL the /v1 root?" in message


def test_a_url_that_is_not_the_v1_root_gives_the_same_hint(openai_server):
    chat = OpenAIChat(openai_server.base_url.removesuffix("/v1"), "m", retries=3)
    with pytest.raises(BackendFatal, match="/v1 root"):
        chat.complete([_request("q")])
    assert openai_server.count == 1


def test_a_fatal_reply_stops_the_batch(openai_server):
    openai_server.push("401")
    arrived = []
    with pytest.raises(BackendFatal):
        _chat(openai_server, concurrency=1).complete(
            [_request(f"case {i}") for i in range(20)], on_reply=lambda i, r: arrived.append(i)
        )
    assert arrived == [] and openai_server.count <= 2  # the queue was dropped, not worked through


def test_connection_refused_on_every_attempt_stops_the_run():
    chat = OpenAIChat(f"http://127.0.0.1:{_free_port()}/v1", "m", retries=2, backoff=0.01)
    with pytest.raises(BackendFatal, match="connection refused; is the server running there"):
        chat.complete([_request("q")])


def test_chat_raises_server_error_for_a_failed_request(openai_server):
    with pytest.raises(ServerError, match="HTTP 400"):
        _chat(openai_server).chat([[{"role": "user", "content": "[fake:400]"}]], GREEDY)
    assert _chat(openai_server).chat([[{"role": "user", "content": "hi"}]], GREEDY) == ["echo: hi"]


def test_a_base_url_without_scheme_is_a_one_line_error():
    with pytest.raises(DataError, match="expected http"):
        OpenAIChat("127.0.0.1:8000/v1", "m")


# -- secrets and note text stay out of logs, errors and descriptions ------------------------------


def test_the_key_and_the_note_text_never_reach_logs_errors_or_descriptions(openai_server, monkeypatch, caplog):
    monkeypatch.setenv("EHRQA_TEST_KEY", KEY)
    caplog.set_level(logging.DEBUG)
    chat = _chat(openai_server, retries=1, concurrency=2)
    replies = chat.complete(
        [_request(f"{PHI} [fake:500*1]"), _request(f"{PHI} [fake:400]"), _request(f"{PHI} [fake:500]")]
    )
    with pytest.raises(BackendFatal) as err:
        chat.complete([_request(f"{PHI} [fake:401]")])
    assert "retry 1/1" in caplog.text and "HTTP 400" in caplog.text  # the failures were logged ...
    assert replies[0].text.startswith("echo: ")  # the reply itself is the caller's to keep
    errors = [r.error for r in replies[1:]]
    written = caplog.text + json.dumps(chat.description) + str(err.value) + json.dumps(errors)
    assert KEY not in written and "cancer" not in written  # ... without the key or any text
    assert all(r.authorized for r in openai_server.received)  # the key was sent, to the server only


def test_a_password_in_the_url_is_not_recorded():
    chat = OpenAIChat("http://user:hunter2@127.0.0.1:9/v1?token=abc", "m")
    assert chat.description["base_url"] == "http://127.0.0.1:9/v1"
    assert "hunter2" not in chat.shown_url and "abc" not in chat.shown_url


# -- make_backend ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"kind": "vllm"}, "unknown backend 'vllm': expected one of hf, openai"),
        ({"kind": "openai", "model": "m"}, "the openai backend needs a base URL"),
        ({"kind": "openai", "base_url": "http://127.0.0.1:1/v1"}, "the openai backend needs a model name"),
        ({"kind": "openai", "base_url": "http://h/v1", "model": "m", "adapter": "a"}, "--adapter and --load-in-4bit"),
        ({"kind": "openai", "base_url": "http://h/v1", "model": "m", "load_in_4bit": True}, "are for the hf backend"),
        ({"kind": "hf", "base_url": "http://h/v1"}, "--base-url is for the openai backend; add --backend openai"),
    ],
)
def test_make_backend_refuses_impossible_specs_in_one_line(fields, message):
    with pytest.raises(DataError, match=message.replace("(", r"\(")):
        make_backend(BackendSpec(**fields))
    with pytest.raises(DataError, match=message.replace("(", r"\(")):
        make_backend(**fields)  # overrides alone build the same spec


def test_make_backend_builds_an_openai_chat_with_every_setting(openai_server, monkeypatch):
    monkeypatch.setenv("EHRQA_TEST_KEY", KEY)
    spec = BackendSpec(kind="openai", base_url=openai_server.base_url, model="m", api_key_env="EHRQA_TEST_KEY")
    chat = make_backend(spec, timeout=7.0, retries=1, concurrency=3, response_format=True)  # a recipe's old yes/no
    assert isinstance(chat, OpenAIChat)
    assert (chat.timeout, chat.retries, chat.concurrency, chat.response_format) == (7.0, 1, 3, "json_object")
    described = {"backend": "openai", "model": "m", "base_url": openai_server.base_url}
    assert chat.description == {**described, "response_format": "json_object"}
    got = chat.complete([_request("q", GenerationConfig(json=True))])[0]
    assert got.text == "echo: q" and openai_server.count == 1
    assert openai_server.bodies[0]["response_format"] == {"type": "json_object"}
    assert openai_server.received[0].authorized


# -- the fake server as its own process ------------------------------------------------------------


def test_the_fake_server_runs_as_a_separate_process():
    script = Path(__file__).parent / "fakes" / "openai_server.py"
    proc = subprocess.Popen([sys.executable, str(script), "--push", "500"], stdout=subprocess.PIPE, text=True)
    try:
        base_url = proc.stdout.readline().strip()
        assert base_url.startswith("http://127.0.0.1:") and base_url.endswith("/v1")
        got = OpenAIChat(base_url, "m", retries=1, backoff=0.01).complete([_request("q")])[0]
        assert got.text == "echo: q" and got.extra == {"attempts": 2}
        with urllib.request.urlopen(base_url.removesuffix("/v1") + "/fake/received", timeout=5) as r:
            received = json.loads(r.read())
        assert received["count"] == 2 and received["bodies"][0]["model"] == "m"
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0


def test_an_unknown_host_on_every_attempt_stops_the_run(monkeypatch):
    def no_such_host(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_such_host)
    chat = OpenAIChat("http://no-such-host.invalid/v1", "m", retries=1, backoff=0.01)
    with pytest.raises(
        BackendFatal, match="no-such-host.invalid/v1/chat/completions: host not found; is the host name"
    ):
        chat.complete([_request("q")])


@pytest.mark.parametrize("setting", [{"timeout": 0}, {"retries": -1}, {"concurrency": 0}])
def test_impossible_settings_are_a_one_line_error(setting):
    with pytest.raises(DataError, match="timeout must be > 0, retries >= 0, concurrency >= 1"):
        OpenAIChat("http://127.0.0.1:9/v1", "m", **setting)


def test_an_abandoned_batch_leaves_no_thread_to_wait_for(openai_server):
    """A fatal reply while another request hangs: the process still exits at once (no join on the hung one)."""
    code = (
        "import sys\n"
        "from ehrqa.llm.backend import BackendFatal, ChatRequest, GenerationConfig\n"
        "from ehrqa.llm.openai import OpenAIChat\n"
        "chat = OpenAIChat(sys.argv[1], 'm', concurrency=2, timeout=300)\n"
        "asks = [ChatRequest(({'role': 'user', 'content': t},), GenerationConfig()) for t in sys.argv[2:]]\n"
        "try:\n"
        "    chat.complete(asks)\n"
        "except BackendFatal as e:\n"
        "    print('fatal:', e)\n"
    )
    args = [sys.executable, "-c", code, openai_server.base_url, "[fake:slow=120]", "[fake:401]"]
    done = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.startswith("fatal: ") and "HTTP 401" in done.stdout
    assert done.stderr == ""


def test_a_reply_with_zero_tokens_round_trips_through_its_record(openai_server):
    got = _chat(openai_server).complete([_request("q [fake:null-content]")])[0]
    assert (got.text, got.completion_tokens) == ("", 0)
    again = type(got).from_dict(json.loads(json.dumps(got.to_dict())))
    assert (again.text, again.prompt_tokens, again.completion_tokens, again.error) == (
        "",
        4,
        0,
        None,
    )  # 4 words in the two messages
