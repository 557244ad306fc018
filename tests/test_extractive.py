"""The grounded extractive ST3 answer: note order, no headers or fragments, word limit, citations."""

from __future__ import annotations

import pytest

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


@pytest.mark.model
def test_predict_with_the_shipped_model_cites_note_sentences():
    cases = read_dataset()[:3]
    out = extractive_predict(cases)
    for case in cases:
        text, sentences = out[case.id]
        assert text and len(text.split()) <= 75
        assert all(set(ids) <= set(case.sentence_ids) for _, ids in sentences)


def _lexical_learned_model(extractive: dict):
    from ehrqa.retrieval.aligner import FORMAT, AlignerModel
    from ehrqa.retrieval.features import LEXICAL_FEATURES, feature_tensors
    from ehrqa.retrieval.relevance import fit_relevance
    from ehrqa.train.aligner import gold_indices

    cases = read_dataset()
    tensors = feature_tensors(2, [c.input_for(2) for c in cases], names=LEXICAL_FEATURES)
    gold = [gold_indices(2, c) for c in cases]
    section = fit_relevance(tensors, gold, ["sample"] * len(cases), list(LEXICAL_FEATURES), folds=3).to_dict()
    config = {"format": FORMAT, "components": {}, "subtasks": {"2": section}, "extractive": extractive}
    return AlignerModel(config), cases


def test_without_filling_only_selected_sentences_are_cited():
    model, cases = _lexical_learned_model({"fill": False, "bm25_blend": None})
    picked = model.select(2, [c.input_for(2) for c in cases])
    selected = {c.id: set(ids[0]) for c, ids in zip(cases, picked, strict=True)}
    filled, _ = _lexical_learned_model({"fill": True, "bm25_blend": None})
    out, out_filled = extractive_predict(cases, model), extractive_predict(cases, filled)
    for case in cases:
        cited = {i for _, ids in out[case.id][1] for i in ids}
        assert cited <= selected[case.id]
        cited_filled = {i for _, ids in out_filled[case.id][1] for i in ids}
        assert len(out_filled[case.id][0].split()) >= len(out[case.id][0].split()) and cited_filled >= cited


def test_bm25_blend_weight_zero_ranks_like_bm25():
    import numpy as np

    from ehrqa.retrieval.features import feature_tensors

    model, cases = _lexical_learned_model({"fill": True, "bm25_blend": 0.0})
    out = extractive_predict(cases, model)
    for case in cases:
        inputs = case.input_for(3)
        bm25 = feature_tensors(2, [inputs], names=("bm25",))[0][0, :, 0]
        selected = model.select(2, [inputs])[0][0]
        rest = [case.sentences[j].id for j in np.argsort(-bm25, kind="stable") if case.sentences[j].id not in selected]
        order = sorted(selected, key=lambda i: -bm25[case.sentence_ids.index(i)]) + rest
        assert out[case.id] == extractive_answer(case, order)
