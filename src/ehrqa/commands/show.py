"""``ehrqa show``: a readable view of one case, with its gold when the key is present."""

from __future__ import annotations

import argparse

from ehrqa.commands._common import add_data_arguments, load_cases

HELP = "print a readable view of a case (narrative, question, numbered note, gold)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_data_arguments(parser)
    parser.add_argument("case_id", nargs="?", help="case id (default: list the cases)")
    parser.add_argument("--no-gold", action="store_true", help="hide relevance labels, answer and citations")


def run(args: argparse.Namespace) -> int:
    from ehrqa.view.text import format_case, format_case_list

    cases = load_cases(args)
    if args.case_id is None:
        print(format_case_list(cases))
        return 0
    by_id = {c.id: c for c in cases}
    if args.case_id not in by_id:
        from ehrqa.errors import DataError

        shown = ", ".join(list(by_id)[:10]) + (" ..." if len(by_id) > 10 else "")
        raise DataError(f"no case {args.case_id!r} in the dataset (cases: {shown})")
    print(format_case(by_id[args.case_id], gold=not args.no_gold))
    return 0
