"""``ehrqa align``: evidence alignment (ST4) -> submission.json (+ .zip)."""

from __future__ import annotations

import argparse

from ehrqa.commands._common import add_data_arguments, load_cases, parse_case_ids

HELP = "evidence alignment (ST4): link each answer sentence to the note sentences that support it"
DESCRIPTION = (
    "Read cases whose key gives clinician_answer_sentences (citations, if any, are ignored), score every "
    "(answer sentence, note sentence) pair with the aligner model's ST4 ensemble and write the ST4 submission."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_data_arguments(parser)
    parser.add_argument("--out", required=True, metavar="FILE", help="submission.json to write (a .zip is written too)")
    parser.add_argument("--model", metavar="DIR", help="aligner model directory (default: the shipped model)")
    parser.add_argument("--cases", nargs="+", metavar="IDS", help="only these case ids, e.g. 21-30 45")


def run(args: argparse.Namespace) -> int:
    from ehrqa.data.submission import build_submission, write_submission
    from ehrqa.errors import DataError
    from ehrqa.tasks.align import predict

    cases = [c.without_gold() for c in load_cases(args)]
    wanted = parse_case_ids(args.cases)
    if wanted is not None:
        cases = [c for c in cases if c.id in set(wanted)]
    missing = [c.id for c in cases if not c.answer_sentences]
    if missing:
        shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise DataError(f"ST4 needs clinician_answer_sentences in the key; missing for case(s) {shown}")
    predictions = predict(cases, model=args.model)
    path = write_submission(build_submission(4, predictions, cases), args.out)
    n_links = sum(len(a["evidence_id"]) for v in predictions.values() for a in v)
    print(f"ST4: {n_links} links for {len(cases)} cases -> {path}")
    return 0
