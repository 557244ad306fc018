"""``ehrqa tune``: the vote threshold (and which run, e.g. how many shots) by cross-validation."""

from __future__ import annotations

import argparse

HELP = "choose a vote threshold (and the best of several runs) by k-fold CV from the runs' recorded votes"
DESCRIPTION = (
    "Read the ST2 or ST4 records of one or more finished runs on annotated training cases (e.g. the same "
    "recipe with 0 and 3 shots), re-decide every case at each --thresholds value from its recorded vote "
    "counts (no model is called), and report the cross-validated micro-F1 of choosing the setting on the "
    "other folds, and the setting best on all cases."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runs", nargs="+", required=True, metavar="RUN_DIR")
    parser.add_argument("--subtask", type=int, choices=[2, 4], required=True)
    parser.add_argument("--step", help="the step name in the runs (default: the step each run submits for --subtask)")
    parser.add_argument("--thresholds", default="0.2,0.3,0.4,0.5,0.6,0.7,0.8", help="rules as ensemble --vote")
    parser.add_argument("--folds", type=int, default=5, help="k of k-fold cross-validation, 2 or more (default: 5)")


def run(args: argparse.Namespace) -> int:
    import json

    from ehrqa.data.archehr import read_dataset
    from ehrqa.errors import DataError
    from ehrqa.llm.vote import parse_rule
    from ehrqa.runs.ensemble import check_same_dataset, tune_threshold
    from ehrqa.runs.rundir import read_run

    if args.folds < 2:  # before any run is read
        raise DataError(f"folds={args.folds}: cross-validation needs at least 2 folds")
    check_same_dataset(args.runs)
    runs, data = {}, None
    for path in args.runs:
        run_read = read_run(path)
        step = run_read.steps.get(args.step) if args.step else run_read.submitted(args.subtask)
        if step is None:
            wanted = repr(args.step) if args.step else f"of ST{args.subtask}"
            raise DataError(f"{path}: no step {wanted} (steps: {', '.join(run_read.steps) or 'none'})")
        runs[path] = step.records
        data = data or run_read.meta.get("data_files")
    if not data or not data.get("key"):
        raise DataError(f"{args.runs[0]}: its dataset has no key (gold) to tune against")
    try:
        thresholds = [parse_rule(t).to_config() for t in args.thresholds.split(",") if t.strip()]
    except DataError as e:
        raise DataError(f"--thresholds: {e}") from None
    cases = read_dataset(None, xml=data["xml"], key=data["key"])
    print(json.dumps(tune_threshold(args.subtask, runs, cases, thresholds, args.folds), indent=2))
    return 0
