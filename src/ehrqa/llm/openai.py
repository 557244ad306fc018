"""Any OpenAI-compatible chat server (vLLM, llama.cpp server, SGLang, a hosted API) over HTTP.

Only the standard library is used. Each :class:`~ehrqa.llm.backend.ChatRequest` is one POST to
``{base_url}/chat/completions``; at most ``concurrency`` run at a time, each reply is handed to
``on_reply`` (in the calling thread) as soon as it arrives, and :meth:`OpenAIChat.complete`
returns them in request order.

Samples: a request carries the settings of exactly one sample, with that sample's own seed
(:func:`~ehrqa.llm.backend.sample_seed`), and ``n`` is never sent. N samples are N requests, so a
server that honours seeds gives N different replies, and a reply cache or a resumed run works per
sample. The price is that the server sees the prompt N times (vLLM's prefix cache absorbs most of it).

Failures, per request (one bad case never costs the others):

- retried with exponential back-off (``backoff * 2**attempt`` seconds, or the server's
  ``Retry-After`` when longer): connection errors, timeouts, HTTP 408/409/429/5xx, and replies that
  cannot be read: a body that is empty, JSON ``null``, not JSON, not UTF-8, shorter than its
  ``Content-Length``, not HTTP at all, or without ``choices``;
- not retried: any other 4xx (400, 422, ...): the request is malformed, asking again cannot help;
- after the last attempt the request's :class:`~ehrqa.llm.backend.Reply` has ``text=None`` and
  ``error`` set to a short reason (an HTTP status or an exception class name, never request or
  response text: prompts hold clinical notes);
- ``choices[0].message.content: null`` is a finished reply with ``text=""`` (never retried);
- the run stops at once with :class:`~ehrqa.llm.backend.BackendFatal` (one line with a hint) on
  HTTP 401/403 (the key), 404 (the model name or URL), and when every attempt of a request found
  the connection refused or the host unknown (nobody there; the other requests would fare no better).

- a 400/422 whose error names a request parameter (``"param": "max_tokens"``, as OpenAI's reply
  to a setting a model does not take), or a 400/422 for each of the first
  :data:`REFUSED_FOR_ALL` requests with none answered, stops the run with one line naming the
  parameter: every other request carries it too.

What is sent is built by :func:`request_body` alone (a batch file holds exactly that body): the
token limit under the name the backend's ``token_limit`` says, sampling parameters only where
``sampling`` is on, ``reasoning_effort``, the thinking switch as ``chat_template_kwargs``, the
request's JSON schema in the ``response_format`` dialect, and ``extra_body`` merged in last.

Proxies: a server on a loopback or private address is never reached through a proxy unless the
backend's ``proxy`` names one; other hosts use the environment's ``HTTP(S)_PROXY`` and
``NO_PROXY``; ``proxy: none`` never uses one.

The API key is read from the environment variable ``api_key_env`` for each request; it is never
stored on the object, logged, or put in :attr:`OpenAIChat.description`.
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import logging
import os
import queue
import re
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, as_completed
from dataclasses import fields

from ehrqa.llm.backend import (
    SCHEMA_FORMATS,
    BackendFatal,
    BackendSpec,
    ChatBackend,
    ChatRequest,
    OnReply,
    Reply,
    check_openai_transport,
    safe_url,
)

log = logging.getLogger(__name__)

RETRY_STATUS = {408, 409, 429}  # and every 5xx
UNREACHABLE = ("connection refused", "host not found")
MAX_RETRY_AFTER = 60.0  # seconds: a longer Retry-After is cut to this
REFUSED_FOR_ALL = 3  # this many refused requests (400/422) and none answered: the settings are wrong
MAX_ERROR_BODY = 65536  # bytes of an error reply read to find the refused parameter
_PARAM_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.\[\]-]{0,63}")
# What to change when a server refuses a parameter ehrqa sent.
_PARAM_HINTS = {
    "max_tokens": "set token_limit: max_completion_tokens (--token-limit)",
    "max_completion_tokens": "set token_limit: max_tokens (--token-limit)",
    "temperature": "set sampling: false (--no-sampling)",
    "top_p": "set sampling: false (--no-sampling)",
    "seed": "set sampling: false (--no-sampling)",
    "response_format": "set response_format to another dialect or none (--response-format)",
    "reasoning_effort": "unset reasoning_effort or give a value this model takes (--reasoning-effort)",
    "chat_template_kwargs": "set thinking explicitly (--thinking/--no-thinking) or drop it from extra_body",
}


class _Retry(Exception):
    """An attempt failed in a way another attempt may fix; ``reason`` is safe to log."""

    def __init__(self, reason: str, retry_after: float = 0.0) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class _Failed(Exception):
    """The request itself is refused by the server (400, 422, ...): retrying cannot help."""

    def __init__(self, reason: str, refused: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.refused = refused  # a 400/422: what was sent is wrong, not the server


class OpenAIChat(ChatBackend):
    """Chat completions from an OpenAI-compatible server at ``base_url`` (the ``/v1`` root)."""

    def __init__(self, base_url: str, model: str, *, backoff: float = 1.0, **settings) -> None:
        """``settings``: any :class:`~ehrqa.llm.backend.BackendSpec` field of the openai backend."""
        self.spec = BackendSpec(kind="openai", base_url=(base_url or "").strip(), model=model, **settings)
        check_openai_transport(self.spec)  # the address first: an empty one is named as such
        self.spec.check()
        self.base_url = self.spec.base_url.rstrip("/")
        self.url = self.base_url + "/chat/completions"
        self.shown_url = safe_url(self.url)  # what messages and logs name: no user:password, no query
        self.model = model
        self.api_key_env = self.spec.api_key_env
        self.timeout, self.retries, self.concurrency = self.spec.timeout, self.spec.retries, self.spec.concurrency
        self.backoff = max(0.0, backoff)
        self.response_format = self.spec.response_format
        self.description = describe_server(self.spec)
        self._host = urllib.parse.urlsplit(self.base_url).hostname
        self._opener: urllib.request.OpenerDirector | None = None
        self._answered = 0  # requests that got a reply, and requests refused (400/422), for this backend
        self._refused = 0
        self._count_lock = threading.Lock()

    @classmethod
    def from_spec(cls, spec: BackendSpec) -> OpenAIChat:
        """The backend a :class:`~ehrqa.llm.backend.BackendSpec` of kind ``openai`` describes."""
        hf_only = {"kind", "model", "base_url", "adapter", "load_in_4bit", "batch_size", "dtype"}
        settings = {f.name: getattr(spec, f.name) for f in fields(spec) if f.name not in hf_only}
        return cls(spec.base_url, spec.model, **settings)

    # -- the batch -------------------------------------------------------------------------------

    def complete(self, requests: Sequence[ChatRequest], on_reply: OnReply | None = None) -> list[Reply]:
        """One reply per request, in order; ``on_reply(index, reply)`` runs in this thread as each
        arrives. :class:`BackendFatal` stops the batch: queued requests are dropped, those in flight
        end with their current attempt and are discarded."""
        for request in requests:
            if request.config.n != 1:
                raise ValueError(
                    f"{request.label}: n={request.config.n}; send one request per sample "
                    "(GenerationConfig.for_sample(sample_seed(...)))"
                )
        if not requests:
            return []
        # Daemon workers over a shared queue, each completing a Future: an abandoned batch (a fatal
        # reply, Ctrl-C) leaves no thread that the interpreter would wait for on its way out.
        stop = threading.Event()  # set when the batch is abandoned: workers stop taking requests
        futures = [Future() for _ in requests]
        todo: queue.SimpleQueue[int] = queue.SimpleQueue()
        for i in range(len(requests)):
            todo.put(i)

        def work() -> None:
            while not stop.is_set():
                try:
                    i = todo.get_nowait()
                except queue.Empty:
                    return
                if futures[i].set_running_or_notify_cancel():
                    try:
                        futures[i].set_result(self._complete_one(requests[i], stop))
                    except BaseException as e:  # BackendFatal, or a bug: the calling thread raises it
                        stop.set()  # before the exception is seen, so no worker takes another request
                        futures[i].set_exception(e)

        for _ in range(min(self.concurrency, len(requests))):
            threading.Thread(target=work, name="openai-request", daemon=True).start()
        index = {future: i for i, future in enumerate(futures)}
        replies: list[Reply | None] = [None] * len(requests)
        try:
            for future in as_completed(futures):
                i = index[future]
                replies[i] = future.result()  # BackendFatal propagates from here
                if on_reply is not None:
                    on_reply(i, replies[i])
        except BaseException:
            stop.set()
            for future in futures:
                future.cancel()
            raise
        return replies

    # -- one request -----------------------------------------------------------------------------

    def payload(self, request: ChatRequest) -> dict:
        """The JSON body sent for ``request`` (:func:`request_body`)."""
        return request_body(self.spec, request)

    def _complete_one(self, request: ChatRequest, stop: threading.Event) -> Reply:
        data = json.dumps(self.payload(request)).encode("utf-8")
        started = time.perf_counter()
        unreachable = 0  # attempts that found no server at all
        reason, delay, attempts = "not attempted", 0.0, 0
        for attempt in range(self.retries + 1):
            if stop.is_set():
                return Reply(None, error="cancelled", seconds=time.perf_counter() - started)
            attempts = attempt + 1
            try:
                reply = self._attempt(data)
            except _Retry as e:
                reason, delay = e.reason, e.retry_after
                unreachable += reason in UNREACHABLE
            except _Failed as e:
                reason = e.reason
                if e.refused:
                    self._count_refused(e.reason)
                break
            else:
                with self._count_lock:
                    self._answered += 1
                reply.seconds = time.perf_counter() - started
                if attempts > 1:
                    reply.extra["attempts"] = attempts
                return reply
            if attempt < self.retries:
                delay = max(delay, self.backoff * 2**attempt)
                log.info(
                    "%s: %s: %s; retry %d/%d in %.1f s",
                    *(self.shown_url, request.label, reason, attempt + 1, self.retries, delay),
                )
                if stop.wait(delay):
                    break
        if unreachable == attempts == self.retries + 1:  # nobody there: the other requests would fare no better
            hint = "is the host name right?" if reason == "host not found" else "is the server running there?"
            raise BackendFatal(f"cannot connect to {self.shown_url}: {reason}; {hint}")
        error = reason if attempts == 1 else f"{reason} after {attempts} attempts"
        log.warning("%s: %s: %s", self.shown_url, request.label, error)
        return Reply(None, error=error, seconds=time.perf_counter() - started, extra={"attempts": attempts})

    def _count_refused(self, reason: str) -> None:
        """A refused request; :class:`BackendFatal` when every request so far was refused."""
        with self._count_lock:
            self._refused += 1
            every = self._answered == 0 and self._refused >= REFUSED_FOR_ALL
        if every:
            raise BackendFatal(
                f"{self.shown_url}: {reason} for each of the first {self._refused} requests to model "
                f"{self.model!r} and none answered: the server refuses what ehrqa sends; check the backend's "
                "token_limit, sampling, reasoning_effort, response_format and extra_body"
            )

    def _attempt(self, data: bytes) -> Reply:
        """One POST; a :class:`Reply`, or :class:`_Retry` / :class:`_Failed` / :class:`BackendFatal`."""
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        key = os.environ.get(self.api_key_env)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        request = urllib.request.Request(self.url, data=data, headers=headers, method="POST")
        try:
            with self.opener().open(request, timeout=self.timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as e:
            retry_after = _retry_after(e.headers.get("Retry-After") if e.headers else None)
            param = _refused_param(e) if e.code in (400, 422) else None
            e.close()
            raise self._http_error(e.code, retry_after, param) from None
        except urllib.error.URLError as e:  # raised while connecting or sending
            raise _Retry(_exception_reason(e.reason)) from None
        except http.client.IncompleteRead:
            raise _Retry("truncated body") from None
        except http.client.HTTPException:  # a status line that is not HTTP, a header line too long
            raise _Retry("not an HTTP reply") from None
        except OSError as e:  # timeouts and resets while reading the reply
            raise _Retry(_exception_reason(e)) from None
        return _parse_reply(raw)

    def opener(self) -> urllib.request.OpenerDirector:
        """The HTTP opener with this backend's proxy rule (see the module docstring)."""
        if self._opener is None:
            proxy = self.spec.proxy
            if proxy == "none" or (not proxy and is_private_host(self._host)):
                proxies: dict | None = {}
            elif proxy:
                proxies = {"http": proxy, "https": proxy}
            else:
                proxies = None  # the environment's, NO_PROXY honoured
            self._opener = urllib.request.build_opener(urllib.request.ProxyHandler(proxies))
        return self._opener

    def _http_error(self, code: int, retry_after: float, param: str | None = None) -> Exception:
        """What an HTTP error status means: stop the run, try again, or fail this request."""
        if code in (401, 403):
            key_state = "is not set" if not os.environ.get(self.api_key_env) else "holds a key the server refused"
            return BackendFatal(f"{self.shown_url}: HTTP {code}: check the API key ({self.api_key_env} {key_state})")
        if code == 404:
            return BackendFatal(
                f"{self.shown_url}: HTTP 404 for model {self.model!r}: "
                "is the model name right? is the URL the /v1 root?"
            )
        if param is not None and not param.startswith("messages"):
            hint = _PARAM_HINTS.get(param.split(".")[0], "it comes from the backend's extra_body")
            return BackendFatal(
                f"{self.shown_url}: HTTP {code}: the server refuses the parameter {param!r} "
                f"for model {self.model!r}; {hint}"
            )
        if code in RETRY_STATUS or 500 <= code <= 599:
            return _Retry(f"HTTP {code}", retry_after)
        return _Failed(f"HTTP {code}", refused=code in (400, 422))


def request_body(spec: BackendSpec, request: ChatRequest) -> dict:
    """The JSON body of the chat completion that ``request`` is under ``spec``: the one place it is
    built (the HTTP client sends it; a batch file holds it)."""
    spec = spec.resolved()
    config = request.config
    body: dict = {
        "model": spec.model,
        "messages": [{"role": m["role"], "content": m["content"]} for m in request.messages],
    }
    if spec.token_limit != "none":
        body[spec.token_limit] = config.max_new_tokens + spec.reasoning_tokens
    if spec.sampling:
        body["temperature"] = max(0.0, config.temperature)
        body["top_p"] = config.top_p
        if not config.greedy:
            body["seed"] = config.seed
    if spec.reasoning_effort:
        body["reasoning_effort"] = spec.reasoning_effort
    if config.json:
        response_format = response_format_field(spec.response_format, request.schema, request.prompt)
        if response_format is not None:
            body["response_format"] = response_format
    if spec.thinking is not None:
        body["chat_template_kwargs"] = {"enable_thinking": spec.thinking}
    for key, value in spec.extra_body.items():
        if key == "chat_template_kwargs" and isinstance(value, Mapping):
            body[key] = {**body.get(key, {}), **value}
        else:
            body[key] = value
    return body


def response_format_field(dialect: str, schema: Mapping | None, prompt: str = "") -> dict | None:
    """``response_format`` in a server's dialect (see :data:`~ehrqa.llm.backend.RESPONSE_FORMATS`).
    A schema dialect constrains only requests whose prompt declares a schema: a JSON prompt without
    one (``st4-reason``: reasoning lines, then JSON) is left free."""
    if dialect == "none" or (dialect in SCHEMA_FORMATS and schema is None):
        return None
    if dialect == "json_object":
        return {"type": "json_object"}
    if dialect == "json_object+schema":
        return {"type": "json_object", "schema": dict(schema)}
    name = re.sub(r"[^A-Za-z0-9_-]", "_", prompt.split(":")[0].split("@")[0])[:64] or "reply"
    return {"type": "json_schema", "json_schema": {"name": name, "schema": dict(schema), "strict": True}}


def describe_server(spec: BackendSpec) -> dict:
    """What produced a server's replies: model, server and the settings that change what it is asked."""
    return {
        "backend": "openai",
        "model": spec.model,
        "base_url": safe_url((spec.base_url or "").strip().rstrip("/")),
        **spec.request_settings(),
    }


def is_private_host(host: str) -> bool:
    """Whether ``host`` is loopback, private or link-local (a name: every address it resolves to)."""
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        addresses = [ipaddress.ip_address(host)]
    except ValueError:
        try:
            infos = socket.getaddrinfo(host, None)
        except (OSError, UnicodeError):
            return False
        addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
    return bool(addresses) and all(a.is_loopback or a.is_private or a.is_link_local for a in addresses)


def _refused_param(error: urllib.error.HTTPError) -> str | None:
    """The request parameter a 400/422 error body names (OpenAI: ``error.param``), if it is a plain name."""
    try:
        body = json.loads(error.read(MAX_ERROR_BODY).decode("utf-8"))
    except (OSError, ValueError, http.client.HTTPException):
        return None
    detail = body.get("error") if isinstance(body, dict) else None
    param = detail.get("param") if isinstance(detail, dict) else None
    return param if isinstance(param, str) and _PARAM_NAME.fullmatch(param) else None


def _parse_reply(raw: bytes) -> Reply:
    """The text and token counts of a chat completion body; :class:`_Retry` when it is unusable."""
    if not raw.strip():
        raise _Retry("empty body")
    try:
        body = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise _Retry("body is not UTF-8") from None
    except json.JSONDecodeError:
        raise _Retry("body is not JSON") from None
    if body is None:
        raise _Retry("body is JSON null")
    if not isinstance(body, dict):
        raise _Retry("body is not a JSON object")
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices:
        raise _Retry("no choices")
    message = choices[0].get("message") if isinstance(choices[0], dict) else None
    if not isinstance(message, dict):
        raise _Retry("no choices[0].message")
    content = message.get("content")
    if content is not None and not isinstance(content, str):
        raise _Retry("content is not text")
    usage = body.get("usage") if isinstance(body.get("usage"), dict) else {}
    return Reply(
        content or "",
        prompt_tokens=_count(usage, "prompt_tokens"),
        completion_tokens=_count(usage, "completion_tokens"),
    )


def _count(usage: dict, name: str) -> int | None:
    value = usage.get(name)
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _exception_reason(error: object) -> str:
    """A short, text-free name for a network failure."""
    if isinstance(error, TimeoutError):
        return "timeout"
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, socket.gaierror):
        return "host not found"
    if isinstance(error, BaseException):
        return type(error).__name__
    return "connection failed"  # URLError with a string reason (e.g. a proxy's words)


def _retry_after(value: str | None) -> float:
    """Seconds from a ``Retry-After: N`` header (the HTTP-date form is ignored), at most a minute."""
    try:
        return min(max(0.0, float(value)), MAX_RETRY_AFTER) if value else 0.0
    except ValueError:
        return 0.0
