"""``ehrqa convert``: plain-text notes with questions -> ``archehr-qa.xml`` that every command reads.

Two input shapes:

- ``--notes FILE.jsonl``: one JSON object a line, ``{"case_id", "note", "question", "narrative"?}``;
- ``--notes DIR``: one ``<case_id>.txt`` note per case plus ``questions.csv`` with the columns
  ``case_id``, ``question`` and optionally ``narrative``.

Notes are split into numbered sentences by :mod:`ehrqa.data.plain`. Nothing is printed but counts.
"""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "turn plain-text notes and questions into archehr-qa.xml (JSONL, or a folder of .txt + questions.csv)"
QUESTIONS_CSV = "questions.csv"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--notes",
        required=True,
        metavar="DIR|FILE.jsonl",
        help='JSON Lines of {"case_id", "note", "question", "narrative"?}, or a folder of <case_id>.txt '
        f"files plus {QUESTIONS_CSV} (case_id, question[, narrative])",
    )
    parser.add_argument("--out", required=True, metavar="DIR", help="directory to write archehr-qa.xml into")


def run(args: argparse.Namespace) -> int:
    from ehrqa.data.archehr import XML_NAME, read_xml, write_xml
    from ehrqa.text import plural

    cases = read_plain_notes(args.notes)
    out = Path(args.out) / XML_NAME
    write_xml(cases, out)
    read_xml(out)  # what we wrote must read back (ehrqa validate runs the same reader)
    n_sentences = sum(len(c.sentences) for c in cases)
    print(f"ehrqa convert: wrote {plural(len(cases), 'case')} ({plural(n_sentences, 'note sentence')}) to {out}")
    return 0


def read_plain_notes(source: str | Path) -> list:
    """Cases from a JSONL file or a folder of ``.txt`` notes with ``questions.csv``."""
    from ehrqa.errors import DataError

    path = Path(source)
    if path.is_dir():
        cases = _from_folder(path)
    elif path.is_file():
        cases = _from_jsonl(path)
    else:
        raise DataError(f"{path}: --notes: no such file or directory")
    if not cases:
        raise DataError(f"{path}: no cases")
    return cases


def _from_jsonl(path: Path) -> list:
    import json

    from ehrqa.data.plain import case_from_text, decode_note
    from ehrqa.errors import DataError

    text = decode_note(path.read_bytes(), path.name)
    cases, seen = [], set()
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path.name}: line {n}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{where}: not valid JSON ({e.msg})") from None
        if not isinstance(row, dict):
            raise DataError(f"{where}: expected a JSON object")
        for field in ("case_id", "note", "question"):
            if row.get(field) is None or isinstance(row.get(field), bool):
                raise DataError(f"{where}: missing {field!r}")
        case_id = str(row["case_id"]).strip()
        if case_id in seen:
            raise DataError(f"{where}: case {case_id}: duplicate case_id")
        seen.add(case_id)
        where = f"{where}: case {case_id}"
        cases.append(case_from_text(case_id, row["note"], row["question"], row.get("narrative"), where=where))
    return cases


def _from_folder(folder: Path) -> list:
    import csv
    import io

    from ehrqa.data.plain import case_from_text, decode_note
    from ehrqa.errors import DataError

    csv_path = folder / QUESTIONS_CSV
    if not csv_path.is_file():
        raise DataError(f"{folder}: no {QUESTIONS_CSV} (columns case_id, question[, narrative])")
    reader = csv.DictReader(io.StringIO(decode_note(csv_path.read_bytes(), QUESTIONS_CSV)))
    columns = [c.strip() for c in reader.fieldnames or []]
    for needed in ("case_id", "question"):
        if needed not in columns:
            raise DataError(f"{QUESTIONS_CSV}: no {needed!r} column (found: {', '.join(columns) or 'none'})")
    notes = {p.stem: p for p in sorted(folder.glob("*.txt"))}
    cases, seen = [], set()
    for n, raw in enumerate(reader, 2):
        row = {(k or "").strip(): (v or "") for k, v in raw.items()}
        case_id = row["case_id"].strip()
        where = f"{QUESTIONS_CSV}: line {n}"
        if not case_id:
            raise DataError(f"{where}: empty case_id")
        if case_id in seen:
            raise DataError(f"{where}: case {case_id}: duplicate case_id")
        seen.add(case_id)
        if case_id not in notes:
            raise DataError(f"{where}: case {case_id}: no {case_id}.txt in {folder}")
        note = decode_note(notes[case_id].read_bytes(), notes[case_id].name)
        narrative = row.get("narrative") or None
        cases.append(case_from_text(case_id, note, row["question"], narrative, where=notes[case_id].name))
    orphans = sorted(set(notes) - seen)
    if orphans:
        raise DataError(f"{QUESTIONS_CSV}: no question for {', '.join(o + '.txt' for o in orphans[:5])}")
    return cases
