"""A disk cache of model replies inside a run directory, so a resumed or repeated run makes no repeated calls.

A reply is stored under the sha256 of everything that decides it (:func:`request_key`, the one key
function; a batch file's ``custom_id`` is this key too): the backend's description (model, adapter,
server and the request settings that differ from a plain model's), the prompt's
``id@version:sha256``, the messages, the whole :class:`~ehrqa.llm.backend.GenerationConfig` (seed
included), the sample index, and the request's JSON schema where the backend sends it. Change any of
them and the request misses. Only successful replies are stored, so a failed call is tried again
next time.

The file is JSONL, one record per reply: the key, case id, sample index, prompt id and the reply
(text, token counts, seconds). The messages themselves are not stored, only their hash. A torn
last line (a killed run) is skipped on reading and cut off before the next append. One process
writes a cache file at a time.

:class:`CachedBackend` wraps any :class:`~ehrqa.llm.backend.ChatBackend`: hits come back with
``Reply.cached = True`` (their stored seconds and token counts describe the original call, so
cost accounting should skip cached replies), misses go to the wrapped backend in one batch.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from ehrqa.io import JsonlWriter, read_jsonl
from ehrqa.llm.backend import SCHEMA_FORMATS, ChatBackend, ChatRequest, OnReply, Reply

CACHE_VERSION = 1  # part of every key: bump it when the key's contents change


def request_key(description: dict, request: ChatRequest) -> str:
    """The cache key of one request to one backend (hex sha256)."""
    payload = {
        "v": CACHE_VERSION,
        "backend": description,
        "prompt": request.prompt,
        "messages": [dict(m) for m in request.messages],
        "config": request.config.to_dict(),
        "sample": request.sample,
    }
    if request.schema is not None and request.config.json and description.get("response_format") in SCHEMA_FORMATS:
        payload["schema"] = request.schema  # it constrains the reply (only then: other keys stay as they were)
    text = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class ReplyCache:
    """The stored replies of one cache file: ``get`` by key, ``put`` appends durably."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._replies: dict[str, dict] = {}
        for record in read_jsonl(self.path):
            key, reply = record.get("key"), record.get("reply")
            if isinstance(key, str) and isinstance(reply, dict) and reply.get("text") is not None:
                self._replies[key] = reply
        self._writer: JsonlWriter | None = None
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._replies)

    def __contains__(self, key: str) -> bool:
        return key in self._replies

    def get(self, key: str) -> Reply | None:
        stored = self._replies.get(key)
        if stored is None:
            return None
        reply = Reply.from_dict(stored)
        reply.cached = True
        reply.extra = dict(reply.extra)
        return reply

    def put(self, key: str, request: ChatRequest, reply: Reply) -> None:
        """Store an ok reply (others are ignored); safe to call from several threads."""
        if not reply.ok:
            return
        stored = replace(reply, cached=False).to_dict()
        record = {"key": key, "case_id": request.case_id, "sample": request.sample, "prompt": request.prompt}
        record["reply"] = stored
        with self._lock:
            if self._writer is None:
                self._writer = JsonlWriter(self.path)
            self._writer.write(record)
            self._replies[key] = stored

    def close(self) -> None:
        with self._lock:
            if self._writer is not None:
                self._writer.close()
                self._writer = None


class CachedBackend(ChatBackend):
    """A backend that answers repeated requests from a :class:`ReplyCache` file.

    ``complete()`` reports cache hits first (through ``on_reply``, from the calling thread), then
    sends the misses to the wrapped backend in one call, storing each ok reply as it arrives;
    identical requests within one batch are sent once. ``calls`` counts requests actually sent,
    ``hits`` those answered from the cache. Closing it closes the wrapped backend too.
    """

    def __init__(self, backend: ChatBackend, cache_path: str | os.PathLike) -> None:
        self.backend = backend
        self.description = backend.description
        self.cache = ReplyCache(cache_path)
        self.calls = 0
        self.hits = 0
        self._lock = threading.Lock()

    def complete(self, requests: Sequence[ChatRequest], on_reply: OnReply | None = None) -> list[Reply]:
        keys = [request_key(self.description, r) for r in requests]
        replies: list[Reply | None] = [None] * len(requests)
        waiting: dict[str, list[int]] = {}  # key -> indices answered by one call
        for i, key in enumerate(keys):
            hit = self.cache.get(key)
            if hit is not None:
                replies[i] = hit
                self.hits += 1
                if on_reply is not None:
                    on_reply(i, hit)
            else:
                waiting.setdefault(key, []).append(i)
        if not waiting:
            return replies  # type: ignore[return-value]
        misses = list(waiting)
        sent = [requests[waiting[key][0]] for key in misses]
        self.calls += len(sent)

        def arrived(j: int, reply: Reply) -> None:
            key = misses[j]
            self.cache.put(key, sent[j], reply)
            with self._lock:
                for n, i in enumerate(waiting[key]):
                    copy = reply if n == 0 else replace(reply, cached=reply.ok, extra=dict(reply.extra))
                    replies[i] = copy
                    if on_reply is not None:
                        on_reply(i, copy)

        answers = self.backend.complete(sent, arrived)
        for j, reply in enumerate(answers):  # a backend that did not report every reply through on_reply
            if replies[waiting[misses[j]][0]] is None:
                arrived(j, reply)
        return replies  # type: ignore[return-value]

    def close(self) -> None:
        self.cache.close()
        self.backend.close()
