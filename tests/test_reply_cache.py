"""The disk cache of model replies and the CachedBackend wrapper (ehrqa.llm.cache)."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from ehrqa.llm.backend import ChatBackend, ChatRequest, GenerationConfig, Reply, sample_seed
from ehrqa.llm.cache import CachedBackend, ReplyCache, request_key


class Recording(ChatBackend):
    """Answers with a text derived from the request, records every request it is sent, and fails
    the requests whose last message says "fail". ``threads`` > 1 answers from worker threads."""

    def __init__(self, model: str = "fake-1", threads: int = 1) -> None:
        self.description = {"kind": "fake", "model": model}
        self.sent: list[ChatRequest] = []
        self.threads = threads
        self.closed = False

    def _answer(self, request: ChatRequest) -> Reply:
        if request.messages[-1]["content"] == "fail":
            return Reply(None, error="HTTP 500")
        text = f"{self.description['model']}|{request.messages[-1]['content']}|{request.config.seed}|{request.sample}"
        return Reply(text, prompt_tokens=7, completion_tokens=3, seconds=0.25)

    def complete(self, requests, on_reply=None):
        self.sent.extend(requests)
        if self.threads == 1:
            replies = [self._answer(r) for r in requests]
            for i, reply in enumerate(replies):
                if on_reply:
                    on_reply(i, reply)
            return replies
        with ThreadPoolExecutor(self.threads) as pool:
            replies = list(pool.map(self._answer, requests))
            for i, reply in enumerate(replies):
                if on_reply:
                    pool.submit(on_reply, i, reply).result()
        return replies

    def close(self):
        self.closed = True


SAMPLED = GenerationConfig(temperature=0.7, n=3, max_new_tokens=64)


def requests_for(case_ids=("1", "2"), n=3, run_seed=0, prompt="st4-align@1:abc", config=SAMPLED, text="align"):
    return [
        ChatRequest(
            ({"role": "user", "content": f"{text} case {cid}"},),
            config.for_sample(sample_seed(run_seed, cid, s)),
            case_id=cid,
            sample=s,
            prompt=prompt,
        )
        for cid in case_ids
        for s in range(n)
    ]


def test_a_second_identical_run_makes_zero_inner_calls(tmp_path):
    path = tmp_path / "run" / "cache" / "replies.jsonl"
    inner = Recording()
    first = CachedBackend(inner, path)
    seen = []
    replies = first.complete(requests_for(), lambda i, r: seen.append((i, r.cached)))
    assert len(inner.sent) == 6 and first.calls == 6 and first.hits == 0
    assert sorted(seen) == [(i, False) for i in range(6)]
    first.close()
    assert inner.closed

    again_inner = Recording()
    again = CachedBackend(again_inner, path)  # a new process reading the file
    seen = []
    repeat = again.complete(requests_for(), lambda i, r: seen.append((i, r.cached)))
    assert again_inner.sent == [] and again.calls == 0 and again.hits == 6
    assert [r.text for r in repeat] == [r.text for r in replies]
    assert all(r.cached for r in repeat) and sorted(seen) == [(i, True) for i in range(6)]
    assert repeat[0].prompt_tokens == 7 and repeat[0].completion_tokens == 3


@pytest.mark.parametrize(
    "change",
    [
        {"run_seed": 1},
        {"prompt": "st4-align@2:def"},
        {"text": "align please"},
        {"config": GenerationConfig(temperature=0.8, n=3, max_new_tokens=64)},
        {"config": GenerationConfig(temperature=0.7, n=3, max_new_tokens=65)},
        {"config": GenerationConfig(temperature=0.7, n=3, max_new_tokens=64, top_p=0.9)},
        {"config": GenerationConfig(temperature=0.7, n=3, max_new_tokens=64, json=True)},
    ],
)
def test_any_change_of_settings_seed_or_prompt_misses(tmp_path, change):
    path = tmp_path / "replies.jsonl"
    CachedBackend(Recording(), path).complete(requests_for())
    inner = Recording()
    CachedBackend(inner, path).complete(requests_for(**change))
    assert len(inner.sent) == 6


def test_the_sample_index_and_the_backend_are_part_of_the_key(tmp_path):
    path = tmp_path / "replies.jsonl"
    base = requests_for(case_ids=("1",), n=1)[0]
    CachedBackend(Recording(), path).complete([base])
    inner = Recording()
    same_seed_other_sample = ChatRequest(base.messages, base.config, base.case_id, sample=1, prompt=base.prompt)
    CachedBackend(inner, path).complete([base, same_seed_other_sample])
    assert inner.sent == [same_seed_other_sample]
    other_model = Recording(model="fake-2")
    CachedBackend(other_model, path).complete([base])
    assert other_model.sent == [base]
    assert request_key({"model": "a"}, base) != request_key({"model": "b"}, base)
    assert request_key({"model": "a"}, base) == request_key({"model": "a"}, base)


def test_only_misses_are_sent_and_order_is_kept(tmp_path):
    path = tmp_path / "replies.jsonl"
    CachedBackend(Recording(), path).complete(requests_for(case_ids=("1",)))
    inner = Recording()
    backend = CachedBackend(inner, path)
    both = requests_for(case_ids=("1", "2"))
    replies = backend.complete(both)
    assert [r.case_id for r in inner.sent] == ["2", "2", "2"]
    assert [r.cached for r in replies] == [True] * 3 + [False] * 3
    assert [r.text.split("|")[1] for r in replies] == ["align case 1"] * 3 + ["align case 2"] * 3
    assert [int(r.text.split("|")[3]) for r in replies] == [0, 1, 2, 0, 1, 2]


def test_failed_replies_are_not_stored_and_are_retried(tmp_path):
    path = tmp_path / "replies.jsonl"
    good = requests_for(case_ids=("1",), n=1)[0]
    bad = ChatRequest(({"role": "user", "content": "fail"},), good.config, "2", 0, good.prompt)
    replies = CachedBackend(Recording(), path).complete([good, bad])
    assert replies[0].ok and not replies[1].ok and replies[1].error == "HTTP 500"
    assert len(ReplyCache(path)) == 1
    inner = Recording()
    CachedBackend(inner, path).complete([good, bad])
    assert inner.sent == [bad]


def test_identical_requests_in_one_batch_are_sent_once(tmp_path):
    request = requests_for(case_ids=("1",), n=1)[0]
    inner = Recording()
    backend = CachedBackend(inner, tmp_path / "replies.jsonl")
    seen = []
    replies = backend.complete([request, request, request], lambda i, r: seen.append(i))
    assert len(inner.sent) == 1 and sorted(seen) == [0, 1, 2]
    assert len({r.text for r in replies}) == 1 and [r.cached for r in replies] == [False, True, True]


def test_the_file_holds_hashes_not_messages_and_survives_a_torn_line(tmp_path):
    path = tmp_path / "replies.jsonl"
    base = requests_for(case_ids=("1",), n=1)[0]
    system = {"role": "system", "content": "[1] note text that must not be copied"}
    request = ChatRequest((system, *base.messages), base.config, "1", 0, base.prompt)
    CachedBackend(Recording(), path).complete([request])
    raw = path.read_text()
    assert "must not be copied" not in raw
    record = json.loads(raw.splitlines()[0])
    assert set(record) == {"key", "case_id", "sample", "prompt", "reply"} and len(record["key"]) == 64
    with path.open("a") as f:
        f.write('{"key": "abc", "reply": {"te')  # a kill mid-write
    inner = Recording()
    backend = CachedBackend(inner, path)
    assert backend.complete([request])[0].cached and inner.sent == []
    other = requests_for(case_ids=("2",), n=1)[0]
    backend.complete([other])
    backend.close()
    assert len(ReplyCache(path)) == 2
    assert all(json.loads(line) for line in path.read_text().splitlines())


def test_on_reply_from_worker_threads_is_safe(tmp_path):
    path = tmp_path / "replies.jsonl"
    inner = Recording(threads=4)
    backend = CachedBackend(inner, path)
    caller = threading.get_ident()
    hit_threads = []
    many = requests_for(case_ids=[str(i) for i in range(20)], n=5)
    replies = backend.complete(many)
    assert len(inner.sent) == 100 and all(r.ok for r in replies)
    backend.close()
    again = CachedBackend(Recording(threads=4), path)
    again.complete(many, lambda i, r: hit_threads.append(threading.get_ident()))
    assert len(hit_threads) == 100 and set(hit_threads) == {caller}
    assert len(ReplyCache(path)) == 100


def test_chat_goes_through_the_cache(tmp_path):
    inner = Recording()
    backend = CachedBackend(inner, tmp_path / "replies.jsonl")
    conversation = [[{"role": "user", "content": "hello"}]]
    assert backend.chat(conversation, GenerationConfig()) == backend.chat(conversation, GenerationConfig())
    assert len(inner.sent) == 1
