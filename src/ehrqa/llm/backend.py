"""One chat interface for every language model ehrqa talks to.

A backend takes a list of conversations (each a list of ``{"role", "content"}`` messages) and
returns one reply per conversation, in order. ``hf`` runs a local transformers model (optionally
4-bit, optionally with a LoRA adapter); ``openai`` talks to any OpenAI-compatible server.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import asdict, dataclass

Message = dict[str, str]


@dataclass(frozen=True)
class GenerationConfig:
    """Decoding settings. ``temperature == 0`` means greedy decoding."""

    max_new_tokens: int = 160
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int = 0

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0

    def to_dict(self) -> dict:
        return asdict(self)


class ChatBackend(ABC):
    """Turns conversations into assistant replies."""

    #: what produced the replies (model id or path, adapter, server); recorded in run directories
    description: dict

    @abstractmethod
    def chat(self, conversations: Sequence[Sequence[Message]], config: GenerationConfig) -> list[str]:
        """One reply per conversation, in the same order."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources (models, connections)."""


def make_backend(
    kind: str = "hf",
    *,
    model: str | None = None,
    adapter: str | None = None,
    load_in_4bit: bool = False,
    batch_size: int = 4,
    base_url: str | None = None,
    api_key_env: str = "OPENAI_API_KEY",
    timeout: float = 120.0,
    retries: int = 3,
    concurrency: int = 4,
) -> ChatBackend:
    """Build a backend by name: ``hf`` (local transformers) or ``openai`` (HTTP server)."""
    if kind == "hf":
        from ehrqa.llm.hf import HFChat

        return HFChat(model, adapter=adapter, load_in_4bit=load_in_4bit, batch_size=batch_size)
    if kind == "openai":
        from ehrqa.llm.openai import OpenAIChat

        if not base_url:
            raise ValueError("the openai backend needs a base URL (e.g. http://127.0.0.1:8000/v1)")
        if not model:
            raise ValueError("the openai backend needs a model name as the server knows it")
        return OpenAIChat(
            base_url, model, api_key_env=api_key_env, timeout=timeout, retries=retries, concurrency=concurrency
        )
    raise ValueError(f"unknown backend {kind!r}: expected 'hf' or 'openai'")
