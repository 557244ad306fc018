"""``ehrqa score``: score a submission with the official ArchEHR-QA 2026 rules."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from ehrqa.commands._common import add_data_arguments, load_cases
from ehrqa.data.select import parse_case_ids
from ehrqa.errors import DataError
from ehrqa.io import atomic_write_text

HELP = "score a submission exactly as the official scorer does (JSON on stdout)"
DESCRIPTION = (
    "Score a submission against the gold key with the official rules and print a JSON object with the "
    "official keys on the 0-100 scale and a signature. ST2/ST4 need only the key; ST1/ST3 also need the XML. "
    "BERTScore, AlignScore and MEDCON use the official resources you pass; otherwise labelled stand-ins "
    "(bertscore_proxy, medcon_proxy) are reported and the overall score is overall_partial."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--subtask", type=int, choices=[1, 2, 3, 4], required=True)
    parser.add_argument("--submission", metavar="FILE", required=True, help="submission.json or submission.zip")
    add_data_arguments(parser, default_sample=True)
    parser.add_argument(
        "--case-ids", nargs="+", metavar="IDS", help="score only these cases: official range syntax, e.g. 1-3 5 7-9"
    )
    parser.add_argument(
        "--metrics",
        metavar="LIST",
        help="ST1/ST3 metrics, comma-separated from bleu,rouge,sari,bertscore,alignscore,medcon",
    )
    parser.add_argument("--out", metavar="FILE", help="also write the JSON result to FILE")
    parser.add_argument("--per-case", metavar="FILE", help="write per-case values (JSON Lines, or CSV for *.csv)")
    parser.add_argument("--bootstrap", type=int, default=0, metavar="N", help="95%% CIs from N case resamples")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    g = parser.add_argument_group("official resources of the model-based metrics")
    g.add_argument("--bertscore-model", metavar="DIR", help="local distilbert-base-uncased directory")
    g.add_argument("--alignscore-ckpt", metavar="FILE", help="AlignScore-base.ckpt")
    g.add_argument("--alignscore-model", metavar="DIR", help="local roberta-base directory (for the checkpoint)")
    g.add_argument("--quickumls-index", metavar="DIR", help="QuickUMLS index built from a UMLS release")
    g.add_argument("--no-proxies", action="store_true", help="report missing official metrics as unavailable")


def run(args: argparse.Namespace) -> int:
    from ehrqa.data.submission import read_submission
    from ehrqa.score import Resources, parse_metrics, score

    if args.bootstrap < 0:
        raise DataError("--bootstrap must be >= 0")
    if args.metrics is not None:
        if args.subtask in (2, 4):
            raise DataError("--metrics applies to subtasks 1 and 3 (subtasks 2 and 4 have fixed set metrics)")
        parse_metrics(args.metrics, args.subtask)  # fail before loading anything
    outputs = {flag: _output_path(value, flag) for flag, value in (("--out", args.out), ("--per-case", args.per_case))}
    cases = load_cases(args, require_xml=args.subtask in (1, 3))
    _check_gold(cases, args.subtask, parse_case_ids(args.case_ids, "--case-ids"), args)
    entries = read_submission(args.submission)
    resources = Resources(
        bertscore_model=args.bertscore_model,
        alignscore_ckpt=args.alignscore_ckpt,
        alignscore_model=args.alignscore_model,
        quickumls_index=args.quickumls_index,
        proxies=not args.no_proxies,
    )
    result = score(
        args.subtask,
        entries,
        cases,
        metrics=args.metrics,
        case_ids=parse_case_ids(args.case_ids, "--case-ids"),
        bootstrap=args.bootstrap,
        resources=resources,
        seed=args.seed,
    )
    text = json.dumps(result.to_dict(), indent=2) + "\n"
    if outputs["--out"]:
        _write(outputs["--out"], "--out", lambda path: atomic_write_text(path, text))
    if outputs["--per-case"]:
        _write(outputs["--per-case"], "--per-case", lambda path: _write_per_case(result.per_case, path))
    sys.stdout.write(text)
    return 0


# ---------------------------------------------------------------- checks made before the (slow) scoring


def _output_path(value: str | None, flag: str) -> Path | None:
    """An output file that can plausibly be written: not a directory, its folder not a file."""
    if not value:
        return None
    path = Path(value)
    if path.is_dir():
        raise DataError(f"{flag} {path}: is a directory; give a file name")
    folder = next((p for p in path.parents if p.exists()), Path("."))
    if not folder.is_dir():
        raise DataError(f"{flag} {path}: {folder} is a file, not a directory")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise DataError(f"{flag} {path}: cannot write in {folder} (permission denied)")
    return path


def _write(path: Path, flag: str, write) -> None:
    """Run ``write(path)``; a failure is one line naming the flag and path, with no partial file left."""
    try:
        write(path)
    except DataError as e:
        raise DataError(f"{flag} {e}") from None
    except OSError as e:
        raise DataError(f"{flag} {path}: cannot write ({e.strerror or type(e).__name__})") from None


def _write_per_case(records: list[dict], path: Path) -> None:
    """The report module's per-case file, built in a private folder beside ``path`` and renamed into place."""
    import shutil
    import tempfile

    from ehrqa.score import report

    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        os.replace(report.write_per_case(records, scratch / path.name), path)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _check_gold(cases: list, subtask: int, case_ids: list[str] | None, args: argparse.Namespace) -> None:
    """Refuse, before reading the submission, a dataset that lacks the gold this subtask is scored on.

    Test releases omit gold (no <clinician_question>, relevance or citations): fine for reading,
    not for scoring.
    """
    from ehrqa.data.archehr import KEY_NAME, XML_NAME

    wanted = set(case_ids) if case_ids else None
    scored = [c for c in cases if wanted is None or c.id in wanted]
    if subtask in (2, 3, 4) and not any(c.has_key for c in cases):
        where = f"{args.data} holds no {KEY_NAME}" if args.data else f"pass --key FILE ({KEY_NAME})"
        raise DataError(f"scoring subtask {subtask} needs the gold key: {where}")
    need = {
        1: (
            lambda c: c.gold_question,
            f"{XML_NAME}: case {{}}: no gold <clinician_question> (the ST1 gold; a question from ehrqa convert "
            "is the user's input)",
        ),
        2: (lambda c: c.relevance is not None, f'{KEY_NAME}: case {{}}: no relevance labels ("answers")'),
        3: (lambda c: c.answer, f"{KEY_NAME}: case {{}}: no clinician_answer_without_citations (the ST3 gold)"),
        4: (
            lambda c: c.answer_sentences is not None and all(a.citations is not None for a in c.answer_sentences),
            f"{KEY_NAME}: case {{}}: no citations in clinician_answer_sentences (the ST4 gold)",
        ),
    }
    has_gold, message = need[subtask]
    missing = [c.id for c in scored if not has_gold(c)]
    if missing:
        more = f" (and {len(missing) - 1} more cases)" if len(missing) > 1 else ""
        raise DataError(message.format(missing[0]) + more + f"; scoring subtask {subtask} needs it")
