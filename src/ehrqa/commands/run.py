"""``ehrqa run``: a run recipe over a dataset, into a resumable run directory."""

from __future__ import annotations

import argparse

from ehrqa.commands._common import (
    add_cases_argument,
    add_data_arguments,
    dataset_info,
    parse_subtasks,
    removed_if_left_empty,
    selected_cases,
)

HELP = "run a recipe (every subtask it lists) into a resumable run directory; score what the data's gold allows"
DESCRIPTION = (
    "Execute a run recipe (recipes/runs/*.yaml, or a shipped name such as 'default') on a dataset. Every step "
    "records each finished case in OUT/steps/<step>/records.jsonl; running the same command again continues "
    "where it stopped and calls no model twice. A directory made with another recipe, prompt or dataset is "
    "refused unless --force. Writes OUT/subtaskN/submission.json (+ .zip), OUT/scores/ and OUT/summary.json. "
    "Cases whose model calls failed are named in one error line (exit status 2); the others are kept, and "
    "running the command again retries only the failed ones."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--recipe",
        default="default",
        metavar="FILE",
        help="run recipe file, or a shipped one by name (default: default)",
    )
    add_data_arguments(parser)
    add_cases_argument(parser)
    parser.add_argument("--out", required=True, metavar="RUN_DIR", help="the run directory")
    parser.add_argument("--subtasks", metavar="LIST", help="only these subtasks' steps, e.g. 2,4 (default: all)")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="STEP.KEY=VALUE",
        help="override one setting: --set st3.temperature=0.7, --set backends.NAME.model=M, --set seed=3 (YAML)",
    )
    parser.add_argument("--force", action="store_true", help="start OUT over when its settings differ")


def apply_overrides(data: dict, settings: list[str]) -> dict:
    """``--set st3.samples=5`` / ``--set seed=1`` applied to a recipe's plain data."""
    import yaml

    from ehrqa.errors import DataError

    for setting in settings:
        path, eq, text = setting.partition("=")
        if not eq or not path:
            raise DataError(f"--set {setting!r}: expected STEP.KEY=VALUE or KEY=VALUE")
        value = yaml.safe_load(text)
        first, _, rest = path.partition(".")
        if not rest:
            data[path] = value
        elif first == "backends":
            name, dot, key = rest.partition(".")
            if not dot or name not in (data.get("backends") or {}):
                raise DataError(f"--set {setting!r}: expected backends.NAME.KEY with a backend of the recipe")
            data["backends"][name][key] = value
        else:
            steps = [s for s in data.get("steps", []) if str(s.get("name") or f"st{s.get('subtask')}") == first]
            if not steps:
                raise DataError(f"--set {setting!r}: the recipe has no step named {first!r}")
            steps[0][rest] = value
    return data


def recipe_with_settings(path, settings: list[str]):
    """The recipe at ``path`` with ``--set`` applied. A problem of the file itself names the file; one
    that only the ``--set`` values cause names ``--set``, never the (shipped) file."""
    from ehrqa.config import load_yaml
    from ehrqa.errors import DataError
    from ehrqa.runs.config import parse_recipe

    recipe = parse_recipe(load_yaml(path, "run recipe"), str(path))
    if not settings:
        return recipe
    try:
        return parse_recipe(apply_overrides(load_yaml(path, "run recipe"), settings), str(path))
    except DataError as e:
        message = str(e).removeprefix(f"{path}: ")
        if message.startswith("--set "):
            raise
        raise DataError(f"--set {' '.join(settings)}: {message}") from None


def run(args: argparse.Namespace) -> int:
    from ehrqa.runs.config import find_recipe
    from ehrqa.runs.pipeline import format_summary, write_page
    from ehrqa.runs.pipeline import run as run_pipeline

    path = find_recipe(args.recipe)
    recipe = recipe_with_settings(path, args.set)
    subtasks = parse_subtasks(args.subtasks) if args.subtasks is not None else None  # "" is refused
    cases = selected_cases(args)
    with removed_if_left_empty(args.out):
        rows = run_pipeline(recipe, cases, args.out, data=dataset_info(args), subtasks=subtasks, force=args.force)
    print(format_summary(rows))
    print(f"run directory: {args.out}")
    print("\n".join(write_page(args.out)))
    failed = [row for row in rows if row["status"] == "failed"]
    if failed:  # the summary above has the details; one error line names the cases, exit 2
        from ehrqa.commands._common import failure_line
        from ehrqa.errors import DataError

        raise DataError(" ".join(failure_line(row, args.out) for row in failed))
    return 0
