"""``ehrqa identify``: evidence identification (ST2) -> submission.json (+ .zip)."""

from __future__ import annotations

import argparse

from ehrqa.commands._common import add_data_arguments, load_cases, parse_case_ids

HELP = "evidence identification (ST2): pick the note sentences essential to the question"
DESCRIPTION = (
    "Score every note sentence against the clinician question with the aligner model's ST2 ensemble and "
    "write the ST2 submission. Reads the XML only: relevance labels of the cases are never used."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_data_arguments(parser)
    parser.add_argument("--out", required=True, metavar="FILE", help="submission.json to write (a .zip is written too)")
    parser.add_argument("--model", metavar="DIR", help="aligner model directory (default: the shipped model)")
    parser.add_argument("--cases", nargs="+", metavar="IDS", help="only these case ids, e.g. 21-30 45")


def run(args: argparse.Namespace) -> int:
    from ehrqa.data.submission import build_submission, write_submission
    from ehrqa.tasks.identify import predict

    cases = [c.without_gold() for c in load_cases(args)]
    wanted = parse_case_ids(args.cases)
    if wanted is not None:
        cases = [c for c in cases if c.id in set(wanted)]
    predictions = predict(cases, model=args.model)
    path = write_submission(build_submission(2, predictions, cases), args.out)
    n_ids = sum(len(v) for v in predictions.values())
    print(f"ST2: {n_ids} evidence sentences for {len(cases)} cases -> {path}")
    return 0
