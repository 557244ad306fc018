"""``ehrqa run``: a run recipe over a dataset, into a resumable run directory."""

from __future__ import annotations

import argparse
from pathlib import Path

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
    "refused unless --force. Writes each step's submission and scores to OUT/steps/<step>/, the official "
    "OUT/subtaskN/submission.json (+ .zip; a copy of the step submitted for N) and OUT/summary.json. "
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


# ---------------------------------------------------------------- what a run prints

# Keys shown in the summary, in order, when the scorer reports them.
HEADLINE_KEYS = {
    1: ["rougeLsum", "bertscore", "bertscore_proxy", "alignscore", "medcon", "medcon_proxy", "overall_score"],
    2: ["strict_micro_f1", "lenient_micro_f1", "strict_macro_f1"],
    3: ["bleu", "rougeLsum", "sari", "bertscore", "bertscore_proxy", "alignscore", "medcon", "medcon_proxy"],
    4: ["micro_precision", "micro_recall", "micro_f1", "macro_f1"],
}


def format_summary(rows: list[dict]) -> str:
    """The end-of-run table (subtask, method, seconds, model calls and tokens, headline metrics or
    what went wrong), aligned in columns, then the submission each finished step wrote."""
    table = [("subtask", "method", "seconds", "model calls", "tokens in/out", "headline metrics")]
    written = []
    for row in rows:
        named = f" ({row['step']})" if row.get("step") and row["step"] != f"st{row['subtask']}" else ""
        label = f"ST{row['subtask']} {row['title']}{named}"
        ran = "seconds" in row
        seconds = f"{row['seconds']:.1f}" if ran else "-"
        calls = str(int(row.get("calls") or 0)) if ran else "-"
        tokens = f"{int(row.get('prompt_tokens') or 0)}/{int(row.get('completion_tokens') or 0)}" if ran else "-"
        method = str(row.get("method", "")) + (" + aligner citations" if row.get("citations_by_aligner") else "")
        table.append((label, method, seconds, calls, tokens, _outcome(row)))
        if row.get("submission"):
            written.append(f"ST{row['subtask']}{named} submission: {row['submission']}")
    widths = [max(len(r[i]) for r in table) for i in range(5)]
    lines = []
    for r in table:
        cells = [r[0].ljust(widths[0]), r[1].ljust(widths[1]), *(r[i].rjust(widths[i]) for i in (2, 3, 4)), r[5]]
        lines.append("  ".join(cells).rstrip())
        if len(lines) == 1:
            lines.append("  ".join("-" * w for w in [*widths, len("headline metrics")]))
    return "\n".join(lines + written)


def _outcome(row: dict) -> str:
    """A summary row's last column: its headline scores, or its status."""
    if row["status"] == "failed":
        shown = ", ".join(row["failed"][:8]) + (" ..." if len(row["failed"]) > 8 else "")
        why = f" ({'; '.join(row['reasons'])})" if row.get("reasons") else ""
        return f"FAILED for {len(row['failed'])} case(s): {shown}{why}; rerun to retry them"
    if row["status"] != "ok":
        return str(row["status"])
    fallbacks = (
        f"  ({row['fallbacks']} fallback(s): {', '.join(row['fallback_cases'][:8])})" if row.get("fallbacks") else ""
    )
    scores = row.get("scores")
    if scores is None:
        return "not scored (no gold)" + fallbacks
    keys = [k for k in HEADLINE_KEYS[row["subtask"]] if isinstance(scores.get(k), (int, float))]
    if isinstance(scores.get("overall_partial"), (int, float)):
        keys.append("overall_partial")
    return "  ".join(f"{k} {scores[k]:.2f}" for k in keys) + fallbacks


def write_page(run_dir: str | Path) -> list[str]:
    """Write the run's viewer page (``ehrqa view``; plots only where matplotlib is installed) and
    return the lines to print: that it holds note text, and its path (last). A page that cannot be
    written is a warning line; the run itself stands."""
    from ehrqa.errors import DataError
    from ehrqa.text import plural
    from ehrqa.view.html import write_view

    try:
        result = write_view(run_dir)
    except (DataError, OSError) as e:
        return [f"viewer page not written: {e}"]
    return [
        "the viewer page contains clinical note text (PHI); keep it where the data may be kept",
        f"viewer page: {result.path} ({plural(result.n_cases, 'case')}, {result.n_bytes / 1024:.0f} KiB, "
        f"{plural(len(result.plots), 'plot')}, {result.seconds:.1f} s)",
    ]
