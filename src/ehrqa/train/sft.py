"""Two-stage QLoRA fine-tuning of the answer generator (ST3), after QU-NLP.

    stage 1  grounded clinical QA (MedQuAD by default, or SQuAD-format data such as emrQA-MedSQuAD)
    stage 2  ArchEHR-QA cases: narrative + clinician question + numbered note -> reference answer,
             continuing from the stage-1 adapter

Each stage: load the base model (4-bit NF4 with double quantisation when the recipe says so),
attach LoRA adapters (new ones, or the previous stage's to continue), tokenise the conversations
with the loss on the answer tokens only, and let ``transformers.Trainer`` run the loop. The Trainer
gives us checkpoints every ``save_steps``, resuming from the last checkpoint, gradient
checkpointing and multi-GPU data parallelism under ``accelerate launch`` with no extra code.

Output directory::

    OUT/recipe.yaml              the recipe this run was started with
    OUT/stage1/checkpoint-N/     Trainer checkpoints (adapter + optimiser state), the last few kept
    OUT/stage1/adapter/          the finished stage-1 adapter
    OUT/stage2/...               the same for stage 2
    OUT/adapter/                 the final adapter + tokenizer + recipe.yaml + training.json (versions)
    OUT/merged/                  base model with the adapter merged in (when ``merge: true``)

A stage whose ``adapter/`` exists is finished; ``resume=True`` skips it and continues an
unfinished stage from its last checkpoint.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import platform
import random
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ehrqa.config import from_dict, load_yaml
from ehrqa.errors import DataError
from ehrqa.io import atomic_write_json, atomic_write_text

log = logging.getLogger(__name__)

RECIPE_FILE = "recipe.yaml"
METADATA_FILE = "training.json"


# ------------------------------------------------------------------ the recipe


@dataclass(frozen=True)
class Stage:
    """One training stage: where its data comes from and how long to train on it."""

    data: dict[str, Any]  # {source: medquad|squad|archehr, ...}; see stage_conversations
    samples: int | None = None  # sample this many examples (seeded); None = all
    epochs: float = 1.0
    max_steps: int = -1  # > 0 overrides epochs
    learning_rate: float | None = None  # None = the recipe's learning_rate


@dataclass(frozen=True)
class Quantization:
    load_in_4bit: bool = True
    quant_type: str = "nf4"
    double_quant: bool = True
    compute_dtype: str = "bfloat16"


@dataclass(frozen=True)
class Lora:
    r: int = 64
    alpha: int = 16
    dropout: float = 0.1
    target_modules: str | list[str] = "all-linear"


# report_to names transformers' Trainer knows -> the modules that provide them (the first is the package)
REPORTERS = {"tensorboard": ("tensorboard", "tensorboardX"), "wandb": ("wandb",), "mlflow": ("mlflow",)}


@dataclass(frozen=True)
class Training:
    max_length: int = 2048
    batch_size: int = 4
    gradient_accumulation_steps: int = 4
    learning_rate: float = 2e-4
    lr_scheduler: str = "constant"
    warmup_ratio: float = 0.03
    weight_decay: float = 0.0
    max_grad_norm: float = 0.3
    optim: str = "paged_adamw_32bit"
    gradient_checkpointing: bool = True
    bf16: bool = True
    save_steps: int = 200
    save_total_limit: int = 2
    logging_steps: int = 10
    answer_words: int | None = 75  # stage-2 references longer than this are cut to whole sentences
    # Where the Trainer sends its logged numbers (loss, learning rate, gradient norm; never text):
    # none by default; any of REPORTERS that is installed.
    report_to: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        import importlib.util

        for name in self.report_to:
            if name not in REPORTERS:
                raise ValueError(f"report_to: {name!r} is not one of {', '.join(REPORTERS)}")
            if not any(importlib.util.find_spec(module) for module in REPORTERS[name]):
                raise ValueError(f"report_to: {name} is not installed (pip install {REPORTERS[name][0]})")


@dataclass(frozen=True)
class GeneratorRecipe:
    """The ``generator:`` section of a recipe file; nested sections follow the YAML."""

    model: str = "smollm2"  # Hub id or local directory; "smollm2" = the shipped SmolLM2-135M-Instruct
    seed: int = 42
    prompt: str = "st3-answer@1"  # the prompt training examples are rendered with (and asked with later)
    quantization: Quantization = field(default_factory=Quantization)
    lora: Lora = field(default_factory=Lora)
    training: Training = field(default_factory=Training)
    stage1: Stage | None = None
    stage2: Stage | None = None
    merge: bool = False
    evaluation: dict[str, Any] | None = None  # {data: {...}, max_new_tokens: N}: used by benchmarks/bench_train.py
    source: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)  # the section as written

    @classmethod
    def from_dict(cls, section: Any, where: str = "recipe: generator") -> GeneratorRecipe:
        if not isinstance(section, dict):
            raise DataError(f"{where}: must be a mapping")
        if "source" in section:
            raise DataError(f"{where}.source: unknown key")
        recipe = from_dict(cls, section, where)
        if recipe.stage1 is None and recipe.stage2 is None:
            raise DataError(f"{where}: no stage1 or stage2 to train")
        return dataclasses.replace(recipe, source=section)

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> GeneratorRecipe:
        document = load_yaml(path, "recipe")
        if not document.get("generator"):
            raise DataError(f"{path}: no 'generator:' section (is this a run recipe? use `ehrqa run --recipe`)")
        return cls.from_dict(document["generator"], f"{path}: generator")


# ------------------------------------------------------------------ data


def stage_conversations(
    data: dict, samples: int | None, seed: int, answer_words: int | None, prompt: str = "st3-answer@1"
) -> list[list[dict]]:
    """Chat conversations for a stage's ``data`` block.

    ``source: medquad`` / ``squad``: grounded QA (see :mod:`ehrqa.data.stage1`);
    ``source: archehr``: cases from ``path`` (a dataset dir, ``sample`` or ``mediqa_dev``),
    optionally only ``cases`` (e.g. ``"2001-2060"``).
    """
    from ehrqa.data.stage1 import stage1_examples
    from ehrqa.train.examples import case_conversation, grounded_qa_conversation, read_cases

    data = dict(data)
    if data.get("source") == "archehr":
        cases = [c for c in read_cases(str(data.get("path", "sample")), data.get("cases")) if c.answer]
        if samples is not None and samples < len(cases):
            cases = random.Random(seed).sample(cases, samples)
        return [case_conversation(c, answer_words=answer_words, prompt=prompt) for c in cases]
    return [grounded_qa_conversation(e, prompt) for e in stage1_examples(data, samples or 1000, seed)]


class PadCollator:
    """Right-pads a batch: ``pad_id`` for inputs, -100 for labels, 0 in the attention mask."""

    def __init__(self, pad_id: int) -> None:
        self.pad_id = pad_id

    def __call__(self, rows: list[dict]) -> dict:
        import torch

        width = max(len(r["input_ids"]) for r in rows)
        batch = {"input_ids": [], "labels": [], "attention_mask": []}
        for r in rows:
            gap = width - len(r["input_ids"])
            batch["input_ids"].append(r["input_ids"] + [self.pad_id] * gap)
            batch["labels"].append(r["labels"] + [-100] * gap)
            batch["attention_mask"].append([1] * len(r["input_ids"]) + [0] * gap)
        return {k: torch.tensor(v, dtype=torch.long) for k, v in batch.items()}


# ------------------------------------------------------------------ training


def library_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    versions = {"python": platform.python_version()}
    for name in ("ehrqa", "torch", "transformers", "peft", "accelerate", "bitsandbytes"):
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            pass
    return versions


def _device_map():
    """Each process holds a whole copy of the model on its own GPU (data parallel), or the CPU."""
    import torch

    if torch.cuda.is_available():
        from accelerate import PartialState

        return {"": PartialState().local_process_index}
    return {"": "cpu"}


def _is_main_process() -> bool:
    from accelerate import PartialState

    return PartialState().is_main_process


def _load_for_training(recipe: GeneratorRecipe, base: str, init_adapter: Path | None):
    """The base model (4-bit when asked) with trainable LoRA adapters: new, or ``init_adapter``'s."""
    from peft import LoraConfig, PeftModel, get_peft_model, prepare_model_for_kbit_training

    from ehrqa.llm.hf import load_causal_lm

    model = load_causal_lm(
        base,
        load_in_4bit=recipe.quantization.load_in_4bit,
        quant_type=recipe.quantization.quant_type,
        double_quant=recipe.quantization.double_quant,
        compute_dtype=recipe.quantization.compute_dtype,
        dtype=recipe.quantization.compute_dtype,
        device_map=_device_map(),
    )
    checkpointing = {"use_reentrant": False}
    if recipe.quantization.load_in_4bit:
        model = prepare_model_for_kbit_training(
            model,
            use_gradient_checkpointing=recipe.training.gradient_checkpointing,
            gradient_checkpointing_kwargs=checkpointing,
        )
    elif recipe.training.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=checkpointing)
        model.enable_input_require_grads()
    if init_adapter is not None:
        return PeftModel.from_pretrained(model, str(init_adapter), is_trainable=True)
    lora = LoraConfig(
        r=recipe.lora.r,
        lora_alpha=recipe.lora.alpha,
        lora_dropout=recipe.lora.dropout,
        target_modules=recipe.lora.target_modules,
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, lora)


def train_stage(
    recipe: GeneratorRecipe,
    name: str,
    stage: Stage,
    tokenizer,
    base: str,
    stage_dir: Path,
    *,
    init_adapter: Path | None = None,
    resume: bool = False,
    callbacks: list | None = None,
) -> Path:
    """Train one stage into ``stage_dir``; returns its ``adapter/`` directory."""
    import torch
    from transformers import Trainer, TrainingArguments

    from ehrqa.train.examples import tokenize_all

    adapter_dir = stage_dir / "adapter"
    if (adapter_dir / "adapter_config.json").exists():
        log.info("%s: already finished (%s)", name, adapter_dir)
        return adapter_dir
    conversations = stage_conversations(
        stage.data, stage.samples, recipe.seed, recipe.training.answer_words, recipe.prompt
    )
    rows = tokenize_all(tokenizer, conversations, recipe.training.max_length, name)
    log.info("%s: %d training examples", name, len(rows))

    model = _load_for_training(recipe, base, init_adapter)
    use_cpu = not torch.cuda.is_available()
    args = TrainingArguments(
        output_dir=str(stage_dir),
        seed=recipe.seed,
        num_train_epochs=stage.epochs,
        max_steps=stage.max_steps,
        per_device_train_batch_size=recipe.training.batch_size,
        gradient_accumulation_steps=recipe.training.gradient_accumulation_steps,
        learning_rate=stage.learning_rate or recipe.training.learning_rate,
        lr_scheduler_type=recipe.training.lr_scheduler,
        warmup_steps=recipe.training.warmup_ratio,  # a float below 1 is a fraction of all steps
        weight_decay=recipe.training.weight_decay,
        max_grad_norm=recipe.training.max_grad_norm,
        optim=recipe.training.optim,
        bf16=recipe.training.bf16,
        use_cpu=use_cpu,
        save_strategy="steps",
        save_steps=recipe.training.save_steps,
        save_total_limit=recipe.training.save_total_limit,
        logging_steps=recipe.training.logging_steps,
        report_to=list(recipe.training.report_to) or "none",
        disable_tqdm=bool(os.environ.get("EHRQA_NO_PROGRESS")),
        ddp_find_unused_parameters=False,
        dataloader_num_workers=0,
    )
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=rows,
        data_collator=PadCollator(tokenizer.pad_token_id),
        callbacks=callbacks,
    )
    has_checkpoint = any(stage_dir.glob("checkpoint-*"))
    result = trainer.train(resume_from_checkpoint=True if resume and has_checkpoint else None)
    if trainer.is_world_process_zero():
        # Save to a temporary name first: an adapter/ dir that exists is a finished stage.
        tmp = stage_dir / "adapter.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        trainer.save_model(str(tmp))
        tokenizer.save_pretrained(str(tmp))
        summary = {
            "examples": len(rows),
            "steps": trainer.state.global_step,
            "train_loss": result.training_loss,
            "log_history": trainer.state.log_history,
        }
        atomic_write_json(tmp / "stage.json", summary)
        os.replace(tmp, adapter_dir)
    trainer.accelerator.wait_for_everyone()
    del trainer, model
    return adapter_dir


def _write_recipe(recipe: GeneratorRecipe, path: Path) -> None:
    import yaml

    atomic_write_text(path, yaml.safe_dump({"generator": recipe.source}, sort_keys=False))


def train_generator(
    recipe: GeneratorRecipe,
    output: str | os.PathLike,
    *,
    resume: bool = False,
    callbacks: list | None = None,
) -> Path:
    """Run the recipe's stages into ``output``; returns the final adapter directory."""
    output = Path(output)
    recipe_path = output / RECIPE_FILE
    if output.exists() and any(output.iterdir()):
        if not resume:
            raise DataError(f"{output}: not empty; pass resume=True to continue that run, or choose a new output=DIR")
        if recipe_path.exists() and load_yaml(recipe_path, "training recipe").get("generator") != recipe.source:
            raise DataError(f"{output}: was started with a different recipe; cannot resume it with this one")
    from transformers import set_seed

    from ehrqa.llm.hf import load_tokenizer
    from ehrqa.llm.models import resolve_model

    output.mkdir(parents=True, exist_ok=True)
    if _is_main_process() and not recipe_path.exists():
        _write_recipe(recipe, recipe_path)

    set_seed(recipe.seed)
    base = resolve_model(recipe.model)
    tokenizer = load_tokenizer(base)
    adapter: Path | None = None
    for name, stage in (("stage1", recipe.stage1), ("stage2", recipe.stage2)):
        if stage is not None:
            adapter = train_stage(
                recipe,
                name,
                stage,
                tokenizer,
                base,
                output / name,
                init_adapter=adapter,
                resume=resume,
                callbacks=callbacks,
            )
    assert adapter is not None  # from_dict guarantees at least one stage

    final = output / "adapter"
    if _is_main_process():
        if final.exists():
            shutil.rmtree(final)
        shutil.copytree(adapter, final)
        _write_recipe(recipe, final / RECIPE_FILE)
        metadata = {"base_model": recipe.model, "recipe": recipe.source, "versions": library_versions()}
        atomic_write_json(final / METADATA_FILE, metadata)
        if recipe.merge:
            merge_adapter(base, final, output / "merged", dtype=recipe.quantization.compute_dtype)
    return final


def merge_adapter(base: str, adapter: str | os.PathLike, out: str | os.PathLike, *, dtype: str = "bfloat16") -> Path:
    """Save ``base`` with ``adapter`` merged into its weights: a plain model any server can load.

    The base is loaded unquantised (merging into 4-bit weights would lose precision)."""
    from peft import PeftModel

    from ehrqa.llm.hf import load_causal_lm, load_tokenizer

    out = Path(out)
    model = load_causal_lm(base, dtype=dtype, device_map={"": "cpu"})
    merged = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
    merged.save_pretrained(out)
    load_tokenizer(str(adapter) if (Path(adapter) / "tokenizer_config.json").exists() else base).save_pretrained(out)
    return out
