"""``ehrqa batch export|import``: a run's model requests as an OpenAI batch file, and the replies back."""

from __future__ import annotations

import argparse

HELP = "write a run's model requests as a batch file (vllm run-batch, batch APIs) and import the replies"
DESCRIPTION = (
    "Batch files instead of live model calls. 'export' writes every request that `ehrqa run` with the same "
    "recipe, data and --set flags still needs (one line each, in the OpenAI batch input format; custom_id is "
    "the reply-cache key); 'import' puts a batch output file's replies into RUN_DIR's reply cache, so that "
    "`ehrqa run ... --out RUN_DIR` then takes them from the cache. A step that reads an earlier step's output "
    "(evidence: st2) gets its requests in the next export, after the earlier step's replies are imported. "
    "See docs/batch.md."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ehrqa.commands._common import add_cases_argument, add_data_arguments

    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    export = sub.add_parser(
        "export",
        help="write the requests a run still needs to a batch input file",
        description="Write the model requests that `ehrqa run` with these flags and --out RUN_DIR still needs "
        "(those its reply cache cannot answer) as OpenAI batch input lines. RUN_DIR is not changed.",
    )
    export.add_argument("run_dir", metavar="RUN_DIR", help="the run directory (need not exist yet)")
    export.add_argument("--out", required=True, metavar="FILE", help="the batch input file to write (JSONL)")
    export.add_argument(
        "--recipe", required=True, metavar="FILE", help="the run recipe (as for ehrqa run), one with an openai backend"
    )
    add_data_arguments(export)
    add_cases_argument(export)
    export.add_argument("--subtasks", metavar="LIST", help="as for ehrqa run: only these subtasks' steps")
    export.add_argument(
        "--set", action="append", default=[], metavar="STEP.KEY=VALUE", help="as for ehrqa run; repeatable"
    )
    export.set_defaults(_run=run_export)
    imports = sub.add_parser(
        "import",
        help="put a batch output file's replies into a run's reply cache",
        description="Store every successful reply of a batch output file (vllm run-batch -o, a provider's "
        "batch results) in RUN_DIR's reply cache under its custom_id. Failed lines are counted, not stored "
        "(exit status 2), and the next export asks for them again.",
    )
    imports.add_argument("run_dir", metavar="RUN_DIR", help="the run directory")
    imports.add_argument("results", metavar="RESULTS", help="the batch output file (JSONL)")
    imports.set_defaults(_run=run_import)


def run(args: argparse.Namespace) -> int:  # never called: each action sets its own run (the action is required)
    raise NotImplementedError


def run_export(args: argparse.Namespace) -> int:
    from ehrqa.commands._common import dataset_info, parse_subtasks, selected_cases
    from ehrqa.commands.run import apply_overrides
    from ehrqa.config import load_yaml
    from ehrqa.runs.batch import export_requests, write_requests
    from ehrqa.runs.config import find_recipe, parse_recipe

    path = find_recipe(args.recipe)
    recipe = parse_recipe(apply_overrides(load_yaml(path, "run recipe"), args.set), str(path))
    subtasks = parse_subtasks(args.subtasks) if args.subtasks is not None else None
    export = export_requests(recipe, selected_cases(args), args.run_dir, data=dataset_info(args), subtasks=subtasks)
    write_requests(export.lines, args.out)
    shown = ", ".join(f"{prompt} {n}" for prompt, n in sorted(export.prompts.items()))
    print(f"{args.out}: {len(export.lines)} requests" + (f" ({shown})" if shown else ""))
    for row in export.rows:
        status = row.get("status", "")
        if status == "ok":
            state = "finished from the reply cache" if row.get("method") == "llm" else "needs no model"
        elif status.startswith("skipped"):
            state = f"{status}: import its replies, then export again"
        elif status == "failed":
            state = f"{len(row.get('failed', []))} case(s) wait for replies"
        else:
            state = status
        print(f"  step {row['step']}: {state}")
    if not export.lines:
        print(f"nothing to send: ehrqa run with the same flags and --out {args.run_dir} needs no model call")
    return 0


def run_import(args: argparse.Namespace) -> int:
    from ehrqa.errors import DataError
    from ehrqa.runs.batch import import_results

    done = import_results(args.run_dir, args.results)
    print(f"{args.run_dir}: {done.stored} replies stored, {done.known} already in the reply cache")
    if done.failed:
        reasons = sorted({reason for _, reason in done.failed})
        raise DataError(
            f"{args.results}: {len(done.failed)} line(s) carry no reply ({'; '.join(reasons[:5])}); "
            "the next batch export asks for them again"
        )
    return 0
