"""``ehrqa identify``: evidence identification (ST2) -> submission.json (+ .zip)."""

from __future__ import annotations

import argparse

from ehrqa.commands._common import add_prediction_arguments, load_inputs

HELP = "evidence identification (ST2): pick the note sentences essential to the question"
DESCRIPTION = (
    "Score every note sentence against the clinician question with the aligner model's ST2 ensemble and "
    "write the ST2 submission. Reads the XML only: relevance labels of the cases are never used."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_prediction_arguments(parser)
    parser.add_argument("--model", metavar="DIR", help="aligner model directory (default: the shipped model)")


def run(args: argparse.Namespace) -> int:
    from ehrqa.data.submission import build_submission, write_submission
    from ehrqa.tasks.identify import predict

    cases = load_inputs(args)
    predictions = predict(cases, model=args.model)
    path = write_submission(build_submission(2, predictions, cases), args.out)
    n_ids = sum(len(v) for v in predictions.values())
    print(f"ST2: {n_ids} evidence sentences for {len(cases)} cases -> {path}")
    return 0
