"""``ehrqa ensemble``: one submission voted from several runs or submissions."""

from __future__ import annotations

import argparse

HELP = "combine several runs or submissions: vote over ST2/ST4 ids, the medoid text for ST1/ST3"
DESCRIPTION = (
    "Read the same subtask's submission from each run directory (RUN/subtaskN/submission.json) or submission "
    "file and write one: ST2/ST4 keep what --vote allows (majority, union, intersection, a fraction F of the "
    "systems, or a count K); ST1/ST3 keep the most central text (--select medoid)."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--subtask", type=int, choices=[1, 2, 3, 4], required=True)
    parser.add_argument("--runs", nargs="+", required=True, metavar="RUN_OR_FILE", help="two or more systems")
    parser.add_argument(
        "--vote",
        default="majority",
        metavar="RULE",
        help="ST2/ST4: majority (default), union, intersection, a fraction F or a count K",
    )
    parser.add_argument("--select", default="medoid", choices=["medoid"], help="ST1/ST3: how one text is chosen")
    parser.add_argument("--out", required=True, metavar="FILE", help="submission.json to write (+ .zip)")


def run(args: argparse.Namespace) -> int:
    from ehrqa.data.submission import write_submission
    from ehrqa.errors import DataError
    from ehrqa.runs.ensemble import check_same_dataset, combine, read_system
    from ehrqa.text import plural

    if len(args.runs) < 2:
        raise DataError("--runs: give at least two runs or submissions to combine")
    check_same_dataset(args.runs)
    systems = [read_system(path, args.subtask) for path in args.runs]
    combined = combine(args.subtask, systems, args.vote if args.subtask in (2, 4) else args.select)
    path = write_submission(combined, args.out)
    print(f"ST{args.subtask}: {plural(len(combined), 'case')} from {len(systems)} systems -> {path}")
    return 0
