"""``ehrqa generate``: ST3 answers for a dataset, written as an official submission."""

from __future__ import annotations

import argparse

from ehrqa.commands._common import add_backend_arguments, add_prediction_arguments, run_one_subtask

HELP = "generate ST3 answers: extractive, a local model (+ LoRA adapter) or an OpenAI-compatible server"
DESCRIPTION = (
    "Answer every case (patient narrative + clinician question + numbered note sentences) in at most "
    "75 words and write submission.json (+ .zip). Finished cases are recorded in a run directory, so "
    "running the same command again after an interruption continues where it stopped. --method llm "
    "without --model uses the shipped SmolLM2-135M-Instruct."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ehrqa.commands._llm_args import add_config_arguments
    from ehrqa.tasks.generate import GenerateConfig

    add_prediction_arguments(parser)
    parser.add_argument(
        "--method",
        choices=["llm", "extractive"],
        help="extractive: the best note sentences, cited (default); llm: a chat model (the default when a "
        "model flag such as --backend, --model or --adapter is given)",
    )
    add_backend_arguments(parser, default_model="the adapter's base, else the shipped SmolLM2")
    add_config_arguments(parser, GenerateConfig)


def run(args: argparse.Namespace) -> int:
    from ehrqa.commands._common import backend_spec_from_args
    from ehrqa.commands._llm_args import config_from_args, refuse_model_flags, resolved_method
    from ehrqa.tasks.generate import GenerateConfig

    method = resolved_method(args, "extractive")
    if method != "llm":
        refuse_model_flags(args, "the extractive method calls no chat model")
    config = config_from_args(args, GenerateConfig, method)
    backend = backend_spec_from_args(args) if method == "llm" else None
    row = run_one_subtask(args, 3, config, backend)
    print(f"wrote {row['out']} ({len(row['predictions'])} answers; per-case records in {row['run_dir']})")
    return 0
