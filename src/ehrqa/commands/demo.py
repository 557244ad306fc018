"""``ehrqa demo``: the main job on the bundled sample (or your data)."""

from __future__ import annotations

import argparse

from ehrqa.commands._common import add_data_arguments, load_cases

HELP = "run every subtask on a dataset (default: the bundled sample), write submissions, score them"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_data_arguments(parser)
    parser.add_argument("--out", default="demo-out", metavar="DIR", help="output directory (default: demo-out)")
    parser.add_argument(
        "--subtasks", default="1,2,3,4", metavar="LIST", help="comma-separated subtasks to run (default: 1,2,3,4)"
    )


def run(args: argparse.Namespace) -> int:
    from ehrqa.commands.validate import summarise
    from ehrqa.demo import format_summary, run_demo

    subtasks = [int(s) for s in args.subtasks.replace(" ", "").split(",") if s]
    if any(n not in (1, 2, 3, 4) for n in subtasks):
        raise SystemExit(f"ehrqa demo: --subtasks takes 1-4, got {args.subtasks!r}")
    sample = not (args.data or args.xml or args.key)
    cases = load_cases(args)
    print("ehrqa demo on " + ("the bundled sample (invented cases, no patient data)" if sample else "your dataset"))
    print("  " + summarise(cases))
    rows = run_demo(cases, args.out, subtasks)
    print(format_summary(rows))
    if sample and any(row["subtask"] in (2, 4) and row["status"] == "ok" for row in rows):
        print(
            "note: the shipped aligner (ST2/ST4) was tuned on this sample, so those numbers are in-sample; "
            "its cross-validated ones are in src/ehrqa/models/aligner-default/aligner.json"
        )
    print(f"summary: {args.out}/summary.json")
    return 0
