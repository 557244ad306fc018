"""``ehrqa validate``: check a dataset, or a submission against a dataset, with the official rules."""

from __future__ import annotations

import argparse
import logging

from ehrqa.commands._common import add_data_arguments, load_cases
from ehrqa.text import plural

log = logging.getLogger(__name__)

HELP = "check an ArchEHR-QA dataset (XML and key) or a submission file"
DESCRIPTION = (
    "Check archehr-qa.xml / archehr-qa_key.json, or a submission against a dataset. "
    "Exits 0 when valid; otherwise prints one short message naming file, case and field, and exits 2."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_data_arguments(parser)
    parser.add_argument("--submission", metavar="FILE", help="submission.json or submission.zip to check")
    parser.add_argument("--subtask", type=int, choices=[1, 2, 3, 4], help="subtask of the submission")


def run(args: argparse.Namespace) -> int:
    from ehrqa.data.submission import WORD_LIMITS, check_submission, over_word_limit, read_submission
    from ehrqa.errors import DataError

    if args.submission and args.subtask is None:
        raise DataError("--submission needs --subtask (1, 2, 3 or 4)")
    if args.subtask is not None and not args.submission:
        raise DataError("--subtask applies only with --submission FILE")
    cases = load_cases(args, require_xml=args.submission is None or args.subtask in (1, 3))
    if not args.submission:
        print("ok: " + summarise(cases))
        return 0
    entries = read_submission(args.submission)
    check_submission(entries, args.subtask, cases, name=args.submission)
    long = over_word_limit(entries, args.subtask)
    if long:
        # The official scorer keeps the first N words without a word of warning: say so here.
        limit = WORD_LIMITS[args.subtask]
        for case_id, n_words in long:
            log.warning(
                "%s: case %s: prediction has %d words; the scorer keeps only the first %d",
                args.submission,
                case_id,
                n_words,
                limit,
            )
        log.warning(
            "%s: %d of %d predictions exceed the %d-word limit and will be truncated when scored",
            args.submission,
            len(long),
            len(entries),
            limit,
        )
    print(f"ok: {args.submission}: valid subtask {args.subtask} submission for {plural(len(cases), 'case')}")
    return 0


def summarise(cases) -> str:
    n_sentences = sum(len(c.known_sentence_ids) for c in cases)
    keyed = [c for c in cases if c.has_key]
    parts = [plural(len(cases), "case"), plural(n_sentences, "note sentence")]
    if keyed:
        gold = []
        if any(c.relevance is not None for c in keyed):
            gold.append("relevance")
        if any(c.answer is not None for c in keyed):
            gold.append("answers")
        if any(a.citations is not None for c in keyed for a in c.answer_sentences or ()):
            gold.append("citations")
        parts.append(f"key for {plural(len(keyed), 'case')} ({', '.join(gold)})")
    else:
        parts.append("no key")
    return ", ".join(parts)
