"""One chat interface for every language model ehrqa talks to, and the one way to build one.

A backend answers :class:`ChatRequest` objects (messages + decoding settings, the seed already
chosen for that sample) with one :class:`Reply` each, in order. A failed request is a reply with
``error`` set (a status or exception name, never text), so one bad case never costs the others;
a failure that dooms every request (a wrong key, an unknown model) raises :class:`BackendFatal`.

``hf`` runs a local transformers model (optionally 4-bit, optionally with a LoRA adapter);
``openai`` talks to any OpenAI-compatible server. :func:`ehrqa.llm.make_backend` builds either from a
:class:`BackendSpec`, the form recipes and command-line flags take.
"""

from __future__ import annotations

import hashlib
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from typing import Any

from ehrqa.errors import DataError

Message = dict[str, str]


@dataclass(frozen=True)
class GenerationConfig:
    """Decoding settings. ``temperature == 0`` means greedy decoding; ``n`` samples per input
    (each with its own seed, see :func:`sample_seed`) need sampling."""

    max_new_tokens: int = 160
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int = 0
    n: int = 1
    json: bool = False  # a JSON reply: servers are asked for it in the backend's response_format dialect

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ValueError(f"samples must be at least 1, got {self.n}")
        if self.n > 1 and self.greedy:
            raise ValueError(
                f"{self.n} samples with greedy decoding (temperature 0) would be {self.n} copies of one reply; "
                "set a temperature above 0 or use 1 sample"
            )

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0

    def for_sample(self, seed: int) -> GenerationConfig:
        """The settings of one sample: ``n`` = 1 and that sample's seed."""
        return replace(self, n=1, seed=seed)

    def to_dict(self) -> dict:
        return asdict(self)


def sample_seed(run_seed: int, case_id: str, sample: int) -> int:
    """The seed of one sample, derived from the run seed, the case and the sample index: samples
    differ from each other, and a resumed run draws exactly what an uninterrupted one would."""
    digest = hashlib.sha256(f"{run_seed}/{case_id}/{sample}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


@dataclass(frozen=True)
class ChatRequest:
    """One model call: the messages, the settings of this sample, and what it is for."""

    messages: tuple[Message, ...]
    config: GenerationConfig
    case_id: str = ""
    sample: int = 0
    prompt: str = ""  # "id@version:sha256" of the prompt file that rendered the messages
    schema: Mapping | None = None  # the JSON schema a JSON reply must match (this case's ids as enums)

    @property
    def label(self) -> str:
        """How logs name the request: case and sample, never text."""
        return f"case {self.case_id} sample {self.sample}" if self.case_id else f"sample {self.sample}"


@dataclass
class Reply:
    """A model's answer to one request. ``text is None`` with ``error`` set means no answer."""

    text: str | None
    error: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    seconds: float = 0.0
    cached: bool = False
    extra: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.error is None and self.text is not None

    def to_dict(self) -> dict:
        # `is` for False: a count of 0 (== False) is kept, only unset fields are dropped
        return {k: v for k, v in asdict(self).items() if v is not None and v is not False and v != {}}

    @classmethod
    def from_dict(cls, data: dict) -> Reply:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


class BackendFatal(DataError):
    """A failure no retry or other case can fix (authentication, unknown model, bad URL): stop."""


class ServerError(RuntimeError):
    """A reply could not be had for a request (after retries, where retrying made sense)."""


OnReply = Callable[[int, Reply], None]


class ChatBackend(ABC):
    """Turns chat requests into replies."""

    #: what produced the replies (model id or path, adapter, server); recorded in run directories
    description: dict

    @abstractmethod
    def complete(self, requests: Sequence[ChatRequest], on_reply: OnReply | None = None) -> list[Reply]:
        """One reply per request, in order; ``on_reply(index, reply)`` is called as each arrives."""

    def chat(self, conversations: Sequence[Sequence[Message]], config: GenerationConfig) -> list[str]:
        """Plain replies for conversations with one setting; any failed request raises :class:`ServerError`."""
        replies = self.complete([ChatRequest(tuple(c), config) for c in conversations])
        for reply in replies:
            if not reply.ok:
                raise ServerError(f"{self.description.get('model')}: {reply.error}")
        return [reply.text for reply in replies]

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources (models, connections)."""


BACKEND_KINDS = ("hf", "openai")
# How a server is asked for JSON of the request's schema (openai backend):
#   json_schema         {"type": "json_schema", "json_schema": {"name", "schema", "strict"}}: vLLM, SGLang,
#                       llama.cpp's llama-server, OpenAI
#   json_object+schema  {"type": "json_object", "schema": ...}: llama-cpp-python's server
#   json_object         {"type": "json_object"}: any JSON object, no schema
#   none                no response_format: the reply is repaired afterwards (ehrqa.llm.jsonout)
RESPONSE_FORMATS = ("json_schema", "json_object+schema", "json_object", "none")
SCHEMA_FORMATS = ("json_schema", "json_object+schema")
TOKEN_LIMITS = ("max_tokens", "max_completion_tokens", "none")
# OpenAI's reasoning models (o1, o3, o4-mini, gpt-5, gpt-5-mini, ...; also behind a "vendor/" prefix)
# refuse max_tokens and any temperature or top_p but the default, and spend completion tokens on
# hidden reasoning: their names choose other defaults (every one can be set explicitly).
REASONING_MODEL = re.compile(r"^(?:.*/)?(?:o[134](?:-|$)|gpt-5)", re.I)
REASONING_TOKENS = 4096  # completion tokens allowed for hidden reasoning, on top of max_new_tokens
# The settings a plain (non-reasoning) model gets; a backend's description names only those that differ.
_PLAIN = {
    "response_format": "none",
    "token_limit": "max_tokens",
    "sampling": True,
    "reasoning_effort": None,
    "reasoning_tokens": 0,
    "extra_body": {},
}


def is_reasoning_model(model: str | None) -> bool:
    """Whether ``model`` names one of OpenAI's reasoning families (o1/o3/o4, gpt-5*)."""
    return bool(model and REASONING_MODEL.match(model))


@dataclass(frozen=True)
class BackendSpec:
    """Everything needed to build a backend; a recipe's ``backends:`` entry or the command-line flags.

    Settings left at None take a default from the model name (:meth:`resolved`): the reasoning
    families send ``max_completion_tokens`` (with :data:`REASONING_TOKENS` more for the hidden
    reasoning) and no sampling parameters; Qwen3 names get thinking switched off."""

    kind: str = "hf"
    model: str | None = None  # hf: id or directory (None: the shipped SmolLM2); openai: the served name
    adapter: str | None = None  # hf: LoRA adapter directory
    load_in_4bit: bool = False  # hf
    batch_size: int = 4  # hf: prompts per generate() call
    dtype: str = "auto"  # hf: weights dtype ("auto": as saved; "float32" is faster than bf16 on many CPUs)
    base_url: str | None = None  # openai: ends in /v1
    api_key_env: str = "OPENAI_API_KEY"  # openai: the variable holding the key (never the key itself)
    timeout: float = 120.0  # openai: seconds per request
    retries: int = 3  # openai
    concurrency: int = 4  # openai: requests in flight
    # openai: how JSON replies are constrained, one of RESPONSE_FORMATS (true/false: json_object/none)
    response_format: str | bool = "none"
    token_limit: str | None = None  # openai: the token-limit parameter, one of TOKEN_LIMITS
    sampling: bool | None = None  # openai: send temperature, top_p and seed
    reasoning_effort: str | None = None  # openai: sent as is when set (e.g. minimal, low, medium, high)
    reasoning_tokens: int | None = None  # openai: completion tokens for hidden reasoning, added to the limit
    thinking: bool | None = None  # chat-template thinking (enable_thinking); hf default off
    extra_body: dict[str, Any] = field(default_factory=dict)  # openai: merged into every request body as is
    proxy: str | None = None  # openai: None: the environment's proxy, never for loopback/private hosts;
    #                           "none": never a proxy; a URL: always that proxy (even for loopback)

    def __post_init__(self) -> None:
        if isinstance(self.response_format, bool):  # recipes written when it was a yes/no switch
            object.__setattr__(self, "response_format", "json_object" if self.response_format else "none")

    def resolved(self) -> BackendSpec:
        """This spec with every setting left at None filled in from the model name."""
        reasoning = is_reasoning_model(self.model)
        thinking = self.thinking
        if thinking is None and self.kind == "hf":
            thinking = False
        elif thinking is None and "qwen3" in (self.model or "").lower():
            thinking = False  # vLLM and llama.cpp pass chat_template_kwargs to Qwen3's template
        return replace(
            self,
            token_limit=self.token_limit or ("max_completion_tokens" if reasoning else "max_tokens"),
            sampling=(not reasoning) if self.sampling is None else self.sampling,
            reasoning_tokens=(REASONING_TOKENS if reasoning else 0)
            if self.reasoning_tokens is None
            else self.reasoning_tokens,
            thinking=thinking,
        )

    def request_settings(self) -> dict:
        """The resolved settings that change what a server is asked and differ from a plain model's
        (what a reply cache key and a run's records name, besides the model)."""
        spec = self.resolved()
        changed = {k: getattr(spec, k) for k, plain in _PLAIN.items() if getattr(spec, k) != plain}
        name_rule = False if "qwen3" in (self.model or "").lower() else None
        if spec.thinking != name_rule:
            changed["thinking"] = spec.thinking
        return changed

    def check(self) -> None:
        """Refuse impossible combinations with one line."""
        if self.kind not in BACKEND_KINDS:
            raise DataError(f"unknown backend {self.kind!r}: expected one of {', '.join(BACKEND_KINDS)}")
        if self.response_format not in RESPONSE_FORMATS:
            raise DataError(f"response_format {self.response_format!r}: expected one of {', '.join(RESPONSE_FORMATS)}")
        if self.token_limit is not None and self.token_limit not in TOKEN_LIMITS:
            raise DataError(f"token_limit {self.token_limit!r}: expected one of {', '.join(TOKEN_LIMITS)}")
        if self.reasoning_tokens is not None and self.reasoning_tokens < 0:
            raise DataError(f"reasoning_tokens must be 0 or more, got {self.reasoning_tokens}")
        if self.kind == "openai":
            if not self.base_url:
                raise DataError("the openai backend needs a base URL (e.g. --base-url http://127.0.0.1:8000/v1)")
            if not self.model:
                raise DataError("the openai backend needs a model name as the server knows it (--model)")
            if self.adapter or self.load_in_4bit:
                raise DataError("--adapter and --load-in-4bit are for the hf backend; the server loads its own model")
            check_openai_transport(self)
        else:
            given = [name for name, value in self._server_settings().items() if value]
            if given:
                flag = "--" + given[0].replace("_", "-")
                raise DataError(f"{flag} is for the openai backend; add --backend openai")

    def _server_settings(self) -> dict:
        """The settings only a server backend uses, as set (falsy when left alone)."""
        return {
            "base_url": self.base_url,
            "response_format": self.response_format != "none",
            "token_limit": self.token_limit,
            "sampling": self.sampling is not None,
            "reasoning_effort": self.reasoning_effort,
            "reasoning_tokens": self.reasoning_tokens is not None,
            "extra_body": self.extra_body,
            "proxy": self.proxy,
        }


def backend_identity(settings: dict, transport: Sequence[str] = ()) -> dict:
    """A backend's recipe entry as a run's identity compares it: without the ``transport`` keys and
    without settings at their defaults, so a setting added to ehrqa later (at a default that keeps
    the old requests) does not make earlier run directories look like another configuration."""
    defaults = {f.name: f.default for f in fields(BackendSpec) if f.default is not MISSING}
    defaults["extra_body"] = {}
    legacy = {"response_format": {False: "none", True: "json_object"}}  # the old yes/no spelling
    out = {}
    for key, value in settings.items():
        if isinstance(value, bool) and key in legacy:
            value = legacy[key][value]
        if key not in transport and (key not in defaults or value != defaults[key]):
            out[key] = value
    return out


def check_openai_transport(spec: BackendSpec) -> None:
    """The server settings OpenAIChat would refuse, refused before a run directory or a progress bar
    exists: an address that is not http(s)://HOST..., a timeout of 0 or less, retries below 0,
    concurrency below 1."""
    import urllib.parse

    parts = urllib.parse.urlsplit(spec.base_url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise DataError(f"--base-url {safe_url(spec.base_url)!r}: expected http(s)://HOST[:PORT]/v1")
    if spec.timeout <= 0 or spec.retries < 0 or spec.concurrency < 1:
        raise DataError(
            f"openai backend: timeout must be > 0, retries >= 0, concurrency >= 1 "
            f"(got {spec.timeout}, {spec.retries}, {spec.concurrency})"
        )


def safe_url(url: str) -> str:
    """``url`` without a ``user:password@`` part, query or fragment, for messages and records."""
    import urllib.parse

    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    return urllib.parse.urlunsplit((parts.scheme, host + port, parts.path, "", ""))
