"""``ehrqa score``: score a submission with the official ArchEHR-QA 2026 rules."""

from __future__ import annotations

import argparse
import json
import sys

from ehrqa.commands._common import add_data_arguments, load_cases, parse_case_ids

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
    from ehrqa.errors import DataError
    from ehrqa.score import Resources, parse_metrics, report, score

    if args.bootstrap < 0:
        raise DataError("--bootstrap must be >= 0")
    if args.metrics is not None:
        if args.subtask in (2, 4):
            raise DataError("--metrics applies to subtasks 1 and 3 (subtasks 2 and 4 have fixed set metrics)")
        parse_metrics(args.metrics, args.subtask)  # fail before loading anything
    cases = load_cases(args, require_xml=args.subtask in (1, 3))
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
        case_ids=parse_case_ids(args.case_ids),
        bootstrap=args.bootstrap,
        resources=resources,
        seed=args.seed,
    )
    text = json.dumps(result.to_dict(), indent=2)
    if args.out:
        from pathlib import Path

        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n", encoding="utf-8")
    if args.per_case:
        report.write_per_case(result.per_case, args.per_case)
    sys.stdout.write(text + "\n")
    return 0
