"""``ehrqa interpret``: ST1 clinician-style questions for a dataset, as an official submission."""

from __future__ import annotations

import argparse

from ehrqa.commands._common import add_backend_arguments, add_prediction_arguments, backend_from_args, load_inputs

HELP = "rewrite patient narratives as clinician-style questions (ST1)"
DESCRIPTION = (
    "Write a <= 15-word clinician-style question for every case and save submission.json (+ .zip). "
    "By default a rule baseline (the patient's own question, rewritten in the third person); "
    "with --llm a language model shown similar MeQSum examples."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_prediction_arguments(parser)
    parser.add_argument("--llm", action="store_true", help="use a language model instead of the rule baseline")
    parser.add_argument("--examples", type=int, default=3, help="--llm: MeQSum examples per prompt (default: 3)")
    add_backend_arguments(parser, default_model="the shipped SmolLM2-135M-Instruct")


def run(args: argparse.Namespace) -> int:
    from ehrqa.data.submission import build_submission, write_submission
    from ehrqa.tasks.interpret import predict

    cases = load_inputs(args)
    if args.llm:
        backend = backend_from_args(args)
        try:
            questions = predict(cases, backend=backend, k_examples=args.examples)
        finally:
            backend.close()
    else:
        questions = predict(cases)
    path = write_submission(build_submission(1, questions, cases), args.out)
    print(f"wrote {path} ({len(questions)} questions)")
    return 0
