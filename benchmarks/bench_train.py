"""Answer-generator training on CPU: QLoRA step time and peak memory, and a recipe end to end.

Step mode (default): SmolLM2-135M-Instruct loaded as the cpu-smollm2 recipe says (NF4 + double
quantisation, bf16 compute, LoRA on all linear layers), trained with AdamW on real stage-2
examples (mediqa_dev). Prints mean seconds per optimiser step (first step excluded), training
tokens per second and the process's peak resident memory.

Recipe mode (``--recipe FILE``): trains the whole recipe (``--resume`` skips finished stages),
then answers the recipe's held-out ``evaluation`` cases with the trained adapter and scores them
with ``ehrqa.score`` (BLEU, ROUGE-Lsum, SARI exact; stand-ins labelled as such). ``--baseline``
also scores the untrained base model on the same cases.

    .venv/bin/python benchmarks/bench_train.py [--steps 6] [--batch-size 1] [--examples 8]
    .venv/bin/python benchmarks/bench_train.py --recipe recipes/cpu-smollm2.yaml --output runs/cpu-smollm2 [--resume]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

RECIPE = Path(__file__).resolve().parent.parent / "recipes" / "cpu-smollm2.yaml"


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def step_benchmark(args: argparse.Namespace) -> None:
    import torch

    from ehrqa.llm.hf import load_tokenizer
    from ehrqa.llm.models import resolve_model
    from ehrqa.train.examples import tokenize_all
    from ehrqa.train.sft import GeneratorRecipe, PadCollator, _load_for_training, stage_conversations

    recipe = GeneratorRecipe.from_file(RECIPE)
    base = resolve_model(recipe.model)
    tokenizer = load_tokenizer(base)
    conversations = stage_conversations(recipe.stage2.data, args.examples, recipe.seed, recipe.training.answer_words)
    rows = tokenize_all(tokenizer, conversations, recipe.training.max_length, "bench")
    before = peak_rss_mb()
    started = time.perf_counter()
    model = _load_for_training(recipe, base, None)
    load = time.perf_counter() - started
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=recipe.training.learning_rate)
    collate = PadCollator(tokenizer.pad_token_id)
    times, tokens = [], []
    for step in range(args.steps + 1):
        batch = [rows[(step * args.batch_size + i) % len(rows)] for i in range(args.batch_size)]
        inputs = collate(batch)
        started = time.perf_counter()
        loss = model(**inputs).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        if step:  # the first step pays one-off costs
            times.append(time.perf_counter() - started)
            tokens.append(int(inputs["attention_mask"].sum()))
    mean = sum(times) / len(times)
    print(
        f"SmolLM2-135M QLoRA (nf4 double-quant, {recipe.quantization.compute_dtype} compute, LoRA r={recipe.lora.r} "
        f"{recipe.lora.target_modules}), CPU, torch threads {torch.get_num_threads()}"
    )
    print(f"load + prepare: {load:.1f} s | trainable parameters: {trainable / 1e6:.2f} M")
    print(
        f"batch {args.batch_size} x mean {sum(tokens) / len(tokens):.0f} tokens: {mean:.2f} s/step over "
        f"{len(times)} steps = {sum(tokens) / sum(times):.0f} training tokens/s"
    )
    print(f"peak RSS: {peak_rss_mb():.0f} MB (before loading the model: {before:.0f} MB)")


def recipe_benchmark(args: argparse.Namespace) -> None:
    from ehrqa.llm.backend import BackendSpec
    from ehrqa.runs.config import RunRecipe, StepSpec
    from ehrqa.runs.pipeline import run
    from ehrqa.tasks.generate import GenerateConfig
    from ehrqa.train.examples import read_cases
    from ehrqa.train.sft import GeneratorRecipe, train_generator

    recipe = GeneratorRecipe.from_file(args.recipe)
    output = Path(args.output)
    started = time.perf_counter()
    adapter = train_generator(recipe, output, resume=args.resume)
    train_seconds = time.perf_counter() - started
    print(f"training: {train_seconds:.0f} s (finished stages skipped with --resume) -> {adapter}")
    for name in ("stage1", "stage2"):
        summary = output / name / "adapter" / "stage.json"
        if summary.exists():
            s = json.loads(summary.read_text())
            print(
                f"  {name}: {s['examples']} examples, {s['steps']} optimiser steps, "
                f"mean train loss {s['train_loss']:.3f}"
            )
    if not recipe.evaluation:
        return
    data = recipe.evaluation["data"]
    cases = read_cases(str(data.get("path", "sample")), data.get("cases"))
    max_new_tokens = int(recipe.evaluation.get("max_new_tokens", 112))
    systems = [("trained", BackendSpec(adapter=str(adapter)))]
    if args.baseline:
        systems.append(("base", BackendSpec(model=recipe.model)))
    for label, spec in systems:
        # the evaluation is an ordinary one-step run: resumable, scored, with its records
        run_recipe = RunRecipe(
            name=f"eval-{label}",
            backends={"default": spec},
            steps=(StepSpec(3, "st3", GenerateConfig(max_new_tokens=max_new_tokens)),),
        )
        started = time.perf_counter()
        (row,) = run(run_recipe, cases, output / f"eval-{label}")
        seconds = time.perf_counter() - started
        scores = row.get("scores") or {}
        shown = {k: round(v, 2) for k, v in scores.items() if isinstance(v, float)}
        print(
            f"{label}: {len(cases)} held-out cases ({data.get('path')} {data.get('cases')}) answered in "
            f"{seconds:.0f} s ({seconds / len(cases):.1f} s/case) -> {output / f'eval-{label}'}"
        )
        print(f"  ST3 scores: {json.dumps(shown)}")
        if "unavailable" in scores:
            print(f"  not computed: {', '.join(scores['unavailable'])}")
    print(f"peak RSS: {peak_rss_mb():.0f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--examples", type=int, default=8)
    parser.add_argument("--recipe", help="run this recipe end to end instead of the step benchmark")
    parser.add_argument("--output", default="runs/bench-generator", help="recipe mode: run directory")
    parser.add_argument("--resume", action="store_true", help="recipe mode: continue / reuse a run")
    parser.add_argument("--baseline", action="store_true", help="recipe mode: also score the untrained model")
    args = parser.parse_args()
    if args.recipe:
        recipe_benchmark(args)
    else:
        step_benchmark(args)


if __name__ == "__main__":
    main()
