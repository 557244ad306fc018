"""``ehrqa train aligner``: fine-tune the cross-encoder and tune the ST2/ST4 ensembles, or (``--learned``)
fit the learned combiner the shipped default is, on your cases and the bundled sources."""

from __future__ import annotations

import argparse

from ehrqa.commands._common import add_data_arguments, load_cases
from ehrqa.errors import DataError

HELP = "train the evidence aligner (ST2/ST4): cross-encoder + ensemble weights, threshold, max links"
DESCRIPTION = (
    "Fine-tune the MiniLM cross-encoder on (query, note sentence, label) pairs from the training cases and tune "
    "the ensemble (weights, threshold, max links per query) by k-fold cross-validation on those cases only. "
    "Writes MODEL_DIR (aligner.json + cross_encoder.safetensors), usable as --aligner of align/identify. "
    "With --learned: fit the learned combiner the shipped default is (MiniLM and lexical features, logistic "
    "regression, a decision rule per subtask) on your cases plus the bundled sources it was trained on "
    "(--no-bundled: your cases alone)."
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
    learned = parser.add_argument_group("learned combiner (the shipped default's kind)")
    learned.add_argument(
        "--learned", action="store_true", help="fit the learned combiner instead of tuning an ensemble"
    )
    learned.add_argument(
        "--no-bundled",
        action="store_true",
        help="with --learned: train on your cases alone (default: with aci_dev, mediqa_dev, the sample, Check-COVID)",
    )


def run(args: argparse.Namespace) -> int:
    if args.learned:
        return run_learned(args)
    if args.no_bundled:
        raise DataError("--no-bundled goes with --learned")
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


def run_learned(args: argparse.Namespace) -> int:
    from ehrqa.retrieval.features import ROBUST_FEATURES
    from ehrqa.train.aligner import has_gold, shipped_sources, train_learned_aligner

    given = [f"--{name}" for name in ("recipe", "folds", "components") if getattr(args, name)]
    if given:
        raise DataError(f"--learned takes no {', '.join(given)}: its features and fitting are the shipped default's")
    subtasks = [int(s) for s in args.subtask.split(",")]
    own = list(load_cases(args)) if (args.data or args.xml or args.key) else []
    if args.no_bundled:
        if not own:
            raise DataError("--no-bundled needs your cases: --data DIR or --xml/--key")
        sources = {t: {"yours": own} for t in subtasks}
    else:
        sources = {t: per_subtask for t, per_subtask in shipped_sources(own).items() if t in subtasks}
    sources = {t: per for t, per in sources.items() if any(has_gold(t, c) for cs in per.values() for c in cs)}
    if not sources:
        raise DataError(f"no training cases with gold for subtask {args.subtask} (ST2 relevance, ST4 citations)")
    record = {"trained_on": "ehrqa train aligner --learned" + (" --no-bundled" if args.no_bundled else "")}
    model = train_learned_aligner(sources, list(ROBUST_FEATURES), args.out, record=record)
    for subtask, section in model.config["subtasks"].items():
        blend = f" blend {section['blend']}" if section.get("blend") is not None else ""
        print(
            f"ST{subtask}: rule {section['rule']} {section['threshold']} max_links {section['max_links']}{blend}; "
            f"sources {', '.join(sorted(sources[int(subtask)]))}; "
            f"mean in-sample micro F1 {100 * section['record']['rule_mean_source_f1']:.2f}"
        )
    print(f"model: {args.out}")
    return 0
