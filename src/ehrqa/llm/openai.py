"""Any OpenAI-compatible chat server (vLLM, llama.cpp server, SGLang, a hosted API) over HTTP.

Only the standard library is used. Requests go to ``{base_url}/chat/completions`` with a timeout,
are retried with exponential back-off on connection errors, timeouts, 429 and 5xx, and run at
most ``concurrency`` at a time. The API key is read from an environment variable when a request
is made; it is never stored on the object, logged, or written to a run directory. Error
messages name the URL and the HTTP status only, never request or response text (PHI).
"""

from __future__ import annotations

import json
import logging
import os
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from ehrqa.llm.backend import ChatBackend, GenerationConfig, Message

log = logging.getLogger(__name__)

RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}


class ServerError(RuntimeError):
    """The server could not produce a reply (after retries, where retrying made sense)."""


class OpenAIChat(ChatBackend):
    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key_env: str = "OPENAI_API_KEY",
        timeout: float = 120.0,
        retries: int = 3,
        backoff: float = 1.0,
        concurrency: int = 4,
        disable_thinking: bool | None = None,
    ) -> None:
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self.api_key_env = api_key_env
        self.timeout = timeout
        self.retries = max(0, retries)
        self.backoff = backoff
        self.concurrency = max(1, concurrency)
        # vLLM and llama.cpp pass chat_template_kwargs to the template; strict APIs may reject it,
        # so it is sent only for Qwen3 models unless asked for explicitly.
        self.disable_thinking = "qwen3" in model.lower() if disable_thinking is None else disable_thinking
        self.description = {"backend": "openai", "model": model, "base_url": base_url.rstrip("/")}

    def chat(self, conversations: Sequence[Sequence[Message]], config: GenerationConfig) -> list[str]:
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            return list(pool.map(lambda c: self._complete(c, config), conversations))

    def _payload(self, messages: Sequence[Message], config: GenerationConfig) -> dict:
        body: dict = {
            "model": self.model,
            "messages": [{"role": m["role"], "content": m["content"]} for m in messages],
            "max_tokens": config.max_new_tokens,
            "temperature": max(0.0, config.temperature),
        }
        if not config.greedy:
            body["top_p"] = config.top_p
            body["seed"] = config.seed
        if self.disable_thinking:
            body["chat_template_kwargs"] = {"enable_thinking": False}
        return body

    def _complete(self, messages: Sequence[Message], config: GenerationConfig) -> str:
        data = json.dumps(self._payload(messages, config)).encode("utf-8")
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        key = os.environ.get(self.api_key_env)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        for attempt in range(self.retries + 1):
            request = urllib.request.Request(self.url, data=data, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    reply = json.loads(response.read().decode("utf-8"))
                return _reply_text(reply, self.url)
            except urllib.error.HTTPError as e:
                e.close()
                problem = f"HTTP {e.code}"
                if e.code not in RETRY_STATUS:
                    raise ServerError(f"{self.url}: {problem}") from None
            except (urllib.error.URLError, TimeoutError, ConnectionError) as e:
                reason = getattr(e, "reason", e)
                problem = type(reason).__name__ if not isinstance(reason, str) else reason
            except json.JSONDecodeError:
                raise ServerError(f"{self.url}: reply is not JSON") from None
            if attempt < self.retries:
                delay = self.backoff * 2**attempt
                log.info("%s: %s; retry %d/%d in %.1f s", self.url, problem, attempt + 1, self.retries, delay)
                time.sleep(delay)
        raise ServerError(f"{self.url}: {problem} after {self.retries + 1} attempts")


def _reply_text(reply: dict, url: str) -> str:
    try:
        content = reply["choices"][0]["message"].get("content")
    except (KeyError, IndexError, TypeError, AttributeError):
        raise ServerError(f"{url}: reply has no choices[0].message") from None
    return content or ""
