"""``ehrqa answer``: a cited answer to one question from one plain-text note."""

from __future__ import annotations

import argparse

HELP = "answer a question from a plain-text note, with the note sentences that support each answer sentence"
DESCRIPTION = (
    "Split a plain-text clinical note into numbered sentences, pick the evidence for QUESTION (ST2), write an "
    "answer (ST3) and link each answer sentence to the note sentences supporting it (ST4). Prints the answer "
    "with [3, 5] after each sentence, then the cited note sentences (this output contains note text). "
    "When the note does not answer the question, says so in one sentence, cites nothing and exits 0. "
    "Methods come from --recipe; without one the CPU default runs (aligner evidence, extractive answer). "
    "Nothing is written unless --out names a run directory (then `ehrqa view` can show it)."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--note", required=True, metavar="FILE", help="the clinical note, a UTF-8 text file")
    parser.add_argument("--question", required=True, metavar="TEXT", help="the question to answer from the note")
    parser.add_argument("--narrative", metavar="FILE", help="the patient's own words, a text file (optional)")
    parser.add_argument("--recipe", metavar="FILE", help="run recipe whose ST2/ST3/ST4 methods to use (default: CPU)")
    parser.add_argument("--json", action="store_true", help="print the answer, citations and note as JSON")
    parser.add_argument("--out", metavar="RUN_DIR", help="keep the records in this run directory (for ehrqa view)")
    parser.add_argument("--force", action="store_true", help="start --out over when it was made for another note")


def read_text_file(path: str, flag: str) -> str:
    """A UTF-8 text file's contents; a missing, unreadable or binary file is a one-line error."""
    from pathlib import Path

    from ehrqa.data.plain import decode_note
    from ehrqa.errors import DataError

    file = Path(path)
    if file.is_dir():
        raise DataError(f"{flag} {path}: is a directory, expected a text file")
    try:
        raw = file.read_bytes()
    except OSError as e:
        raise DataError(f"{flag} {path}: cannot read ({(e.strerror or type(e).__name__).lower()})") from None
    return decode_note(raw, f"{flag} {path}")


def run(args: argparse.Namespace) -> int:
    import json

    from ehrqa.answering import answer
    from ehrqa.errors import DataError

    if not args.question.strip():
        raise DataError("--question: empty question")
    note = read_text_file(args.note, "--note")
    narrative = read_text_file(args.narrative, "--narrative") if args.narrative else None
    from contextlib import nullcontext

    from ehrqa.commands._common import removed_if_left_empty

    try:
        with removed_if_left_empty(args.out) if args.out else nullcontext():
            result = answer(note, args.question, narrative, args.recipe, out=args.out, force=args.force)
    except DataError as e:
        message = str(e)
        if message.startswith("note:"):  # name the file the user gave
            message = f"--note {args.note}:" + message.removeprefix("note:")
        raise DataError(message) from None
    if args.json:
        print(json.dumps(result.to_dict(), indent=2, ensure_ascii=False))
    else:
        print(result.format())
        if result.run_dir:
            print(f"run directory: {result.run_dir} (ehrqa view {result.run_dir}; it contains note text, PHI)")
    return 0
