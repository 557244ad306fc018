"""Backend settings for real servers: the request body, reasoning models, JSON schemas, proxies.

Everything is checked from outside, on what the loopback server (tests/fakes/openai_server.py)
received; its strict reasoning-model mode answers o-series/gpt-5 names as the real service does.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from ehrqa.data.case import AnswerSentence, Case, NoteSentence
from ehrqa.errors import DataError
from ehrqa.llm import make_backend
from ehrqa.llm.backend import BackendFatal, BackendSpec, ChatRequest, GenerationConfig
from ehrqa.llm.cache import request_key
from ehrqa.llm.openai import OpenAIChat, is_private_host, request_body
from ehrqa.llm.prompt import load_prompt, parse_prompt, reply_schema
from fakes.openai_server import FakeOpenAIServer

JSON = GenerationConfig(max_new_tokens=50, json=True)
SAMPLED = GenerationConfig(max_new_tokens=50, temperature=0.7, top_p=0.9, seed=11)


def _case() -> Case:
    sentences = tuple(NoteSentence(str(i), f"note sentence {i}.") for i in (1, 2, 3, 5))
    answers = (AnswerSentence("1", "first answer."), AnswerSentence("2", "second answer."))
    return Case(id="7", narrative="Why?", sentences=sentences, answer_sentences=answers)


def _request(config: GenerationConfig = JSON, schema=None, prompt: str = "st4-align@1:abc") -> ChatRequest:
    return ChatRequest(({"role": "user", "content": "align"},), config, "7", 0, prompt, schema)


def _chat(server: FakeOpenAIServer, model: str = "m", **settings) -> OpenAIChat:
    return OpenAIChat(server.base_url, model, retries=1, backoff=0.01, **settings)


# -- reasoning models ------------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["gpt-5-mini", "o3", "o4-mini", "openai/gpt-5.1"])
def test_a_reasoning_model_works_as_typed(openai_server, model):
    got = _chat(openai_server, model).complete([_request(SAMPLED)])[0]
    assert got.ok and got.text == "echo: align"
    body = openai_server.bodies[0]
    assert body["max_completion_tokens"] == 50 + 4096  # room for the hidden reasoning
    assert not {"max_tokens", "temperature", "top_p", "seed"} & set(body)


def test_the_fake_server_refuses_what_the_real_service_refuses(openai_server):
    """The strict mode the reasoning-model tests rely on: each refused setting really gets a 400."""
    for settings in ({"token_limit": "max_tokens"}, {"sampling": True}):
        with pytest.raises(BackendFatal):
            _chat(openai_server, "gpt-5-mini", **settings).complete([_request(SAMPLED)])
    assert _chat(openai_server, "plain-model").complete([_request(SAMPLED)])[0].ok  # other names take anything


def test_a_refused_parameter_stops_at_once_in_one_line_naming_it(openai_server):
    chat = _chat(openai_server, "gpt-5-mini", token_limit="max_tokens", concurrency=1)
    with pytest.raises(BackendFatal) as stopped:
        chat.complete([_request() for _ in range(10)])
    message = str(stopped.value)
    assert "\n" not in message and "'max_tokens'" in message and "gpt-5-mini" in message
    assert "token_limit: max_completion_tokens" in message  # what to change
    assert openai_server.count == 1  # not retried, the other nine never sent


def test_a_400_for_every_request_stops_the_run_after_a_few(openai_server):
    openai_server.responder = lambda body: None
    openai_server.push(*["400"] * 10)
    with pytest.raises(BackendFatal, match="HTTP 400 for each of the first 3 requests"):
        _chat(openai_server, concurrency=1).complete([_request() for _ in range(10)])
    assert openai_server.count == 3


def test_every_default_of_a_reasoning_model_can_be_overridden(openai_server):
    settings = {"token_limit": "max_tokens", "sampling": True, "reasoning_tokens": 0, "reasoning_effort": "low"}
    spec = BackendSpec(kind="openai", base_url="http://127.0.0.1:1/v1", model="gpt-5-mini", **settings)
    body = request_body(spec, _request(SAMPLED))
    assert (body["max_tokens"], body["temperature"], body["top_p"], body["seed"]) == (50, 0.7, 0.9, 11)
    assert body["reasoning_effort"] == "low" and "max_completion_tokens" not in body
    assert "max_tokens" not in request_body(BackendSpec(kind="openai", model="m", token_limit="none"), _request())


def test_a_plain_model_gets_the_plain_body():
    body = request_body(BackendSpec(kind="openai", model="llama"), _request(SAMPLED))
    assert set(body) == {"model", "messages", "max_tokens", "temperature", "top_p", "seed"}


# -- thinking and extra_body -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "thinking", "sent"),
    [
        ("qwen3-4b", None, {"enable_thinking": False}),  # the name rule, only a default
        ("generator", None, None),  # a LoRA served under another name: nothing guessed
        ("generator", False, {"enable_thinking": False}),
        ("qwen3-4b", True, {"enable_thinking": True}),
    ],
)
def test_the_thinking_switch_is_explicit_with_the_name_rule_as_default(model, thinking, sent):
    body = request_body(BackendSpec(kind="openai", model=model, thinking=thinking), _request())
    assert body.get("chat_template_kwargs") == sent


def test_extra_body_is_passed_through_unchanged(openai_server):
    extra = {"top_k": 20, "repetition_penalty": 1.05, "chat_template_kwargs": {"custom": [1, 2]}}
    assert _chat(openai_server, "qwen3-4b", extra_body=extra).complete([_request()])[0].ok
    body = openai_server.bodies[0]
    assert body["top_k"] == 20 and body["repetition_penalty"] == 1.05
    assert body["chat_template_kwargs"] == {"enable_thinking": False, "custom": [1, 2]}


def test_settings_that_change_replies_are_part_of_the_cache_key_and_transport_ones_are_not():
    base = BackendSpec(kind="openai", base_url="http://127.0.0.1:1/v1", model="m")

    def key(**changes) -> str:
        chat = make_backend(base, **changes)
        return request_key(chat.description, _request())

    plain = key()
    assert plain == key(timeout=5.0, retries=0, concurrency=1, proxy="none")
    changed = [key(extra_body={"top_k": 5}), key(thinking=True), key(sampling=False), key(reasoning_effort="low")]
    assert len({plain, *changed}) == 5


def test_server_settings_on_the_hf_backend_are_refused_in_one_line():
    with pytest.raises(DataError, match="--extra-body is for the openai backend"):
        BackendSpec(kind="hf", extra_body={"top_k": 1}).check()
    with pytest.raises(DataError, match="response_format 'xml': expected one of json_schema"):
        BackendSpec(kind="openai", base_url="http://h/v1", model="m", response_format="xml").check()


# -- JSON schemas ----------------------------------------------------------------------------------


def test_each_json_prompt_declares_a_schema_with_the_cases_own_ids():
    case = _case()
    align = reply_schema(load_prompt("st4-align@1"), case)
    assert align["required"] == ["1", "2"] and align["additionalProperties"] is False
    assert align["properties"]["2"]["items"]["enum"] == ["1", "2", "3", "5"]
    assert align["properties"]["2"]["maxItems"] == 4  # a list of distinct ids is no longer than the ids
    classify = reply_schema(load_prompt("st2-classify@1"), case)
    assert classify["required"] == ["1", "2", "3", "5"]
    assert classify["properties"]["5"]["enum"] == ["essential", "supplementary", "not-relevant"]
    assert reply_schema(load_prompt("st3-answer@1"), case) is None


def test_a_malformed_schema_declaration_is_a_one_line_error():
    text = "---\noutput: json\nschema: {keys: sentence_ids, values: {}}\n---\n## user\nhi\n"
    with pytest.raises(DataError, match="schema keys is note_ids or answer_ids"):
        parse_prompt(text, "bad@1.md")


@pytest.mark.parametrize(
    ("dialect", "expected"),
    [
        (
            "json_schema",
            lambda s: {"type": "json_schema", "json_schema": {"name": "st4-align", "schema": s, "strict": True}},
        ),
        ("json_object+schema", lambda s: {"type": "json_object", "schema": s}),
        ("json_object", lambda s: {"type": "json_object"}),
        ("none", lambda s: None),
    ],
)
def test_the_schema_is_sent_in_the_backends_dialect(openai_server, dialect, expected):
    schema = reply_schema(load_prompt("st4-align@1"), _case())
    requests = [_request(schema=schema), _request(GenerationConfig(max_new_tokens=50), schema=schema)]
    assert all(r.ok for r in _chat(openai_server, response_format=dialect, concurrency=1).complete(requests))
    json_body, text_body = openai_server.bodies
    assert json_body.get("response_format") == expected(schema)
    assert "response_format" not in text_body  # a text prompt is never constrained


def test_a_json_prompt_without_a_schema_is_left_free_by_a_schema_dialect():
    request = _request(prompt="st4-reason@1:abc")  # reasoning lines first, then JSON: no schema declared
    assert load_prompt("st4-reason@1").schema is None
    for dialect, sent in (
        ("json_schema", None),
        ("json_object+schema", None),
        ("json_object", {"type": "json_object"}),
    ):
        body = request_body(BackendSpec(kind="openai", model="m", response_format=dialect), request)
        assert body.get("response_format") == sent


def test_the_schema_is_in_the_cache_key_only_where_it_is_sent():
    schema = reply_schema(load_prompt("st4-align@1"), _case())
    other = reply_schema(load_prompt("st4-align@1"), replace(_case(), id="8"))
    spec = BackendSpec(kind="openai", base_url="http://127.0.0.1:1/v1", model="m")
    for dialect, differs in (("json_schema", True), ("json_object", False), ("none", False)):
        description = make_backend(spec, response_format=dialect).description
        keys = {request_key(description, _request(schema=s)) for s in (schema, {**schema, "required": ["1"]})}
        assert (len(keys) == 2) is differs
    assert other == schema  # the schema depends on the ids only


# -- proxies ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "10.1.2.3", "192.168.0.5", "172.16.4.4", "::1", "fe80::1"])
def test_loopback_and_private_hosts_are_private(host):
    assert is_private_host(host)


@pytest.mark.parametrize("host", ["8.8.8.8", "2001:4860:4860::8888"])
def test_public_addresses_are_not(host):
    assert not is_private_host(host)


def test_a_local_server_is_never_reached_through_the_environments_proxy(openai_server, monkeypatch):
    with FakeOpenAIServer() as proxy:
        for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
            monkeypatch.setenv(name, proxy.base_url.removesuffix("/v1"))
        for name in ("NO_PROXY", "no_proxy"):
            monkeypatch.delenv(name, raising=False)
        assert _chat(openai_server).complete([_request()])[0].ok
        assert proxy.count == 0 and openai_server.count == 1
        # a public host does go through it (the proxy answers 404 for the absolute URL it gets)
        with pytest.raises(BackendFatal):
            OpenAIChat("http://api.example.invalid/v1", "m", retries=0).complete([_request()])
        assert proxy.count == 1 and proxy.received[0].path.startswith("http://api.example.invalid/")


def test_a_proxy_the_user_names_is_used_even_for_a_local_server(openai_server):
    with FakeOpenAIServer() as proxy:
        with pytest.raises(BackendFatal):  # the fake proxy answers 404 to the absolute URL it is asked for
            _chat(openai_server, proxy=proxy.base_url.removesuffix("/v1")).complete([_request()])
        assert proxy.count == 1 and openai_server.count == 0


# -- training logs ---------------------------------------------------------------------------------


def test_training_logs_go_nowhere_unless_a_recipe_names_an_installed_tracker():
    import importlib.util

    from ehrqa.config import from_dict
    from ehrqa.train.sft import REPORTERS, Training

    assert Training().report_to == ()
    with pytest.raises(DataError, match="'neptune' is not one of tensorboard, wandb, mlflow"):
        from_dict(Training, {"report_to": ["neptune"]}, "training")
    for name, modules in REPORTERS.items():
        if any(importlib.util.find_spec(m) for m in modules):
            assert from_dict(Training, {"report_to": [name]}, "training").report_to == (name,)
        else:
            with pytest.raises(DataError, match=f"report_to: {name} is not installed"):
                from_dict(Training, {"report_to": [name]}, "training")


def test_a_run_made_before_these_settings_existed_continues_and_a_changed_one_is_refused(tmp_path):
    from ehrqa.config import to_dict
    from ehrqa.runs.rundir import RunDir

    def meta(backend: dict) -> dict:
        return {"recipe": {"name": "r", "backends": {"srv": backend}}, "prompts": {}, "data": {}}

    spec = BackendSpec(kind="openai", model="m", base_url="http://127.0.0.1:1/v1")
    legacy = {k: v for k, v in to_dict(spec).items() if k in ("kind", "model", "base_url", "timeout", "retries")}
    RunDir.open(tmp_path / "run", meta({**legacy, "response_format": False}))  # as an older ehrqa wrote it
    RunDir.open(tmp_path / "run", meta(to_dict(spec)))
    RunDir.open(tmp_path / "run", meta(to_dict(replace(spec, timeout=9.0, proxy="none"))))  # transport only
    with pytest.raises(DataError, match="made with a different recipe"):
        RunDir.open(tmp_path / "run", meta(to_dict(replace(spec, thinking=True))))
