"""``ehrqa align``: evidence alignment (ST4) -> submission.json (+ .zip)."""

from __future__ import annotations

import argparse

from ehrqa.commands._common import add_prediction_arguments, load_inputs

HELP = "evidence alignment (ST4): link each answer sentence to the note sentences that support it"
DESCRIPTION = (
    "Read cases whose key gives clinician_answer_sentences (citations, if any, are ignored), score every "
    "(answer sentence, note sentence) pair with the aligner model's ST4 ensemble and write the ST4 submission."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_prediction_arguments(parser)
    parser.add_argument("--model", metavar="DIR", help="aligner model directory (default: the shipped model)")


def run(args: argparse.Namespace) -> int:
    from ehrqa.data.submission import build_submission, write_submission
    from ehrqa.errors import DataError
    from ehrqa.tasks.align import predict

    cases = load_inputs(args)
    missing = [c.id for c in cases if not c.answer_sentences]
    if missing:
        shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise DataError(f"ST4 needs clinician_answer_sentences in the key; missing for case(s) {shown}")
    predictions = predict(cases, model=args.model)
    path = write_submission(build_submission(4, predictions, cases), args.out)
    n_links = sum(len(a["evidence_id"]) for v in predictions.values() for a in v)
    print(f"ST4: {n_links} links for {len(cases)} cases -> {path}")
    return 0
