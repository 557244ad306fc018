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
    from ehrqa.data.archehr import check_note_sentences
    from ehrqa.data.submission import WORD_LIMITS, check_submission, over_word_limit, read_submission
    from ehrqa.errors import DataError

    if args.submission and args.subtask is None:
        raise DataError("--submission needs --subtask (1, 2, 3 or 4)")
    if args.subtask is not None and not args.submission:
        raise DataError("--subtask applies only with --submission FILE")
    cases = load_cases(args, require_xml=args.submission is None or args.subtask in (1, 3))
    if not args.submission:
        check_note_sentences(cases)
        warn_long_references(cases)
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


def warn_long_references(cases) -> None:
    """Gold longer than the task allows (a 78-word reference answer) is legal but worth a warning,
    as over-long submissions get one: one line per kind of gold, naming the cases."""
    from ehrqa.data.archehr import KEY_NAME, XML_NAME
    from ehrqa.text import ANSWER_WORD_LIMIT, QUESTION_WORD_LIMIT, word_count

    kinds = (
        (KEY_NAME, "reference answers", ANSWER_WORD_LIMIT, "ST3 answers", lambda c: c.answer),
        (XML_NAME, "clinician questions", QUESTION_WORD_LIMIT, "ST1 questions", lambda c: c.gold_question),
    )
    for fname, what, limit, allowed, text_of in kinds:
        given = [(c.id, word_count(text_of(c))) for c in cases if text_of(c)]
        long = [(case_id, n) for case_id, n in given if n > limit]
        if long:
            shown = ", ".join(f"{case_id} ({n} words)" for case_id, n in long[:5])
            more = f" and {len(long) - 5} more" if len(long) > 5 else ""
            log.warning(
                "%s: %d of %d %s are longer than the %d words %s may have: case %s%s",
                fname,
                len(long),
                len(given),
                what,
                limit,
                allowed,
                shown,
                more,
            )


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
