"""A loopback OpenAI-compatible chat server for the tests, scriptable per request.

A real :class:`http.server.ThreadingHTTPServer` on 127.0.0.1 (an ephemeral port) serves
``POST /v1/chat/completions`` from a background thread; ``python tests/fakes/openai_server.py``
runs the same server as its own process and prints its base URL. It records every request
(path, parsed JSON body, whether an ``Authorization`` header came) so tests check the seeds,
``n`` and ``response_format`` that were sent, counts requests and the most that were in flight.

What it answers, first match wins:

1. the queue: ``server.push(act, ...)``; each request takes the next one;
2. ``server.responder(body)``: a callable returning an :class:`Act`, a content string, or None;
3. a marker in the last user message, ``[fake:NAME]``; ``[fake:NAME*K]`` acts only the first K
   times that exact request body arrives (``[fake:500*1]``: fail once, then answer);
4. otherwise an echo: ``"echo: <last user message>"`` with word counts as token usage.

Marker / act names (:func:`act` turns a name into an :class:`Act`):

- ``good-json``, ``fenced-json``, ``int-ids``, ``unknown-ids``, ``garbage``: 200 with the
  content in :data:`CANNED` (ST4-shaped: answer sentence id -> note sentence ids);
- a status code (``400``, ``401``, ``404``, ``429``, ``500``, ...): that status, a JSON error body;
- ``slow=SECONDS``: the echo, after a pause (woken early when the server stops);
- ``null-content`` (``content: null``), ``empty-choices``, ``malformed-json``, ``non-utf8``,
  ``truncated`` (``Content-Length`` larger than what is sent), ``not-http`` (bytes without a status
  line), ``empty-body``, ``json-null``.

Strict reasoning-model mode (on unless ``strict_reasoning=False``): for model names of OpenAI's
reasoning families (o1, o3, o4-mini, gpt-5, gpt-5-mini, ...) a body carrying ``max_tokens``, or a
``temperature`` or ``top_p`` other than 1, gets HTTP 400 with the error naming that parameter,
as the real service answers; nothing else is looked at for such a request.

Only the loopback interface is used, and every handler does a bounded amount of work.
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CANNED = {
    "good-json": '{"1": ["2", "3"], "2": []}',
    "fenced-json": 'Here are the links.\n```json\n{"1": ["2"], "2": ["3"]}\n```\nEach answer sentence is covered.',
    "int-ids": '{"1": [2, 3], "2": [4]}',
    "unknown-ids": '{"1": ["2", "99"], "7": ["1"]}',
    "garbage": "I cannot tell which sentences support the answer.",
}
BROKEN = (
    "null-content",
    "empty-choices",
    "malformed-json",
    "non-utf8",
    "truncated",
    "not-http",
    "empty-body",
    "json-null",
)
MARKER = re.compile(r"\[fake:([a-z0-9-]+(?:=[0-9.]+)?)(?:\*(\d+))?\]")
REASONING_MODEL = re.compile(r"^(?:.*/)?(?:o[134](?:-|$)|gpt-5)", re.I)


@dataclass(frozen=True)
class Act:
    """What the server does for one request."""

    kind: str = "reply"  # "reply" | "status" | one of BROKEN
    content: str | None = None  # reply: the message content (None: the echo)
    status: int = 200
    delay: float = 0.0  # seconds to wait before answering
    usage: tuple[int, int] | None = None  # reply: (prompt_tokens, completion_tokens); None: word counts
    headers: tuple[tuple[str, str], ...] = ()  # extra response headers, e.g. (("Retry-After", "1"),)
    param: str | None = None  # status: the request parameter the error names (OpenAI's error.param)


def reply(content: str, *, delay: float = 0.0, usage: tuple[int, int] | None = None) -> Act:
    """A 200 reply whose ``choices[0].message.content`` is ``content``."""
    return Act("reply", content, delay=delay, usage=usage)


def act(name: str) -> Act:
    """The :class:`Act` a marker name stands for (see the module docstring)."""
    if name in CANNED:
        return reply(CANNED[name])
    if name.isdigit():
        return Act("status", status=int(name))
    if name.startswith("slow="):
        return Act("reply", delay=float(name.removeprefix("slow=")))
    if name in BROKEN:
        return Act(name)
    raise ValueError(f"unknown fake server act {name!r}")


@dataclass(frozen=True)
class Received:
    """One request as the server saw it."""

    path: str
    body: dict | None  # None when the body was not JSON
    authorized: bool  # an "Authorization: Bearer ..." header came


Responder = Callable[[dict], "Act | str | None"]


class FakeOpenAIServer:
    """The server; a context manager (``with FakeOpenAIServer() as server: server.base_url``)."""

    def __init__(
        self, *, api_key: str | None = None, models: set[str] | None = None, strict_reasoning: bool = True
    ) -> None:
        self.api_key = api_key  # when set, any other key (or none) gets HTTP 401
        self.models = models  # when set, any other model name gets HTTP 404
        self.strict_reasoning = strict_reasoning  # reasoning-model names refuse what the real service refuses
        self.responder: Responder | None = None
        self.received: list[Received] = []
        self.max_in_flight = 0
        self._queue: collections.deque[Act] = collections.deque()
        self._seen: collections.Counter[str] = collections.Counter()
        self._in_flight = 0
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- life cycle ------------------------------------------------------------------------------

    def start(self) -> FakeOpenAIServer:
        handler = type("Handler", (_Handler,), {"fake": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), name="fake-openai", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # slow replies wake up
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._thread.join(timeout=5)
            self._httpd = None

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def base_url(self) -> str:
        """The ``/v1`` root a client is given."""
        return f"http://127.0.0.1:{self.port}/v1"

    # -- scripting and records -------------------------------------------------------------------

    def push(self, *acts: Act | str) -> None:
        """Queue acts (or marker names) for the next requests, in order."""
        with self._lock:
            self._queue.extend(a if isinstance(a, Act) else act(a) for a in acts)

    @property
    def count(self) -> int:
        """Requests received so far."""
        return len(self.received)

    @property
    def bodies(self) -> list[dict | None]:
        """The JSON bodies received, in arrival order."""
        return [r.body for r in self.received]

    def reset(self) -> None:
        """Forget what was received (the queue and the responder stay)."""
        with self._lock:
            self.received.clear()
            self._seen.clear()
            self.max_in_flight = 0

    def _choose(self, body: dict) -> Act:
        with self._lock:
            if self._queue:
                return self._queue.popleft()
        if self.responder is not None:
            chosen = self.responder(body)
            if chosen is not None:
                return chosen if isinstance(chosen, Act) else reply(chosen)
        match = MARKER.search(_last_user(body))
        if match:
            name, times = match.group(1), match.group(2)
            if times is None:
                return act(name)
            key = json.dumps(body, sort_keys=True)
            with self._lock:
                self._seen[key] += 1
                if self._seen[key] <= int(times):
                    return act(name)
        return Act()


def _last_user(body: dict) -> str:
    messages = body.get("messages") if isinstance(body, dict) else None
    for message in reversed(messages if isinstance(messages, list) else []):
        if isinstance(message, dict) and message.get("role") == "user" and isinstance(message.get("content"), str):
            return message["content"]
    return ""


def _refused_by_reasoning_model(body: dict) -> str | None:
    """The parameter a reasoning model refuses in ``body`` (max_tokens; temperature or top_p but 1), if any."""
    if not REASONING_MODEL.match(str(body.get("model") or "")):
        return None
    if "max_tokens" in body:
        return "max_tokens"
    for name in ("temperature", "top_p"):
        if name in body and body[name] != 1:
            return name
    return None


def _words(body: dict) -> int:
    messages = body.get("messages") or []
    return sum(len(str(m.get("content", "")).split()) for m in messages if isinstance(m, dict))


class _Handler(BaseHTTPRequestHandler):
    fake: FakeOpenAIServer  # set on the subclass made by FakeOpenAIServer.start

    def log_message(self, *args: object) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        if self.path == "/fake/received":  # for a server run as its own process
            fake = self.fake
            self._send_json(200, {"count": fake.count, "bodies": fake.bodies, "max_in_flight": fake.max_in_flight})
        else:
            self._send_json(404, {"error": {"message": "not found", "code": 404}})

    def do_POST(self) -> None:
        fake = self.fake
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        auth = self.headers.get("Authorization", "")
        with fake._lock:
            fake.received.append(Received(self.path, body, auth.startswith("Bearer ")))
            fake._in_flight += 1
            fake.max_in_flight = max(fake.max_in_flight, fake._in_flight)
        try:
            if self.path != "/v1/chat/completions":
                chosen = Act("status", status=404)
            elif not isinstance(body, dict):
                chosen = Act("status", status=400)
            elif fake.api_key is not None and auth != f"Bearer {fake.api_key}":
                chosen = Act("status", status=401)
            elif fake.models is not None and body.get("model") not in fake.models:
                chosen = Act("status", status=404)
            elif fake.strict_reasoning and (refused := _refused_by_reasoning_model(body)):
                chosen = Act("status", status=400, param=refused)
            else:
                chosen = fake._choose(body)
            if chosen.delay:
                fake._stopping.wait(chosen.delay)
        finally:  # counted out before answering: the client may send its next request at once
            with fake._lock:
                fake._in_flight -= 1
        try:
            self._perform(chosen, body if isinstance(body, dict) else {})
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (a timeout test)
            self.close_connection = True

    def _perform(self, chosen: Act, body: dict) -> None:
        if chosen.kind == "status":
            error = {"error": {"message": "scripted failure", "code": chosen.status}}
            if chosen.param is not None:
                error = {
                    "error": {
                        "message": f"Unsupported parameter: '{chosen.param}' is not supported with this model.",
                        "type": "invalid_request_error",
                        "param": chosen.param,
                        "code": "unsupported_parameter",
                    }
                }
            return self._send_json(chosen.status, error, chosen.headers)
        if chosen.kind == "reply":
            content = chosen.content if chosen.content is not None else f"echo: {_last_user(body)}"
            usage = chosen.usage or (_words(body), len(content.split()))
            return self._send_json(200, _completion(body, content, usage))
        if chosen.kind == "null-content":
            return self._send_json(200, _completion(body, None, (_words(body), 0)))
        if chosen.kind == "empty-choices":
            return self._send_json(200, {"id": "fake", "object": "chat.completion", "choices": []})
        if chosen.kind == "json-null":
            return self._send_bytes(b"null")
        if chosen.kind == "empty-body":
            return self._send_bytes(b"")
        if chosen.kind == "malformed-json":
            return self._send_bytes(b'{"choices": [{"message": {"content": "cut')
        if chosen.kind == "non-utf8":
            return self._send_bytes(b'{"choices": [{"message": {"content": "\xff\xfe\xfa"}}]}')
        if chosen.kind == "truncated":
            data = json.dumps(_completion(body, "a reply cut short", (1, 4))).encode()
            return self._send_bytes(data[: len(data) // 2], length=len(data))
        if chosen.kind == "not-http":
            self.wfile.write(b"SSH-2.0-NotAWebServer\r\n\r\n")
            self.close_connection = True
            return None
        raise ValueError(f"unknown act kind {chosen.kind!r}")

    def _send_json(self, code: int, payload: object, headers: tuple[tuple[str, str], ...] = ()) -> None:
        self._send_bytes(json.dumps(payload).encode("utf-8"), code=code, headers=headers)

    def _send_bytes(self, data: bytes, *, code: int = 200, length: int | None = None, headers: tuple = ()) -> None:
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data) if length is None else length))
        self.end_headers()
        self.wfile.write(data)
        self.close_connection = True


def _completion(body: dict, content: str | None, usage: tuple[int, int]) -> dict:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "model": body.get("model"),
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": usage[0], "completion_tokens": usage[1], "total_tokens": sum(usage)},
    }


def main(argv: list[str] | None = None) -> int:
    """Run the server as its own process: print the base URL, serve until SIGTERM or SIGINT."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--api-key", help="refuse (401) requests without this bearer key")
    parser.add_argument("--model", action="append", help="refuse (404) other model names; repeatable")
    parser.add_argument("--push", action="append", default=[], metavar="ACT", help="queue an act name; repeatable")
    args = parser.parse_args(argv)
    server = FakeOpenAIServer(api_key=args.api_key, models=set(args.model) if args.model else None)
    server.push(*args.push)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    with server:
        print(server.base_url, flush=True)
        done.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
