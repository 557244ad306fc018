"""Two-stage QLoRA training of the answer generator on a tiny random Qwen3 with the real Qwen
tokenizer: train -> save -> load -> merge -> generate, resume, labels and recipes."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from ehrqa.data.archehr import read_dataset, write_key, write_xml
from ehrqa.errors import DataError
from ehrqa.llm.backend import BackendSpec
from ehrqa.tasks.base import Context
from ehrqa.tasks.generate import GenerateConfig, predict
from ehrqa.train.examples import IGNORE_INDEX, case_conversation, tokenize_example
from ehrqa.train.sft import GeneratorRecipe, train_generator

RECIPES = Path(__file__).resolve().parent.parent / "recipes"


@pytest.fixture(scope="session")
def tiny_qwen3(tmp_path_factory) -> Path:
    from tiny_models import build_tiny_qwen3

    return build_tiny_qwen3(tmp_path_factory.mktemp("models") / "tiny-qwen3")


@pytest.fixture(scope="session")
def short_cases_dir(tmp_path_factory) -> Path:
    """Three sample cases cut to their first three note sentences, so training steps stay short."""
    out = tmp_path_factory.mktemp("short-cases")
    cases = []
    for case in read_dataset()[:3]:
        keep = case.sentences[:3]
        ids = {s.id for s in keep}
        cases.append(
            replace(
                case,
                sentences=keep,
                relevance=tuple(r for r in case.relevance if r[0] in ids),
                answer=" ".join(case.answer.split()[:30]),
                answer_sentences=None,
            )
        )
    write_xml(cases, out / "archehr-qa.xml")
    write_key(cases, out / "archehr-qa_key.json")
    return out


def tiny_recipe(model: Path, cases_dir: Path, **changes) -> GeneratorRecipe:
    section = {
        "model": str(model),
        "seed": 3,
        "quantization": {"load_in_4bit": True, "quant_type": "nf4", "double_quant": True, "compute_dtype": "float32"},
        "lora": {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": "all-linear"},
        "training": {
            "max_length": 512,
            "batch_size": 2,
            "gradient_accumulation_steps": 1,
            "learning_rate": 0.01,
            "optim": "adamw_torch",
            "bf16": False,
            "gradient_checkpointing": True,
            "save_steps": 1,
            "save_total_limit": 3,
            "logging_steps": 1,
            "lr_scheduler": "constant",
            "warmup_ratio": 0.0,
        },
        "stage1": {
            "data": {"source": "medquad", "context_sentences": 2, "distractors": 1, "answer_words": 25},
            "samples": 4,
            "max_steps": 2,
        },
        "stage2": {"data": {"source": "archehr", "path": str(cases_dir)}, "max_steps": 2},
        "merge": True,
    }
    section.update(changes)
    return GeneratorRecipe.from_dict(section)


def _lora_weights(adapter_dir: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(adapter_dir / "adapter_model.safetensors"))


def test_train_save_load_merge_generate(tiny_qwen3, short_cases_dir, tmp_path):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    out = tmp_path / "run"
    adapter = train_generator(tiny_recipe(tiny_qwen3, short_cases_dir), out)

    # both stages ran and saved; the final adapter is stage 2's, with recipe and versions beside it
    assert adapter == out / "adapter"
    for stage in ("stage1", "stage2"):
        summary = json.loads((out / stage / "adapter" / "stage.json").read_text())
        assert summary["steps"] == 2 and summary["train_loss"] > 0
    stage1, stage2, final = (_lora_weights(p) for p in (out / "stage1/adapter", out / "stage2/adapter", adapter))
    assert all(torch.equal(final[k], stage2[k]) for k in final)
    assert any(not torch.equal(stage1[k], stage2[k]) for k in stage1)
    # LoRA B matrices start at zero: non-zero ones were trained
    assert any(k.endswith("lora_B.weight") and stage1[k].abs().sum() > 0 for k in stage1)
    meta = json.loads((adapter / "training.json").read_text())
    assert {"torch", "transformers", "peft", "bitsandbytes"} <= set(meta["versions"])
    assert meta["recipe"]["lora"]["r"] == 4
    assert (adapter / "recipe.yaml").exists() and (out / "recipe.yaml").exists()

    # the merged model computes what base + adapter computes
    ids = torch.tensor([[9707, 11, 1879, 0, 151645]])
    base = AutoModelForCausalLM.from_pretrained(tiny_qwen3, dtype=torch.float32)
    with torch.no_grad():
        unmerged = PeftModel.from_pretrained(base, str(adapter))(ids).logits
        merged = AutoModelForCausalLM.from_pretrained(out / "merged", dtype=torch.float32)(ids).logits
    assert torch.allclose(unmerged, merged, atol=1e-4)

    # generation: merged model, and base + adapter found through the adapter's config, agree
    cases = [c.input_for(3) for c in read_dataset(short_cases_dir)]

    def answers(config: GenerateConfig, spec: BackendSpec, seed: int = 0) -> dict:
        ctx = Context(backends={"default": spec}, seed=seed)
        try:
            return predict(cases, config, ctx)
        finally:
            ctx.close()

    greedy = GenerateConfig(max_new_tokens=6)
    from_merged = answers(greedy, BackendSpec(model=str(out / "merged")))
    from_adapter = answers(greedy, BackendSpec(adapter=str(adapter)))
    assert from_merged == from_adapter and set(from_merged) == {c.id for c in cases}
    sampled = GenerateConfig(max_new_tokens=6, temperature=1.0, top_p=0.95)
    merged_spec = BackendSpec(model=str(out / "merged"))
    assert answers(sampled, merged_spec, seed=7) == answers(sampled, merged_spec, seed=7)  # sampling is seeded
    four_bit = answers(greedy, BackendSpec(adapter=str(adapter), load_in_4bit=True))
    assert all(isinstance(a, str) and a for a in four_bit.values())


def test_per_sample_seeds_reproduce_each_sample_whatever_else_is_in_the_batch(tiny_qwen3, short_cases_dir):
    """A resumed sampled run asks for fewer samples at once; each sample's reply must not change."""
    from ehrqa.llm.backend import ChatRequest, GenerationConfig, make_backend, sample_seed
    from ehrqa.llm.prompt import case_slots, load_prompt

    case = read_dataset(short_cases_dir)[0].input_for(3)
    messages = tuple(load_prompt("st3-answer@1").render(case_slots(case)))
    config = GenerationConfig(max_new_tokens=8, temperature=1.0, n=4)
    seeds = [sample_seed(0, case.id, k) for k in range(4)]
    assert len(set(seeds)) == 4
    requests = [ChatRequest(messages, config.for_sample(s), case.id, k) for k, s in enumerate(seeds)]
    backend = make_backend(BackendSpec(model=str(tiny_qwen3), batch_size=4))
    try:
        together = [r.text for r in backend.complete(requests)]
        resumed = [r.text for r in backend.complete(requests[2:])]
    finally:
        backend.close()
    assert together[2:] == resumed
    assert len(set(together)) > 1  # different seeds, different samples


def test_interrupted_training_resumes_from_its_checkpoint(tiny_qwen3, short_cases_dir, tmp_path):
    from transformers import TrainerCallback

    class StopAt(TrainerCallback):
        def __init__(self, step):
            self.step = step

        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == self.step:
                raise KeyboardInterrupt

    class CountSteps(TrainerCallback):
        def __init__(self):
            self.steps = 0

        def on_step_end(self, args, state, control, **kwargs):
            self.steps += 1

    recipe = tiny_recipe(
        tiny_qwen3,
        short_cases_dir,
        stage1=None,
        merge=False,
        stage2={"data": {"source": "archehr", "path": str(short_cases_dir)}, "max_steps": 3},
    )
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        train_generator(recipe, out, callbacks=[StopAt(2)])
    assert (out / "stage2" / "checkpoint-1").exists() and not (out / "stage2" / "adapter").exists()

    with pytest.raises(DataError, match="resume=True"):
        train_generator(recipe, out)
    with pytest.raises(DataError, match="different recipe"):
        train_generator(tiny_recipe(tiny_qwen3, short_cases_dir, seed=4), out, resume=True)

    counter = CountSteps()
    train_generator(recipe, out, resume=True, callbacks=[counter])
    assert counter.steps == 2  # steps 2 and 3, continuing from checkpoint-1
    assert json.loads((out / "stage2" / "adapter" / "stage.json").read_text())["steps"] == 3

    again = CountSteps()
    train_generator(recipe, out, resume=True, callbacks=[again])
    assert again.steps == 0  # a finished stage is not trained again


def test_loss_is_on_the_answer_tokens_only(tiny_qwen3):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_qwen3)
    case = read_dataset()[0]
    row = tokenize_example(tokenizer, case_conversation(case), max_length=4096)
    answer_ids = [t for t, label in zip(row["input_ids"], row["labels"], strict=True) if label != IGNORE_INDEX]
    assert tokenizer.decode(answer_ids) == case.answer + "<|im_end|>\n"
    first = row["labels"].index(answer_ids[0])
    assert all(label == IGNORE_INDEX for label in row["labels"][:first])
    assert tokenizer.decode(row["input_ids"][:first]).endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")
    assert tokenize_example(tokenizer, case_conversation(case), max_length=50) is None


def test_long_references_are_cut_to_whole_sentences_for_training():
    case = read_dataset()[0]
    long = replace(case, answer=" ".join(f"This is sentence number {i} of eight words." for i in range(12)))
    answer = case_conversation(long, answer_words=75)[-1]["content"]
    assert len(answer.split()) == 72 and answer.endswith("number 8 of eight words.")


def test_shipped_recipes_parse_with_the_papers_settings():
    paper = GeneratorRecipe.from_file(RECIPES / "qu-nlp.yaml")
    assert paper.model == "Qwen/Qwen3-4B"
    q = paper.quantization
    assert (q.load_in_4bit, q.quant_type, q.double_quant, q.compute_dtype) == (True, "nf4", True, "bfloat16")
    assert paper.lora.target_modules == "all-linear"
    assert isinstance(paper.training.learning_rate, float)
    assert paper.stage1.samples == 30000 and paper.stage2.data["source"] == "archehr"
    cpu = GeneratorRecipe.from_file(RECIPES / "cpu-smollm2.yaml")
    assert cpu.model == "smollm2" and cpu.quantization.load_in_4bit and cpu.stage1 and cpu.stage2
    held_out = set(range(2061, 2081))
    trained = {int(i) for i in cpu.stage2.data["cases"].split("-")} if cpu.stage2 else set()
    assert cpu.evaluation["data"]["cases"] == "2061-2080" and max(trained) < min(held_out)


def test_recipe_typos_are_reported():
    with pytest.raises(DataError, match="generator.training.lerning_rate: unknown key"):
        GeneratorRecipe.from_dict({"training": {"lerning_rate": 1e-4}, "stage2": {"data": {"source": "archehr"}}})
    with pytest.raises(DataError, match="no stage1 or stage2"):
        GeneratorRecipe.from_dict({"model": "x"})
    with pytest.raises(DataError, match="generator.lora.r: expected a whole number"):
        GeneratorRecipe.from_dict({"lora": {"r": "big"}, "stage2": {"data": {"source": "archehr"}}})
