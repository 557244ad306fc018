"""``ehrqa demo``: ``ehrqa run`` with the shipped default recipe, on the bundled sample (or your data)."""

from __future__ import annotations

import argparse

from ehrqa.commands._common import add_data_arguments, dataset_info, load_cases, parse_subtasks

HELP = "run every subtask on a dataset (default: the bundled sample) with the default recipe, and score it"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_data_arguments(parser)
    parser.add_argument("--out", default="demo-out", metavar="DIR", help="run directory (default: demo-out)")
    parser.add_argument(
        "--subtasks", default="1,2,3,4", metavar="LIST", help="comma-separated subtasks to run (default: 1,2,3,4)"
    )
    parser.add_argument("--recipe", default="default", metavar="FILE", help="run recipe (default: default)")
    parser.add_argument("--force", action="store_true", help="start the run directory over when its settings differ")


def run(args: argparse.Namespace) -> int:
    from ehrqa.commands.run import format_summary, write_page
    from ehrqa.commands.validate import summarise
    from ehrqa.runs.config import load_recipe
    from ehrqa.runs.layout import RunLayout
    from ehrqa.runs.pipeline import run as run_pipeline

    subtasks = parse_subtasks(args.subtasks)
    recipe = load_recipe(args.recipe)
    sample = not (args.data or args.xml or args.key)
    cases = load_cases(args)
    print("ehrqa demo on " + ("the bundled sample (invented cases, no patient data)" if sample else "your dataset"))
    print("  " + summarise(cases))
    rows = run_pipeline(recipe, cases, args.out, data=dataset_info(args), subtasks=subtasks, force=args.force)
    print(format_summary(rows))
    if sample and any(row["subtask"] in (2, 3, 4) and row["status"] == "ok" for row in rows):
        print(
            "note: the shipped aligner (ST2, ST4 and the ST3 extractive ranking) was trained on this sample among "
            "other sources, so those numbers are in-sample; held-out ones: src/ehrqa/models/aligner-default/README.md"
        )
    print(f"run directory: {args.out} (summary: {RunLayout(args.out).summary})")
    print("\n".join(write_page(args.out)))
    return 1 if any(row["status"] == "failed" for row in rows) else 0
