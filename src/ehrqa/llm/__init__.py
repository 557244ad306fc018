"""Chat language models: one backend interface, local transformers and OpenAI-compatible servers."""

from __future__ import annotations

from dataclasses import replace

from ehrqa.llm.backend import BackendSpec, ChatBackend


def make_backend(spec: BackendSpec | None = None, **overrides) -> ChatBackend:
    """The one construction path for chat backends: from a spec (plus field overrides)."""
    spec = replace(spec or BackendSpec(), **overrides)
    spec.check()
    if spec.kind == "hf":
        from ehrqa.llm.hf import HFChat

        return HFChat(
            spec.model,
            adapter=spec.adapter,
            load_in_4bit=spec.load_in_4bit,
            batch_size=spec.batch_size,
            dtype=spec.dtype,
            thinking=bool(spec.thinking),
        )
    from ehrqa.llm.openai import OpenAIChat

    return OpenAIChat.from_spec(spec)
