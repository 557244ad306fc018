"""The learned relevance model: decision rules, fitting, the model-directory section and features."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from ehrqa.data.archehr import read_dataset
from ehrqa.retrieval.aligner import FORMAT, AlignerModel
from ehrqa.retrieval.features import FEATURES, LEXICAL_FEATURES, feature_tensors, is_header
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
        tensors = feature_tensors(t, [c.input_for(t) for c in cases], names=LEXICAL_FEATURES)
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
    inputs = [c.input_for(4) for c in cases]
    scores = model.sentence_scores(4, inputs)
    assert [s.shape for s in scores] == [(len(c.answer_sentences), len(c.sentences)) for c in cases]
    selected = model.select(4, inputs, scores)
    assert selected == model.select(4, cases)  # gold present or not: the same links
    for case, per_query in zip(cases, selected, strict=True):
        assert all(1 <= len(ids) and set(ids) <= set(case.sentence_ids) for ids in per_query)
    st2 = model.select(2, inputs)
    assert all(len(per_query) == 1 and per_query[0] for per_query in st2)


# ---------------------------------------------------------------------------------------------
# Robust features, the BM25 blend, rule choices, bundled training data


class HashEncoder:
    """Deterministic unit vectors per text (stands in for MiniLM: no model load)."""

    def encode(self, texts, role="document"):
        out = {}
        for t in texts:
            seed = int(hashlib.sha1(t.encode()).hexdigest()[:8], 16)
            v = np.random.default_rng(seed).normal(size=8)
            out[t] = v / np.linalg.norm(v)
        return out


def test_new_features_are_what_they_say():
    from ehrqa.retrieval.features import ROBUST_FEATURES

    case = read_dataset()[0].input_for(4)
    encoder = HashEncoder()
    names = ["dense", "dense_z", "neighbour_dense", "narrative_dense", "tfidf_any", "tfidf_raw"]
    (tensor,) = feature_tensors(2, [case], encoder, names)
    dense, z, neighbour, narrative, any_overlap, raw = (tensor[0, :, i] for i in range(len(names)))
    np.testing.assert_allclose(z.mean(), 0.0, atol=1e-9)
    np.testing.assert_allclose(z.std(), 1.0, atol=1e-6)
    assert neighbour[0] == max(dense.min(), dense[1]) and neighbour[-1] == max(dense[-2], dense.min())
    j = len(dense) // 2
    assert neighbour[j] == max(dense[j - 1], dense[j + 1])
    vectors = encoder.encode([case.narrative] + [s.text for s in case.sentences])
    expected = [float(vectors[s.text] @ vectors[case.narrative]) for s in case.sentences]
    np.testing.assert_allclose(narrative, expected, atol=1e-9)
    assert set(np.unique(any_overlap)) <= {0.0, 1.0} and np.array_equal(any_overlap > 0, raw > 0)
    assert set(ROBUST_FEATURES) <= set(FEATURES)


def test_blend_is_relative_to_each_rows_best_and_the_flat_form_agrees():
    from ehrqa.retrieval.relevance import blend_scores

    p = np.array([[0.2, 0.4, 0.1], [0.9, 0.3, 0.6]])
    bm25 = np.array([[1.0, 0.0, 0.5], [0.0, 1.0, 0.2]])
    mixed = blend_scores(p, bm25, 0.5)
    np.testing.assert_allclose(mixed, 0.5 * p / p.max(axis=1, keepdims=True) + 0.5 * bm25)
    flat = blend_scores(p.reshape(-1), bm25.reshape(-1), 0.5, row=np.repeat([0, 1], 3))
    np.testing.assert_allclose(flat, mixed.reshape(-1))
    np.testing.assert_allclose(blend_scores(p, bm25, 0.0), bm25)


def test_fit_respects_the_rule_and_blend_choices():
    rng = np.random.default_rng(1)
    tensors, gold = [], []
    for _ in range(24):
        bm25 = rng.random((2, 8))
        tensors.append(np.stack([bm25, rng.random((2, 8))], axis=-1))
        gold.append([set(np.flatnonzero(row > 0.75).tolist()) or {int(row.argmax())} for row in bm25])
    names = ["bm25", "noise"]
    sources = ["a"] * 12 + ["b"] * 12
    model = fit_relevance(tensors, gold, sources, names, rules=("relative",), blends=(0.0, 1.0), rule_folds="none")
    assert model.rule == "relative" and model.blend in (0.0, 1.0)
    assert model.record["rule_chosen_on"] == "in-sample probabilities"
    scores = model.scores(tensors[0])
    if model.blend == 0.0:  # blend 0: the rule reads relative BM25 itself
        np.testing.assert_allclose(scores, tensors[0][..., 0])
    again = LearnedRelevance.from_dict(json.loads(json.dumps(model.to_dict())))
    np.testing.assert_allclose(again.scores(tensors[1]), model.scores(tensors[1]), atol=1e-5)
    with pytest.raises(ValueError, match="rule_folds"):
        fit_relevance(tensors, gold, sources, names, rule_folds="sometimes")
    with pytest.raises(ValueError, match="unknown rules"):
        fit_relevance(tensors, gold, sources, names, rules=("vibes",))
    with pytest.raises(ValueError, match="bm25"):
        fit_relevance([t[..., 1:] for t in tensors], gold, sources, ["noise"], blends=(0.5,))


def test_bundled_training_data_loads_with_gold():
    from ehrqa.train.aligner import CHECK_COVID, check_covid_cases, trainable, training_sources

    sources = training_sources()
    assert {n: len(cs) for n, cs in sources.items()} == {"aci_dev": 24, "mediqa_dev": 80, "sample": 14}
    assert all(trainable(2, c) and trainable(4, c) for c in sources["aci_dev"])
    covid = check_covid_cases(CHECK_COVID)
    assert len(covid) > 300 and all(trainable(4, c) for c in covid)
    for directory in ("aci_dev", "check_covid"):
        bundled = CHECK_COVID.parent / directory
        assert (bundled / "README.md").is_file() and (bundled / "LICENSE.txt").is_file()


def test_shipped_learned_model_records_its_training():
    model = AlignerModel.load(None)  # the shipped default is the learned model
    training = model.config["training"]
    assert training["sources"] == {"2": ["aci_dev", "mediqa_dev", "sample"], "4": ["aci_dev", "check_covid", "sample"]}
    assert training["command"] == "ehrqa train aligner --learned" and training["encoder_dtype"] in ("fp32", "bf16")
    assert model.learned(2).rule == "threshold" and model.learned(4).blend is not None
    assert set(model.config["extractive"]) >= {"fill", "bm25_blend"}


def test_calibration_offers_a_bm25_blend_only_to_a_combiner_that_reads_bm25():
    from ehrqa.train.aligner import BLEND_WEIGHTS, calibration_candidates

    def combiner(features):
        n = len(features)
        return LearnedRelevance(features, [0.0] * n, [1.0] * n, [1.0] * n, 0.0, rule="relative", threshold=0.5)

    with_bm25 = calibration_candidates(combiner(["dense", "bm25"]), 4, "rule")
    without = calibration_candidates(combiner(["dense", "dense_z"]), 4, "rule")
    assert with_bm25["blends"] == BLEND_WEIGHTS
    assert without["blends"] == (None,)
    assert without["rules"] == with_bm25["rules"] and len(without["rules"]) > 1
