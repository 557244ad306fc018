"""``ehrqa train aligner``: fine-tune the cross-encoder and tune the ST2/ST4 ensembles."""

from __future__ import annotations

import argparse

from ehrqa.commands._common import add_data_arguments, load_cases

HELP = "train the evidence aligner (ST2/ST4): cross-encoder + ensemble weights, threshold, max links"
DESCRIPTION = (
    "Fine-tune the MiniLM cross-encoder on (query, note sentence, label) pairs from the training cases and tune "
    "the ensemble (weights, threshold, max links per query) by k-fold cross-validation on those cases only. "
    "Writes MODEL_DIR (aligner.json + cross_encoder.safetensors), usable as --model of align/identify."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_data_arguments(parser, default_sample=True)
    parser.add_argument("--out", required=True, metavar="MODEL_DIR", help="model directory to write")
    parser.add_argument(
        "--subtask",
        choices=["2", "4", "2,4"],
        default="2,4",
        metavar="2|4|2,4",
        help="subtasks to tune (default 2,4: every subtask whose gold the data has)",
    )
    parser.add_argument("--recipe", metavar="YAML", help="recipe file with an `aligner:` section (default: built-in)")
    parser.add_argument("--folds", type=int, metavar="K", help="cross-validation folds (overrides the recipe)")
    parser.add_argument(
        "--components", metavar="LIST", help="comma-separated scorers to use, e.g. bm25,tfidf (overrides the recipe)"
    )


def run(args: argparse.Namespace) -> int:
    import json

    from ehrqa.train.aligner import load_recipe, train_aligner

    recipe = load_recipe(args.recipe)
    if args.folds:
        recipe.setdefault("tuning", {})["folds"] = args.folds
    if args.components:
        recipe["use"] = [c.strip() for c in args.components.split(",") if c.strip()]
    cases = load_cases(args)
    subtasks = [int(s) for s in args.subtask.split(",")]
    model = train_aligner(cases, recipe, args.out, subtasks)
    for subtask, section in model.config["subtasks"].items():
        cv = section["cv"]
        print(
            f"ST{subtask}: weights {json.dumps(section['weights'])} threshold {section['threshold']} "
            f"max_links {section['max_links']}; held-out micro F1 {100 * cv['f1']:.2f}"
        )
    print(f"model: {args.out}")
    return 0
