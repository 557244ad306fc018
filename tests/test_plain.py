"""The plain-text clinical sentence splitter and cases built from plain notes."""

from __future__ import annotations

import pytest

from ehrqa.data.archehr import read_dataset
from ehrqa.data.plain import case_from_text, decode_note, paragraphs, split_note
from ehrqa.errors import DataError

NOTE = """HOSPITAL COURSE: Pt seen by Dr. Smith on HD#2. Given metoprolol 25 mg p.o. b.i.d. He improved.
Take 2.5 mg q.d. e.g. with food. At 10 a.m. he was fine. H. pylori was positive.
Temp 38.5. HR 110 at 10:30 today.

Discharge Medications:
1. aspirin 81 mg p.o. daily
2. metoprolol 25 mg p.o. b.i.d.
- lisinopril 10 mg
  continued from home
Allergies: penicillin

This is a long sentence that wraps
onto the next line. Was it ok? Yes!"""


def texts(note: str) -> list[str]:
    return [s.text for s in split_note(note)]


def test_clinical_abbreviations_headers_and_lists():
    assert texts(NOTE) == [
        "HOSPITAL COURSE: Pt seen by Dr. Smith on HD#2.",
        "Given metoprolol 25 mg p.o. b.i.d.",
        "He improved.",
        "Take 2.5 mg q.d. e.g. with food.",
        "At 10 a.m. he was fine.",
        "H. pylori was positive.",
        "Temp 38.5.",
        "HR 110 at 10:30 today.",
        "Discharge Medications:",
        "1. aspirin 81 mg p.o. daily",
        "2. metoprolol 25 mg p.o. b.i.d.",
        "- lisinopril 10 mg\n  continued from home",
        "Allergies: penicillin",
        "This is a long sentence that wraps\nonto the next line.",
        "Was it ok?",
        "Yes!",
    ]


def test_offsets_point_into_their_paragraph_like_the_official_xml():
    paras = paragraphs(NOTE)
    sentences = split_note(NOTE)
    assert [s.id for s in sentences] == [str(i) for i in range(1, len(sentences) + 1)]
    assert {s.paragraph_id for s in sentences} == {"0", "1", "2"}
    for s in sentences:
        para = paras[int(s.paragraph_id)]
        assert para[s.start : s.start + s.length] == s.text


def test_windows_line_endings_give_the_same_sentences():
    assert texts(NOTE.replace("\n", "\r\n")) == texts(NOTE)


def test_reproduces_every_sentence_of_the_bundled_sample():
    """The sample's notes were split by hand; the splitter must agree on all 274 sentences."""
    n = 0
    for case in read_dataset():
        got = [(s.paragraph_id, s.start, s.length, s.text) for s in split_note(case.note_excerpt)]
        want = [(s.paragraph_id, s.start, s.length, s.text) for s in case.sentences]
        assert got == want, case.id
        n += len(want)
    assert n == 274


def test_case_from_text_marks_the_question_in_the_narrative():
    narrative = "My dad had a stent. Why does he take two blood thinners?"
    case = case_from_text(7, NOTE, "Why does he take two blood thinners?", narrative)
    assert case.id == "7"
    assert case.clinician_question == "Why does he take two blood thinners?"
    assert case.question_phrases[0].start == narrative.index("Why")
    assert case.note_excerpt == "\n\n".join(paragraphs(NOTE))
    assert len(case.sentences) == 16


def test_case_from_text_without_narrative_uses_the_question():
    case = case_from_text("a", "Patient was admitted. He was discharged.", "  Why  admitted? ")
    assert case.narrative == "Why admitted?"
    assert case.question_phrases[0].text == "Why admitted?"
    assert [s.text for s in case.sentences] == ["Patient was admitted.", "He was discharged."]


@pytest.mark.parametrize(
    "note, question, message",
    [
        ("   \n\n ... \n -- ", "why?", "case 9: no usable note text"),
        ("He was admitted.", "   ", "case 9: empty question"),
    ],
)
def test_unusable_input_is_a_one_line_error(note, question, message):
    with pytest.raises(DataError) as e:
        case_from_text("9", note, question)
    assert str(e.value) == message


def test_binary_bytes_are_refused():
    with pytest.raises(DataError, match="^x.pdf: binary file, expected plain text$"):
        decode_note(b"%PDF-1.4\x00\x01\x02\x03", "x.pdf")
    with pytest.raises(DataError, match="^x.txt: not UTF-8 text"):
        decode_note("Naïve".encode("latin-1"), "x.txt")
    assert decode_note("\ufeffHe was seen.\r\n".encode(), "x.txt") == "He was seen.\r\n"
