"""Test-only models: a tiny random Qwen3 on the real Qwen tokenizer, for exercising the code paths
that a user's Qwen3-4B takes (4-bit, LoRA, merge, generation) in seconds."""

from __future__ import annotations

import os
from pathlib import Path


def build_tiny_qwen3(out_dir: str | os.PathLike, *, seed: int = 0, layers: int = 2, hidden: int = 64) -> Path:
    """Save a randomly initialised Qwen3 (~10 M parameters, the real 151,936-token vocabulary)
    with the Qwen3-compatible tokenizer. Useless as a model; exact as a code path."""
    import torch
    from transformers import AutoTokenizer, Qwen3Config, Qwen3ForCausalLM

    from ehrqa.llm.models import qwen3_tokenizer_dir

    out = Path(out_dir)
    tokenizer = AutoTokenizer.from_pretrained(qwen3_tokenizer_dir())
    config = Qwen3Config(
        vocab_size=151936,
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=hidden // 4,
        tie_word_embeddings=True,
        eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
    )
    torch.manual_seed(seed)
    model = Qwen3ForCausalLM(config)
    model.generation_config.eos_token_id = config.eos_token_id
    model.generation_config.pad_token_id = config.pad_token_id
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
