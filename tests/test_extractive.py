"""The grounded extractive ST3 answer: note order, no headers or fragments, word limit, citations."""

from __future__ import annotations

from ehrqa.data.archehr import read_dataset
from ehrqa.data.case import Case, NoteSentence
from ehrqa.retrieval.extractive import extractive_answer, extractive_predict, trim_frame

NOTE = Case(
    id="x",
    narrative="Why does my back hurt?",
    sentences=(
        NoteSentence("1", "HISTORY OF PRESENT ILLNESS"),
        NoteSentence("2", "The patient reports that he lifted a refrigerator five days ago."),
        NoteSentence("3", "Back pain."),
        NoteSentence("4", "His lumbar x-ray showed no fracture and normal alignment."),
        NoteSentence("5", " ".join(["word"] * 70) + "."),
        NoteSentence("6", "He was advised to use ice and ibuprofen for the strain."),
    ),
)


def test_frames_are_trimmed_and_recapitalised():
    assert trim_frame("The patient reports that he lifted a box.") == "He lifted a box."
    assert trim_frame("She states she has no fever today.") == "She has no fever today."
    assert trim_frame("He reports pain.") == "He reports pain."  # nothing would be left worth keeping


def test_answer_is_in_note_order_grounded_and_within_the_limit():
    text, sentences = extractive_answer(NOTE, ["6", "1", "3", "5", "4", "2"])
    cited = [ids for _, ids in sentences]
    assert cited == [["2"], ["4"], ["6"]]  # header 1 and fragment 3 dropped, 5 does not fit, note order
    assert len(text.split()) <= 75
    assert text.startswith("He lifted a refrigerator")
    assert text == " ".join(t for t, _ in sentences)


def test_word_limit_is_respected_on_a_sentence_boundary():
    text, sentences = extractive_answer(NOTE, ["2", "4", "6"], word_limit=20)
    assert len(text.split()) <= 20 and [ids for _, ids in sentences] == [["2"], ["4"]]


def test_predict_with_the_shipped_model_cites_note_sentences():
    cases = read_dataset()[:3]
    out = extractive_predict(cases)
    for case in cases:
        text, sentences = out[case.id]
        assert text and len(text.split()) <= 75
        assert all(set(ids) <= set(case.sentence_ids) for _, ids in sentences)
