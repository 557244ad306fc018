"""``ehrqa train generator``: the two-stage QLoRA answer generator from a recipe file."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "fine-tune the ST3 answer generator (two-stage QLoRA) from a recipe"
DESCRIPTION = (
    "Train the answer generator as the recipe's generator: section says: stage 1 on grounded clinical QA, "
    "stage 2 on ArchEHR-QA cases, LoRA adapters on a (4-bit) base model. Checkpoints are saved every "
    "save_steps; --resume continues an interrupted run. Runs unchanged under `accelerate launch` "
    "(see docs/multi-gpu.md)."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--recipe", required=True, metavar="FILE", help="YAML recipe with a generator: section")
    parser.add_argument("--output", metavar="DIR", help="run directory (default: runs/generator-<recipe name>)")
    parser.add_argument("--resume", action="store_true", help="continue an interrupted run in --output")


def run(args: argparse.Namespace) -> int:
    from ehrqa.train.sft import GeneratorRecipe, train_generator

    recipe = GeneratorRecipe.from_file(args.recipe)
    output = Path(args.output or Path("runs") / f"generator-{Path(args.recipe).stem}")
    adapter = train_generator(recipe, output, resume=args.resume)
    print(f"adapter: {adapter}")
    if (output / "merged").exists():
        print(f"merged model: {output / 'merged'}")
    return 0
