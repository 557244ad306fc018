"""Generate the bundled sample (``archehr-qa.xml``, ``archehr-qa_key.json``) from its cases file.

The cases live in ``src/ehrqa/data/sample/cases.yaml``, invented by the ehrqa authors (no patient
record, nothing from MIMIC or the ArchEHR-QA release). This script turns them into
:class:`ehrqa.Case` objects, computing every offset (phrase ``start_char_index``; sentence
``paragraph_id``/``start_char_index``/``length``), and writes them with ehrqa's own writers.

    python scripts/make_sample.py            # rewrite the files
    python scripts/make_sample.py --check    # exit 1 if the files on disk differ
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import yaml

from ehrqa import AnswerSentence, Case, DataError, NoteSentence, QuestionPhrase, sample_dir, write_key, write_xml
from ehrqa.data.archehr import KEY_NAME, XML_NAME
from ehrqa.text import ANSWER_WORD_LIMIT, QUESTION_WORD_LIMIT, word_count

CASES_FILE = sample_dir() / "cases.yaml"
LABELS = {"E": "essential", "S": "supplementary", "N": "not-relevant"}


def build_case(entry: dict, fname: str = CASES_FILE.name) -> Case:
    """One case of the cases file as a :class:`Case` with computed offsets and its gold."""
    cid = entry["id"]
    where = f"{fname}: case {cid}"
    narrative = entry["narrative"]
    phrases = []
    for k, text in enumerate(entry["phrases"]):
        start = narrative.find(text)
        if start < 0 or narrative.find(text, start + 1) >= 0:
            raise DataError(f"{where}: phrase must occur once in the narrative: {text!r}")
        phrases.append(QuestionPhrase(str(k), text, start))
    sentences: list[NoteSentence] = []
    relevance: list[tuple[str, str]] = []
    cited: dict[str, str] = {}  # citation key -> sentence id
    paragraphs: list[str] = []
    for pid, paragraph in enumerate(entry["paragraphs"]):
        offset = 0
        texts = []
        for item in paragraph:
            ((tag, text),) = item.items()
            label, _, key = tag.partition(" ")
            if text != text.strip() or "\n\n" in text:
                raise DataError(f"{where}: sentence text has outer spaces or a blank line")
            sid = str(len(sentences) + 1)
            sentences.append(NoteSentence(sid, text, str(pid), offset, len(text)))
            relevance.append((sid, LABELS[label]))
            if key:
                if key in cited:
                    raise DataError(f"{where}: citation key {key!r} used twice")
                cited[key] = sid
            offset += len(text) + 1
            texts.append(text)
        paragraphs.append(" ".join(texts))
    answer = tuple(
        AnswerSentence(str(k), a["text"], tuple(cited[c] for c in a["cites"])) for k, a in enumerate(entry["answer"], 1)
    )
    case = Case(
        id=cid,
        narrative=narrative,
        sentences=tuple(sentences),
        specialty=entry["specialty"],
        question_phrases=tuple(phrases),
        clinician_question=entry["clinician_question"],
        note_excerpt="\n\n".join(paragraphs),
        relevance=tuple(relevance),
        answer=" ".join(a.text for a in answer),
        answer_sentences=answer,
    )
    if word_count(case.answer) > ANSWER_WORD_LIMIT or word_count(case.clinician_question) > QUESTION_WORD_LIMIT:
        raise DataError(f"{where}: answer or clinician question over the word limit")
    return case


def build(cases_file: Path = CASES_FILE) -> list[Case]:
    """Every case of the cases file, in file order."""
    return [build_case(entry, cases_file.name) for entry in yaml.safe_load(cases_file.read_text(encoding="utf-8"))]


def write(cases: list[Case], out_dir: Path) -> list[Path]:
    """The official XML and key files of ``cases`` in ``out_dir``."""
    write_xml(cases, out_dir / XML_NAME)
    write_key(cases, out_dir / KEY_NAME)
    return [out_dir / XML_NAME, out_dir / KEY_NAME]


def stale_files(cases: list[Case], out_dir: Path) -> list[str]:
    """Names of the files in ``out_dir`` that differ from what ``cases`` would write."""
    with tempfile.TemporaryDirectory() as tmp:
        fresh = write(cases, Path(tmp))
        return [
            p.name
            for p in fresh
            if not (out_dir / p.name).exists() or (out_dir / p.name).read_bytes() != p.read_bytes()
        ]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="compare with the files on disk instead of writing")
    ap.add_argument("--cases", type=Path, default=CASES_FILE, help="the cases file (default: the bundled one)")
    ap.add_argument("--out", type=Path, default=sample_dir(), help="where the files go (default: the bundled sample)")
    args = ap.parse_args(argv)
    cases = build(args.cases)
    if args.check:
        stale = stale_files(cases, args.out)
        if stale:
            print("out of date: " + ", ".join(stale) + " (run scripts/make_sample.py)", file=sys.stderr)
            return 1
        return 0
    for path in write(cases, args.out):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
