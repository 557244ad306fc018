"""``ehrqa interpret``: ST1 clinician-style questions for a dataset, as an official submission."""

from __future__ import annotations

import argparse

from ehrqa.commands._common import add_backend_arguments, add_prediction_arguments, run_one_subtask

HELP = "rewrite patient narratives as clinician-style questions (ST1)"
DESCRIPTION = (
    "Write a <= 15-word clinician-style question for every case and save submission.json (+ .zip). "
    "By default a rule baseline (the patient's own question, rewritten in the third person); "
    "with --method llm a language model shown similar examples (MeQSum by default)."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ehrqa.commands._llm_args import add_config_arguments
    from ehrqa.tasks.interpret import InterpretConfig

    add_prediction_arguments(parser)
    parser.add_argument("--method", choices=["rule", "llm"], default="rule", help="(default: rule)")
    add_backend_arguments(parser, default_model="the shipped SmolLM2-135M-Instruct")
    add_config_arguments(parser, InterpretConfig)


def run(args: argparse.Namespace) -> int:
    from ehrqa.commands._common import backend_spec_from_args
    from ehrqa.commands._llm_args import config_from_args, refuse_model_flags
    from ehrqa.tasks.interpret import InterpretConfig

    if args.method != "llm":
        refuse_model_flags(args, "the rule method calls no chat model")
    config = config_from_args(args, InterpretConfig, args.method)
    backend = backend_spec_from_args(args) if args.method == "llm" else None
    row = run_one_subtask(args, 1, config, backend)
    print(f"wrote {row['out']} ({len(row['predictions'])} questions)")
    return 0
