"""Local chat models through transformers: base model, optional LoRA adapter, optional 4-bit.

JSON replies are not constrained to a request's schema here; they go through the repair module
(:mod:`ehrqa.llm.jsonout`). Of the libraries that constrain transformers' generation, the pure-Python
one (lm-format-enforcer 0.11.3) fails to import its transformers integration under the pinned
transformers 5 (``transformers.tokenization_utils.PreTrainedTokenizerBase`` is gone), and outlines,
xgrammar and llguidance each bring a native wheel and pins of their own. For schema-constrained
JSON from a local model, serve it (llama.cpp, vLLM) and use the openai backend.

The loader is shared with training (:mod:`ehrqa.train.sft`), so a model is quantised and placed
the same way whether it is being trained or asked questions.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path

from ehrqa.errors import DataError
from ehrqa.llm.backend import ChatBackend, ChatRequest, GenerationConfig, OnReply, Reply
from ehrqa.llm.models import SMOLLM2_NAME, resolve_model

log = logging.getLogger(__name__)


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def torch_dtype(name: str | None):
    """``"bfloat16"``/``"bf16"``, ``"float16"``, ``"float32"`` or ``"auto"``/None -> a torch dtype or "auto"."""
    import torch

    if name in (None, "auto"):
        return "auto"
    aliases = {"bf16": "bfloat16", "fp16": "float16", "half": "float16", "fp32": "float32", "float": "float32"}
    return getattr(torch, aliases.get(name, name))


def load_tokenizer(model: str):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_causal_lm(
    model: str,
    *,
    load_in_4bit: bool = False,
    quant_type: str = "nf4",
    double_quant: bool = True,
    compute_dtype: str = "bfloat16",
    dtype: str | None = "auto",
    device_map: str | dict | None = None,
):
    """A causal LM from a Hub id or directory; 4-bit via bitsandbytes (NF4 + double quantisation
    by default, the QLoRA setting), otherwise in ``dtype``. Works on CPU and CUDA."""
    from transformers import AutoModelForCausalLM

    device_map = device_map or {"": default_device()}
    if load_in_4bit:
        from transformers import BitsAndBytesConfig

        quantization = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type=quant_type,
            bnb_4bit_use_double_quant=double_quant,
            bnb_4bit_compute_dtype=torch_dtype(compute_dtype),
        )
        return AutoModelForCausalLM.from_pretrained(
            model, quantization_config=quantization, dtype=torch_dtype(compute_dtype), device_map=device_map
        )
    return AutoModelForCausalLM.from_pretrained(model, dtype=torch_dtype(dtype), device_map=device_map)


def render_prompt(tokenizer, messages: Sequence[dict[str, str]], *, thinking: bool = False) -> str:
    """The model's own chat template with a generation prompt. ``enable_thinking`` switches Qwen3's
    thinking on or off (off by default); templates that do not know the variable ignore it."""
    return tokenizer.apply_chat_template(
        list(messages), tokenize=False, add_generation_prompt=True, enable_thinking=thinking
    )


def stop_token_ids(tokenizer) -> list[int]:
    ids = {tokenizer.eos_token_id}
    for token in ("<|im_end|>", "<|endoftext|>", "<|eot_id|>"):
        tid = tokenizer.convert_tokens_to_ids(token)
        if isinstance(tid, int) and tid != tokenizer.unk_token_id:
            ids.add(tid)
    return sorted(i for i in ids if i is not None)


class HFChat(ChatBackend):
    """A transformers model (plus optional LoRA adapter) answering batches of conversations."""

    def __init__(
        self,
        model: str | None = None,
        *,
        adapter: str | None = None,
        load_in_4bit: bool = False,
        dtype: str | None = "auto",
        batch_size: int = 4,
        merge_adapter: bool | None = None,
        thinking: bool = False,
    ) -> None:
        from peft import PeftModel

        if model is None and adapter:
            model = adapter_base_model(adapter)
        path = resolve_model(model)
        # An adapter saved by ehrqa carries the tokenizer it was trained with.
        self.tokenizer = load_tokenizer(adapter if adapter and _has_tokenizer(adapter) else path)
        self.tokenizer.padding_side = "left"  # generation continues from the right end of every row
        self.model = load_causal_lm(path, load_in_4bit=load_in_4bit, dtype=dtype)
        if adapter:
            self.model = PeftModel.from_pretrained(self.model, adapter)
            # Merging makes generation ~1.4x faster; a 4-bit base cannot be merged in place.
            if merge_adapter if merge_adapter is not None else not load_in_4bit:
                self.model = self.model.merge_and_unload()
        self.model.eval()
        self.batch_size = max(1, batch_size)
        self.stop_ids = stop_token_ids(self.tokenizer)
        self.thinking = thinking
        self.description = {
            "backend": "hf",
            "model": str(model or "smollm2"),
            "adapter": adapter,
            "load_in_4bit": load_in_4bit,
        }
        # only when set, so replies cached before these were settable keep their keys
        if dtype not in (None, "auto"):
            self.description["dtype"] = dtype
        if thinking:
            self.description["thinking"] = True

    def complete(self, requests: Sequence[ChatRequest], on_reply: OnReply | None = None) -> list[Reply]:
        """Greedy requests are batched (batches of similar length waste less compute on padding).
        A sampled request is generated on its own, seeded with its own seed, so its reply does not
        depend on which other requests share the call: a resumed run reproduces it exactly.

        A greedy reply can depend on its batch mates: left padding changes the low-order bits of
        bf16 arithmetic, and a long reply may then take another token. ``batch_size: 1`` makes
        greedy replies independent of the batch (and of what a resumed run still has to do)."""
        prompts = [render_prompt(self.tokenizer, r.messages, thinking=self.thinking) for r in requests]
        replies: list[Reply | None] = [None] * len(requests)
        greedy = sorted((i for i, r in enumerate(requests) if r.config.greedy), key=lambda i: len(prompts[i]))
        groups: list[list[int]] = []
        for i in greedy:  # one batch holds requests with identical settings
            if groups and len(groups[-1]) < self.batch_size and requests[groups[-1][0]].config == requests[i].config:
                groups[-1].append(i)
            else:
                groups.append([i])
        groups += [[i] for i, r in enumerate(requests) if not r.config.greedy]
        for group in groups:
            started = time.perf_counter()
            results = self._generate([prompts[i] for i in group], requests[group[0]].config)
            seconds = (time.perf_counter() - started) / len(group)
            for i, (text, prompt_tokens, completion_tokens) in zip(group, results, strict=True):
                replies[i] = Reply(
                    text, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens, seconds=seconds
                )
                if on_reply is not None:
                    on_reply(i, replies[i])
        return replies

    def _generate(self, prompts: list[str], config: GenerationConfig) -> list[tuple[str, int, int]]:
        """(reply, prompt tokens, completion tokens) per prompt."""
        import torch

        batch = self.tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        batch = batch.to(self.model.device)
        options = {
            "max_new_tokens": config.max_new_tokens,
            "eos_token_id": self.stop_ids,
            "pad_token_id": self.tokenizer.pad_token_id,
        }
        if config.greedy:
            options.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        else:
            torch.manual_seed(config.seed)
            options.update(do_sample=True, temperature=config.temperature, top_p=config.top_p, top_k=None)
        with torch.inference_mode():
            out = self.model.generate(**batch, **options)
        prompt_lengths = batch["attention_mask"].sum(dim=1).tolist()
        results = []
        for row, prompt_tokens in zip(out[:, batch["input_ids"].shape[1] :].tolist(), prompt_lengths, strict=True):
            for k, token in enumerate(row):  # cut at the first stop token
                if token in self.stop_ids:
                    row = row[:k]
                    break
            results.append((self.tokenizer.decode(row, skip_special_tokens=False), int(prompt_tokens), len(row)))
        return results

    def close(self) -> None:
        del self.model


def _has_tokenizer(path: str) -> bool:
    return (Path(path) / "tokenizer_config.json").exists()


def adapter_base_model(adapter: str) -> str:
    """The base model a PEFT adapter was trained on (``base_model_name_or_path``)."""
    config = Path(adapter) / "adapter_config.json"
    try:
        base = json.loads(config.read_text(encoding="utf-8")).get("base_model_name_or_path")
    except FileNotFoundError:
        raise DataError(f"{adapter}: not an adapter directory (no adapter_config.json)") from None
    if not base:
        raise DataError(f"{config}: names no base model; pass --model")
    if Path(base).name == SMOLLM2_NAME and not Path(base).exists():
        return "smollm2"  # trained on another machine's cache: rebuild the same model here
    return base
