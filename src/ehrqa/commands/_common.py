"""Argument helpers shared by commands: datasets, case selection, chat backends, one-step runs."""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from ehrqa.errors import DataError


def add_data_arguments(parser: argparse.ArgumentParser, *, default_sample: bool = True) -> None:
    """``--data DIR`` or ``--xml FILE [--key FILE]``; the bundled sample when none is given."""
    g = parser.add_argument_group("dataset")
    hint = " (default: the bundled sample)" if default_sample else ""
    g.add_argument("--data", metavar="DIR", help=f"directory holding archehr-qa.xml [and archehr-qa_key.json]{hint}")
    g.add_argument("--xml", metavar="FILE", help="path to archehr-qa.xml")
    g.add_argument("--key", metavar="FILE", help="path to archehr-qa_key.json")


def load_cases(args: argparse.Namespace, *, require_xml: bool = True):
    from ehrqa.data.archehr import read_dataset

    return read_dataset(args.data, xml=args.xml, key=args.key, require_xml=require_xml)


def dataset_info(args: argparse.Namespace) -> dict:
    """Where the cases came from (paths and content hashes), for a run's ``run.json``."""
    from ehrqa.data.archehr import KEY_NAME, XML_NAME, sample_dir
    from ehrqa.runs.pipeline import file_sha256

    directory = Path(args.data) if args.data else (None if args.xml else sample_dir())
    xml = Path(args.xml) if args.xml else directory / XML_NAME
    key = Path(args.key) if args.key else (directory / KEY_NAME if directory else None)
    key = key if key is not None and key.exists() else None
    name = "sample" if not (args.data or args.xml or args.key) else (directory or xml.parent).resolve().name
    return {
        "name": name,
        "xml": str(xml.resolve()),
        "key": str(key.resolve()) if key else None,
        "xml_sha256": file_sha256(xml),
        "key_sha256": file_sha256(key),
    }


def add_cases_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cases", nargs="+", metavar="IDS", help="only these case ids, e.g. 21-30 45")


def selected_cases(args: argparse.Namespace):
    """The dataset's cases limited to ``--cases`` (all gold kept: the pipeline hides it)."""
    from ehrqa.data.select import parse_case_ids, select_cases

    return select_cases(load_cases(args), parse_case_ids(args.cases))


def parse_subtasks(text: str) -> list[int]:
    """``"1,2,3,4"`` -> ``[1, 2, 3, 4]``; anything else is a one-line error naming ``--subtasks``."""
    parts = [p for p in text.replace(" ", "").split(",") if p]
    if not parts or any(p not in ("1", "2", "3", "4") for p in parts):
        raise DataError(f"--subtasks takes a comma-separated list of 1, 2, 3, 4; got {text!r}")
    return sorted({int(p) for p in parts})


BACKEND_METAVARS = {
    "model": "ID_OR_DIR",
    "adapter": "DIR",
    "base_url": "URL",
    "api_key_env": "NAME",
    "reasoning_effort": "LEVEL",
    "reasoning_tokens": "N",
    "proxy": "URL",
}
# BackendSpec fields whose flags are written by hand: ``kind`` is --backend; --load-in-4bit is a plain
# switch (no --no- form); response_format and extra_body are not plain values (a bare
# --response-format means json_object; --extra-body is JSON). ``dtype`` has no flag.
HAND_WRITTEN = ("kind", "load_in_4bit", "response_format", "extra_body", "dtype")


def backend_help(default_model: str) -> dict[str, str]:
    """What each backend setting means on the command line ("hf:" and "openai:" name the backend that
    reads it); the flag adds the dataclass's default where the field has one."""
    from ehrqa.llm.backend import REASONING_TOKENS

    return {
        "model": f"hf: model id or directory (default: {default_model}); openai: the model name the server serves",
        "adapter": "hf: LoRA adapter directory (from ehrqa train generator)",
        "batch_size": "hf: prompts per generate() call",
        "base_url": "openai: server URL ending in /v1 (e.g. http://127.0.0.1:8000/v1)",
        "api_key_env": "openai: environment variable holding the API key",
        "timeout": "openai: seconds per request",
        "retries": "openai: retries per request",
        "concurrency": "openai: requests in flight at once",
        "token_limit": "openai: the token-limit parameter (default: max_completion_tokens for o1/o3/o4/gpt-5 "
        "names, else max_tokens)",
        "sampling": "openai: send temperature, top_p and seed (default: not for o1/o3/o4/gpt-5 names)",
        "reasoning_effort": "openai: reasoning_effort to send (e.g. low)",
        "reasoning_tokens": "openai: completion tokens for hidden reasoning, added to the limit (default: "
        f"{REASONING_TOKENS} for o1/o3/o4/gpt-5 names, else 0)",
        "thinking": "chat-template thinking (enable_thinking) on or off (default: off for hf and for names "
        "containing qwen3, otherwise not sent)",
        "proxy": "openai: send requests through this proxy, even to a local server; 'none': never (default: "
        "the environment's HTTP(S)_PROXY, never for loopback or private addresses)",
    }


def add_backend_arguments(parser: argparse.ArgumentParser, *, default_model: str) -> None:
    """The chat-model arguments shared by commands that call a language model: one per setting of
    :class:`~ehrqa.llm.backend.BackendSpec`, built from the dataclass but those in :data:`HAND_WRITTEN`."""
    from ehrqa.commands._flags import add_config_flags
    from ehrqa.llm.backend import BACKEND_KINDS, RESPONSE_FORMATS, TOKEN_LIMITS, BackendSpec

    m = parser.add_argument_group("model")
    m.add_argument(
        "--backend",
        choices=BACKEND_KINDS,
        default=None,
        help="local transformers (default: hf) or an OpenAI-compatible HTTP server",
    )
    add_config_flags(
        m,
        BackendSpec,
        skip=HAND_WRITTEN,
        help=backend_help(default_model),
        metavar=BACKEND_METAVARS,
        choices={"token_limit": TOKEN_LIMITS},
    )
    m.add_argument("--load-in-4bit", action="store_true", default=None, help="hf: load the base model in 4-bit NF4")
    m.add_argument(
        "--response-format",
        nargs="?",
        const="json_object",
        choices=RESPONSE_FORMATS,
        help="openai: how JSON replies are constrained: json_schema (vLLM, SGLang, llama-server, OpenAI), "
        "json_object+schema (llama-cpp-python's server), json_object, none (default; alone: json_object)",
    )
    m.add_argument(
        "--extra-body",
        type=_json_object,
        metavar="JSON",
        help="openai: a JSON object merged into every request body, e.g. '{\"top_k\": 20}'",
    )


def _json_object(text: str) -> dict:
    import json

    try:
        value = json.loads(text)
    except ValueError:
        raise argparse.ArgumentTypeError("not valid JSON") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("expected a JSON object ({...})")
    return value


OPENAI_ONLY = (
    "base_url",
    "api_key_env",
    "concurrency",
    "timeout",
    "retries",
    "response_format",
    "token_limit",
    "sampling",
    "reasoning_effort",
    "reasoning_tokens",
    "extra_body",
    "proxy",
)
HF_ONLY = ("adapter", "load_in_4bit", "batch_size")
BOTH = ("thinking",)  # backend settings for either kind


def backend_spec_from_args(args: argparse.Namespace, base=None):
    """A :class:`BackendSpec` from the flags (over ``base``); flags for the other backend are refused."""
    from dataclasses import replace

    from ehrqa.llm.backend import BackendSpec

    kind = args.backend or (base.kind if base else "hf")
    other = OPENAI_ONLY if kind == "hf" else HF_ONLY
    given = [name for name in other if getattr(args, name, None) is not None]
    if given:
        flag = "--" + given[0].replace("_", "-")
        needs = "--backend openai" if kind == "hf" else "--backend hf"
        raise DataError(f"{flag} is only used with {needs}")
    model = getattr(args, "model", None)  # a flag left out is absent (ehrqa.commands._flags)
    if kind == "hf" and model is not None:
        check_local_model(model)
    fields = ("model", *HF_ONLY, *OPENAI_ONLY, *BOTH)
    changes = {name: getattr(args, name) for name in fields if getattr(args, name, None) is not None}
    spec = replace(base or BackendSpec(), kind=kind, **changes)
    if model is None and base is not None and base.kind != kind:
        spec = replace(spec, model=None)
    spec.check()
    return spec


def check_local_model(model: str) -> None:
    """Refuse ``--model`` naming a local path that is not there, before anything heavy is loaded.

    A Hub id (``name`` or ``org/name``) or a shipped name (``smollm2``) passes; anything written as
    a path (absolute, ``./``, ``~``, or with more than one ``/``) must be a model directory."""
    looks_like_path = model.startswith((".", "~", os.sep)) or model.count("/") > 1
    path = Path(model).expanduser()
    if not (looks_like_path or path.exists()):
        return
    if not path.is_dir():
        raise DataError(f"--model {model}: no such model directory")
    if not any((path / name).is_file() for name in ("config.json", "adapter_config.json")):
        raise DataError(f"--model {model}: not a model directory (no config.json)")


def check_output_file(path: Path, flag: str = "--out") -> None:
    """Refuse an output file that could not be written, before any work is done: a directory,
    a path below a file, or a folder the user may not write to."""
    if path.is_dir():
        raise DataError(f"{flag} {path}: is a directory; give a file name such as {path / 'submission.json'}")
    existing = next(p for p in (path.parent, *path.parent.parents) if p.exists())
    if not existing.is_dir():
        raise DataError(f"{flag} {path}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise DataError(f"{flag} {path}: cannot write in {existing} (permission denied)")


def add_prediction_arguments(parser: argparse.ArgumentParser) -> None:
    """Dataset flags plus ``--out FILE``, ``--cases IDS`` and ``--run-dir`` for one-subtask commands."""
    add_data_arguments(parser)
    parser.add_argument("--out", required=True, metavar="FILE", help="submission.json to write (a .zip is written too)")
    add_cases_argument(parser)
    parser.add_argument(
        "--run-dir", metavar="DIR", help="per-case records for resuming (default: OUT with .run for its suffix)"
    )
    parser.add_argument("--force", action="store_true", help="start the run directory over if its settings changed")
    parser.add_argument("--seed", type=int, default=0, help="run seed; each sample's seed derives from it (default: 0)")


def run_one_subtask(args: argparse.Namespace, subtask: int, config, backend=None) -> dict:
    """A one-step run (the same pipeline as ``ehrqa run``) whose submission is also written to ``--out``."""
    from ehrqa.data.submission import read_submission, write_submission
    from ehrqa.runs.config import RunRecipe, StepSpec
    from ehrqa.runs.layout import RunLayout
    from ehrqa.runs.pipeline import run

    out = Path(args.out)
    check_output_file(out)
    cases = selected_cases(args)
    recipe = RunRecipe(
        name=f"st{subtask}",
        seed=args.seed,
        backends={"default": backend} if backend is not None else {},
        steps=(StepSpec(subtask, f"st{subtask}", config),),
    )
    run_dir = Path(args.run_dir) if args.run_dir else RunLayout.for_output(out).path
    with removed_if_left_empty(run_dir):
        rows = run(recipe, cases, run_dir, data=dataset_info(args), force=args.force)
        row = rows[0]
        if row["status"] == "failed":
            raise DataError(failure_line(row, run_dir))
        if row["status"] != "ok":
            raise DataError(f"ST{subtask}: {row['status']}; records in {run_dir}")
    if row.get("fallbacks"):  # said next to the result, not in a warning that scrolls away
        shown = ", ".join(row["fallback_cases"][:8]) + (" ..." if row["fallbacks"] > 8 else "")
        print(f"ST{subtask}: {row['fallbacks']} case(s) got no usable reply and fell back: {shown}")
    entries = read_submission(row["submission"])  # the run's own submission, for exactly these cases
    path = write_submission(entries, out)
    row["out"] = str(path)
    row["predictions"] = {e["case_id"]: e["prediction"] for e in entries}
    row["run_dir"] = str(run_dir)
    return row


@contextlib.contextmanager
def removed_if_left_empty(run_dir: str | Path) -> Iterator[None]:
    """Run a command that makes ``run_dir``; if it fails before recording anything (no step records,
    submissions or model replies), remove the directory and the folders made for it. A directory that
    existed before, or one holding results to resume from, is kept."""
    run_dir = Path(run_dir).absolute()
    made = [p for p in (run_dir, *run_dir.parents) if not p.exists()]  # innermost first
    try:
        yield
    except BaseException:
        if made and not _holds_results(run_dir):
            shutil.rmtree(run_dir, ignore_errors=True)
            for folder in made[1:]:
                try:
                    folder.rmdir()  # only while empty
                except OSError:
                    break
        raise


def _holds_results(run_dir: Path) -> bool:
    """Whether a run directory holds anything a rerun would use: a finished case's record, a
    submission, a model reply (records of failed cases alone are redone anyway)."""
    from ehrqa.io import read_jsonl
    from ehrqa.runs.layout import RunLayout

    layout = RunLayout(run_dir)
    steps = layout.step_names()
    files = [layout.reply_cache, *(layout.submission(s) for s in steps), *(layout.official(n) for n in (1, 2, 3, 4))]
    if any(f.is_file() and f.stat().st_size > 0 for f in files):
        return True
    return any(r.get("status") != "failed" for s in steps for r in read_jsonl(layout.records(s)))


def failure_line(row: dict, run_dir: str | Path) -> str:
    """One line for a step whose cases failed: which cases, why (statuses, never text), what to do."""
    failed = row["failed"]
    shown = ", ".join(failed[:8]) + (f" and {len(failed) - 8} more" if len(failed) > 8 else "")
    why = f" ({'; '.join(row['reasons'])})" if row.get("reasons") else ""
    return (
        f"ST{row['subtask']} ({row['step']}): {len(failed)} case(s) failed: {shown}{why}; "
        f"the others are kept in {run_dir}; run the same command again to retry only these"
    )
