"""Plain-text clinical notes -> numbered note sentences and :class:`~ehrqa.data.case.Case` objects.

One splitter for every plain note ehrqa reads (``ehrqa convert``, ``ehrqa answer``). It keeps
character offsets exactly as the official XML does: paragraphs are separated by blank lines and
numbered from ``"0"``; a sentence's ``start`` is its offset within its paragraph and
``paragraph[start:start + length] == text``. The note excerpt written to the XML is the
paragraphs joined by one blank line, so the offsets stay true for it too.

One rule per layout:

1. Paragraphs. Blank lines separate paragraphs.
2. Header alone on its line. A line that is only a section header is a sentence of its own and
   the next line starts a new sentence: a label ending in a colon ("Discharge Medications:"), a
   known section name without one ("Hospital Course"), or an all-capital line of at most six
   words with no sentence punctuation ("HISTORY OF PRESENT ILLNESS").
3. Header with content on the same line. A line that starts with a label and a colon followed by
   text ("HPI: 72 y.o. M ...", "PMH: COPD, HTN", "Admit Dx: pneumonia", "Allergies: penicillin")
   starts a new sentence, and the label stays in it, in any case: the content never loses its
   label. A label is at most four words, a known section name, or at most six all-capital words;
   a label in the middle of a line ("... 21 mg/24 h. Discharge meds:") is ordinary text.
4. List items. A line starting with a bullet (``-``, ``*``, ``•``), a number (``1.``, ``1)``,
   ``(1)``), a letter (``a)``) or a problem-list hash (``# HTN: ...``, ``#4 AKI``) starts a
   new sentence; the marker stays in it. The number of a numbered item is never a sentence of
   its own, whatever case the item starts with ("1. Amoxicillin ..."). Inline numbered lists
   after a label ("Discharge Dx: 1. Pneumonia 2. COPD") give one sentence per item.
5. Wrapped prose. Any other line continues the sentence before it.
6. Sentence ends. Inside those pieces a sentence ends at ``.``, ``!`` or ``?`` followed by white
   space and a capital, digit, quote, bracket or bullet, except after:
   a title or Latin abbreviation ("Dr.", "e.g.", "vs.", "y.o."); an initial ("H. pylori"; not a
   unit letter after a number: "Temp 38.5 C." ends a sentence); a dosing abbreviation followed
   by a number ("p.o. 2 hours later"; before a capital it ends one: "25 mg p.o. b.i.d. He ...");
   a list number (rule 4: a number opening the sentence, or "1." after a label's colon; "HR: 98."
   ends one). Decimals ("2.5 mg"), times ("10:30") and vitals ("BP 150/90.")
   need no exception: no white space follows their inner dot, slash or colon.

NLTK's Punkt (``punkt.sent_tokenize``) was tried first: it splits "25 mg p.o. b.i.d." into three
sentences and "e.g." off its example, so these explicit rules replace it for notes.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from ehrqa.data.case import Case, NoteSentence, QuestionPhrase
from ehrqa.errors import DataError

# Section names recognised in any case at the start of a line ("Hospital course:").
SECTION_NAMES = {
    "assessment",
    "assessment and plan",
    "brief hospital course",
    "chief complaint",
    "discharge condition",
    "discharge diagnosis",
    "discharge diagnoses",
    "discharge disposition",
    "discharge instructions",
    "discharge medications",
    "discharge meds",
    "family history",
    "followup instructions",
    "follow-up instructions",
    "history of present illness",
    "hospital course",
    "impression",
    "labs",
    "major surgical or invasive procedure",
    "medications",
    "medications on admission",
    "past medical history",
    "past surgical history",
    "pertinent results",
    "physical exam",
    "physical examination",
    "plan",
    "procedures",
    "review of systems",
    "social history",
}

# Never end a sentence: titles, "e.g.", "vs.", "y.o." (years old), units of counting.
NON_FINAL_ABBREVIATIONS = {
    "dr",
    "mr",
    "mrs",
    "ms",
    "prof",
    "st",
    "sr",
    "jr",
    "vs",
    "e.g",
    "i.e",
    "eg",
    "ie",
    "approx",
    "fig",
    "cf",
    "y.o",
}
# Dosing and time abbreviations: they end a sentence before a capital, not before a number.
DOSING_ABBREVIATIONS = {
    "b.i.d",
    "t.i.d",
    "q.i.d",
    "q.d",
    "q.o.d",
    "q.h.s",
    "h.s",
    "p.o",
    "p.r",
    "p.r.n",
    "s.l",
    "i.v",
    "i.m",
    "s.c",
    "s.q",
    "q.a.m",
    "q.p.m",
    "a.m",
    "p.m",
    "bid",
    "tid",
    "qid",
    "qd",
    "qhs",
    "prn",
    "po",
}

# A list item: bullet, "1." / "1)" / "(1)", "a)", or a problem-list hash ("# HTN:", "#CAP", "#2 AKI").
_LIST_ITEM = re.compile(r"[ \t]*(?:(?:[-*•‣◦·]|\(?\d{1,3}[.)]|\(?[a-zA-Z][)])[ \t]+\S|#[ \t]*[A-Za-z0-9])")
# A label and its colon at the start of a line ("PMH:", "Admit Dx:"); not a time ("10:30").
_LABEL = re.compile(r"[ \t]*([A-Za-z][A-Za-z0-9 /&()#'-]{0,48}?)[ \t]*:(?=[ \t]|$)")
_BOUNDARY = re.compile(r"[.!?]+[\"')\]]*(?=\s+[\"'(\[A-Z0-9•*#-])")
# A number in an inline list ("Dx: 1. Pneumonia 2. COPD"): digits and a dot between white space.
_LIST_NUMBER = re.compile(r"(?:(?<=\s)|^)(\d{1,2})\.(?=\s)")


@dataclass(frozen=True)
class _Span:
    start: int  # offsets into the paragraph
    end: int


# ---------------------------------------------------------------- reading text


def decode_note(raw: bytes, where: str) -> str:
    """Note bytes -> text; a binary file or one that is not UTF-8 is a one-line :class:`DataError`."""
    if b"\x00" in raw[:8192]:
        raise DataError(f"{where}: binary file, expected plain text")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise DataError(f"{where}: not UTF-8 text (invalid byte at offset {e.start})") from None
    controls = sum(1 for ch in text[:8192] if ord(ch) < 32 and ch not in "\n\r\t\f")
    if controls > max(8, len(text[:8192]) // 100):
        raise DataError(f"{where}: binary file, expected plain text")
    return text


def normalise_text(text: str) -> str:
    """Line endings to ``\\n``, tabs and form feeds kept as white space."""
    return text.replace("\r\n", "\n").replace("\r", "\n").replace("\f", "\n")


# ---------------------------------------------------------------- splitting


def paragraphs(text: str) -> list[str]:
    """The note's paragraphs: separated by blank lines, each stripped, empty ones dropped."""
    blocks = re.split(r"\n[ \t]*\n", normalise_text(text))
    return [b.strip() for b in blocks if b.strip()]


def split_note(text: str, where: str = "note") -> tuple[NoteSentence, ...]:
    """Number the sentences of a plain-text note from ``"1"`` (paragraph ids from ``"0"``).

    A note without a letter or digit in it is a :class:`DataError` naming ``where``.
    """
    sentences: list[NoteSentence] = []
    for pid, para in enumerate(paragraphs(text)):
        for span in split_paragraph(para):
            sentences.append(
                NoteSentence(
                    id=str(len(sentences) + 1),
                    text=para[span.start : span.end],
                    paragraph_id=str(pid),
                    start=span.start,
                    length=span.end - span.start,
                )
            )
    if not any(re.search(r"\w", s.text) for s in sentences):
        raise DataError(f"{where}: no usable note text")
    return tuple(sentences)


def split_paragraph(para: str) -> list[_Span]:
    """Sentence spans of one paragraph (offsets into it), in order, none empty."""
    spans: list[_Span] = []
    for piece in _pieces(para):
        spans.extend(_sentences(para, piece))
    return spans


def _lines(para: str) -> Iterator[_Span]:
    pos = 0
    for line in para.split("\n"):
        yield _Span(pos, pos + len(line))
        pos += len(line) + 1


def _is_header_line(line: str) -> bool:
    """Whether the whole line is a section header (rule 2)."""
    text = line.strip()
    m = _LABEL.fullmatch(text)
    if m:  # "Discharge Medications:" alone on its line
        label = m.group(1).strip()
        return label.lower() in SECTION_NAMES or len(label.split()) <= 6
    if text.rstrip(":").lower() in SECTION_NAMES:  # "Hospital Course"
        return True
    letters = [ch for ch in text if ch.isalpha()]
    return (  # "HISTORY OF PRESENT ILLNESS"
        len(letters) >= 2
        and all(ch.isupper() for ch in letters)
        and len(text.split()) <= 6
        and not re.search(r"[.!?;,]", text)
    )


def _starts_piece(line: str) -> bool:
    """A list item (rule 4) or a label with content after it on its line (rule 3)."""
    if _LIST_ITEM.match(line):
        return True
    m = _LABEL.match(line)
    if not m:
        return False
    label = m.group(1).strip()
    letters = [ch for ch in label if ch.isalpha()]
    all_caps = all(ch.isupper() for ch in letters)
    words = len(label.split())
    return words <= 4 or label.lower() in SECTION_NAMES or (all_caps and words <= 6)


def _pieces(para: str) -> list[_Span]:
    """Group the paragraph's lines (rules 2-5): a header line is a piece of its own; a field or
    list line starts a new piece; any other line continues the piece before it."""
    pieces: list[_Span] = []
    current: _Span | None = None
    for line in _lines(para):
        text = para[line.start : line.end]
        if not text.strip():
            continue
        if _is_header_line(text):
            if current:
                pieces.append(current)
            pieces.append(line)
            current = None
        elif current is None or _starts_piece(text):
            if current:
                pieces.append(current)
            current = line
        else:
            current = _Span(current.start, line.end)
    if current:
        pieces.append(current)
    return pieces


def _last_word(text: str) -> str:
    """The word before a final ``.``, lower-cased and without its final dot or leading bracket."""
    words = text.split()
    if not words:
        return ""
    word = words[-1].lstrip("([\"'").lower()
    return word[:-1] if word.endswith(".") else word


def _is_boundary(before: str, after: str) -> bool:
    """Whether a sentence ends between ``before`` (ends with the punctuation) and ``after``."""
    stripped = before.rstrip("\"')]")
    if stripped.endswith(("?", "!")):
        return True
    words = stripped.split()
    word = _last_word(stripped)
    if word in NON_FINAL_ABBREVIATIONS:
        return False
    last = words[-1].lstrip("([\"'") if words else ""
    previous = words[-2] if len(words) > 1 else ""
    if len(last) == 2 and last[0].isupper() and not previous[-1:].isdigit():
        return False  # an initial: "H. pylori", "J. Doe" (not "24 h.", not "38.5 C.")
    if word.isdigit() and len(word) <= 2 and (not previous or (word == "1" and previous.endswith(":"))):
        return False  # a list number: "1. Amoxicillin", "Dx: 1. Pneumonia" (not "HR: 98. RR 18.")
    if word in DOSING_ABBREVIATIONS and after.lstrip()[:1].isdigit():
        return False
    return True


def _inline_list_numbers(text: str) -> list[re.Match[str]]:
    """The numbers 2, 3, ... of an inline list whose "1." opens the text or follows a label's colon."""
    numbers: list[re.Match[str]] = []
    expected = None
    for m in _LIST_NUMBER.finditer(text):
        if expected is None:
            if m.group(1) == "1" and (not text[: m.start()].strip() or text[: m.start()].rstrip().endswith(":")):
                expected = 2
        elif int(m.group(1)) == expected:
            numbers.append(m)
            expected += 1
    return numbers


def _sentences(para: str, piece: _Span) -> list[_Span]:
    """Sentence spans of one piece (rule 6), offsets into the paragraph, stripped, none empty."""
    text = para[piece.start : piece.end]
    items = _inline_list_numbers(text)
    item_dots = {m.end() - 1 for m in items}
    cuts = {m.start() for m in items}
    start = 0
    for m in _BOUNDARY.finditer(text):
        end = m.end()
        if m.start() in item_dots or not _is_boundary(text[start:end], text[end:]):
            continue
        cuts.add(end)
        start = end
    spans = []
    bounds = [0, *sorted(cuts), len(text)]
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        chunk = text[a:b]
        lead = len(chunk) - len(chunk.lstrip())
        trail = len(chunk.rstrip())
        if trail > lead:
            spans.append(_Span(piece.start + a + lead, piece.start + a + trail))
    return spans


# ---------------------------------------------------------------- cases


def case_from_text(
    case_id: str,
    note: str,
    question: str,
    narrative: str | None = None,
    *,
    specialty: str | None = None,
    where: str | None = None,
) -> Case:
    """A :class:`Case` from a plain note and a question (the clinician question of ST2-ST4).

    Without a ``narrative`` the question stands in for it (the official XML requires one) and is
    marked as the patient question; with one, the question is marked where it occurs verbatim.
    """
    where = where or f"case {case_id}"
    case_id = str(case_id).strip()
    if not case_id:
        raise DataError(f"{where}: empty case_id")
    if not isinstance(note, str):
        raise DataError(f"{where}: note must be text, got {type(note).__name__}")
    if not isinstance(question, str) or not question.strip():
        raise DataError(f"{where}: empty question")
    if narrative is not None and not isinstance(narrative, str):
        raise DataError(f"{where}: narrative must be text, got {type(narrative).__name__}")
    question = " ".join(question.split())
    narrative = (narrative or "").strip() or question
    sentences = split_note(note, where)
    start = narrative.find(question)
    phrases = (QuestionPhrase("0", question, start),) if start >= 0 else ()
    return Case(
        id=case_id,
        narrative=narrative,
        sentences=sentences,
        specialty=specialty,
        question_phrases=phrases,
        clinician_question=question,
        note_excerpt="\n\n".join(paragraphs(note)),
        question_is_input=True,  # the user's question: what ST2-ST4 answer, never the ST1 gold
    )
