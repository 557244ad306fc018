"""The learned relevance model: decision rules, fitting, the model-directory section and features."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ehrqa.data.archehr import read_dataset
from ehrqa.retrieval.aligner import FORMAT, AlignerModel
from ehrqa.retrieval.features import LEXICAL_FEATURES, feature_tensors, is_header
from ehrqa.retrieval.relevance import LearnedRelevance, decide_row, fit_relevance
from ehrqa.train.aligner import gold_indices


def test_decision_rules_keep_what_they_say():
    row = np.array([0.9, 0.1, 0.5, 0.46, 0.2])
    assert decide_row(row, "threshold", 0.45, 1, None) == [0, 2, 3]
    assert decide_row(row, "relative", 0.5, 1, None) == [0, 2, 3]  # >= 0.45 = 0.5 x 0.9
    assert decide_row(row, "threshold", 0.99, 2, None) == [0, 2]  # min_links
    assert decide_row(row, "threshold", 0.0, 1, 2) == [0, 2]  # max_links
    assert decide_row(row, "fraction", 0.4, 1, None) == [0, 2]  # ceil(0.4 x 5) = 2
    assert decide_row(np.zeros(0), "threshold", 0.5, 1, None) == []


def test_fit_learns_the_informative_feature_and_a_working_rule():
    rng = np.random.default_rng(0)
    tensors, gold = [], []
    for _ in range(30):
        signal = rng.random((1, 10))
        noise = rng.random((1, 10))
        tensors.append(np.stack([noise, signal], axis=-1))
        gold.append([set(np.flatnonzero(signal[0] > 0.7).tolist())])
    model = fit_relevance(tensors, gold, ["a"] * 15 + ["b"] * 15, ["noise", "signal"])
    assert abs(model.coef[1]) > 5 * abs(model.coef[0])
    picked = model.select(model.probabilities(tensors[0]))[0]
    assert set(picked) >= gold[0][0]
    again = LearnedRelevance.from_dict(json.loads(json.dumps(model.to_dict())))
    np.testing.assert_allclose(again.probabilities(tensors[1]), model.probabilities(tensors[1]), atol=1e-5)


def test_unknown_rule_or_key_is_refused():
    base = LearnedRelevance(["a"], [0.0], [1.0], [1.0], 0.0).to_dict()
    with pytest.raises(ValueError, match="unknown rule"):
        LearnedRelevance.from_dict({**base, "rule": "vibes"})
    with pytest.raises(ValueError, match="unknown keys"):
        LearnedRelevance.from_dict({**base, "colour": 1})


def test_headers_are_recognised():
    assert is_header("CHIEF COMPLAINT") and is_header("Assessment and plan:")
    assert not is_header("Back pain.") and not is_header("He has a history of a discectomy.")


@pytest.fixture(scope="module")
def lexical_model(tmp_path_factory):
    cases = read_dataset()
    sections = {}
    for t in (2, 4):
        tensors = feature_tensors(t, [c.without_gold() for c in cases], names=LEXICAL_FEATURES)
        gold = [gold_indices(t, c) for c in cases]
        fitted = fit_relevance(tensors, gold, ["sample"] * len(cases), list(LEXICAL_FEATURES), folds=3)
        sections[str(t)] = fitted.to_dict()
    model = AlignerModel({"format": FORMAT, "components": {}, "subtasks": sections})
    directory = tmp_path_factory.mktemp("learned")
    model.save(directory)
    return AlignerModel.load(directory), cases


def test_learned_model_directory_round_trips_and_records_the_version(lexical_model):
    from ehrqa import __version__

    model, _ = lexical_model
    assert model.config["ehrqa_version"] == __version__ and model.kind(2) == "learned"


def test_learned_model_scores_and_selects_without_reading_gold(lexical_model):
    model, cases = lexical_model
    inputs = [c.without_gold() for c in cases]
    scores = model.sentence_scores(4, inputs)
    assert [s.shape for s in scores] == [(len(c.answer_sentences), len(c.sentences)) for c in cases]
    selected = model.select(4, inputs, scores)
    assert selected == model.select(4, cases)  # gold present or not: the same links
    for case, per_query in zip(cases, selected, strict=True):
        assert all(1 <= len(ids) and set(ids) <= set(case.sentence_ids) for ids in per_query)
    st2 = model.select(2, inputs)
    assert all(len(per_query) == 1 and per_query[0] for per_query in st2)
