"""Plain-text clinical notes -> numbered note sentences and :class:`~ehrqa.data.case.Case` objects.

One splitter for every plain note ehrqa reads (``ehrqa convert``, ``ehrqa answer``). It keeps
character offsets exactly as the official XML does: paragraphs are separated by blank lines and
numbered from ``"0"``; a sentence's ``start`` is its offset within its paragraph and
``paragraph[start:start + length] == text``. The note excerpt written to the XML is the
paragraphs joined by one blank line, so the offsets stay true for it too.

Rules, in order:

1. Blank lines separate paragraphs.
2. Inside a paragraph, a line starts a new piece when it is a section header ("HOSPITAL COURSE:",
   "Discharge Medications:"), a list item ("- ...", "* ...", "1. ...", "2) ..."), or a labelled field
   ("Allergies: penicillin"). Other lines continue the piece before them (wrapped prose).
3. A section header at the start of a line is a sentence of its own: a label alone on its line
   ("Discharge Medications:"), or an all-capital one even when text follows it ("HPI: 64 yo M ..."
   -> "HPI:" and "64 yo M ..."). A title-case label with text after it ("Assessment: ulcer ...")
   stays in its sentence, as in the official notes.
4. Inside a piece, a sentence ends at ``.``, ``!`` or ``?`` followed by white space and a capital,
   digit, quote or bracket, except after a title ("Dr.", "e.g.", "vs."), an initial ("H. pylori"),
   or a dosing abbreviation followed by a number ("p.o. 2 hours later"). Decimals ("2.5 mg") and
   times ("10:30") never split because no white space follows their dot or colon.

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
# Short all-capital section labels ("HPI:"); longer all-capital labels (4+ letters) always count.
SHORT_CAPS_HEADERS = {"HPI", "PMH", "PSH", "ROS", "CC", "A/P", "A&P", "DX", "ID", "PE"}

# Never end a sentence: titles, "e.g.", "vs.", units of counting.
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

_LIST_ITEM = re.compile(r"[ \t]*(?:[-*•‣◦·]|\(?\d{1,3}[.)]|\(?[a-zA-Z][)])[ \t]+\S")
_LABEL = re.compile(r"[ \t]*([A-Za-z][A-Za-z0-9 /&()#'-]{0,48}?)[ \t]*:(?=[ \t]|$)")
_BOUNDARY = re.compile(r"[.!?]+[\"')\]]*(?=\s+[\"'(\[A-Z0-9•*-])")


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


def _header_length(line: str) -> int:
    """Length of a section header at the start of ``line`` (up to and including its colon), else 0."""
    m = _LABEL.match(line)
    if not m:
        return 0
    label = m.group(1).strip()
    rest = line[m.end() :].strip()
    letters = [ch for ch in label if ch.isalpha()]
    all_caps = bool(letters) and all(ch.isupper() for ch in letters)
    if all_caps and (len(letters) >= 4 or label in SHORT_CAPS_HEADERS):
        return m.end()  # "HOSPITAL COURSE: ..." splits even with text after it
    if not rest and (label.lower() in SECTION_NAMES or len(label.split()) <= 6):
        return m.end()  # "Discharge Medications:" alone on its line
    return 0


def _starts_piece(line: str) -> bool:
    """A list item or a labelled field ("BP: 120/80", at most four words before the colon)."""
    if _LIST_ITEM.match(line):
        return True
    m = _LABEL.match(line)
    return bool(m and len(m.group(1).split()) <= 4)


def _pieces(para: str) -> list[_Span]:
    """Group the paragraph's lines: a header, list item or field line starts a new piece."""
    pieces: list[_Span] = []
    current: _Span | None = None
    for line in _lines(para):
        text = para[line.start : line.end]
        if not text.strip():
            continue
        head = _header_length(text)
        if head:
            if current:
                pieces.append(current)
            pieces.append(_Span(line.start, line.start + head))
            rest = text[head:]
            current = None
            if rest.strip():
                offset = line.start + head + (len(rest) - len(rest.lstrip()))
                current = _Span(offset, line.end)
            continue
        if current is None or _starts_piece(text):
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
    word = _last_word(stripped)
    if word in NON_FINAL_ABBREVIATIONS:
        return False
    initial = stripped.split()[-1].lstrip("([\"'") if stripped.split() else ""
    if len(initial) == 2 and initial[0].isupper():  # an initial: "H. pylori", "J. Doe" (not "24 h.")
        return False
    nxt = after.lstrip()[:1]
    if word in DOSING_ABBREVIATIONS and nxt.isdigit():
        return False
    return True


def _sentences(para: str, piece: _Span) -> list[_Span]:
    text = para[piece.start : piece.end]
    out: list[_Span] = []
    start = 0
    for m in _BOUNDARY.finditer(text):
        end = m.end()
        if not _is_boundary(text[start:end], text[end:]):
            continue
        out.append(_Span(start, end))
        start = end
    out.append(_Span(start, len(text)))
    spans = []
    for s in out:
        chunk = text[s.start : s.end]
        lead = len(chunk) - len(chunk.lstrip())
        trail = len(chunk.rstrip())
        if trail > lead:
            spans.append(_Span(piece.start + s.start + lead, piece.start + s.start + trail))
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
