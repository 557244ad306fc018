"""The evidence scorers and the ensemble maths (no neural models here)."""

from __future__ import annotations

import numpy as np
import pytest

from ehrqa.retrieval import build_scorer
from ehrqa.retrieval.bm25 import BM25Scorer, relative_selection
from ehrqa.retrieval.ensemble import EnsembleConfig, combine, normalise, select
from ehrqa.retrieval.tfidf import TfidfScorer
from ehrqa.retrieval.tokens import tokenize
from ehrqa.retrieval.tuning import ScoreTable, TuningGrid, cross_validate, make_folds, tune, weight_grid
from ehrqa.score.sets import Counts, micro

NOTE = [
    "Chest radiograph showed a left lower lobe consolidation.",
    "A chest tube was placed for a complicated parapneumonic effusion.",
    "He tolerated a regular diet.",
    "",
    "Blood cultures grew Streptococcus pneumoniae.",
]


def test_tokenize_drops_stop_words_and_stems():
    assert tokenize("The infections were treated") == tokenize("infection treat")
    assert "the" not in tokenize("the the the tube", stem=False)
    assert tokenize("", stem=True) == []


@pytest.mark.parametrize("variant", ["okapi", "bm25l", "bm25plus"])
def test_bm25_ranks_the_matching_sentence_first(variant):
    scores = BM25Scorer(variant=variant).score("why was a chest tube placed?", NOTE)
    assert scores.shape == (len(NOTE),)
    assert int(np.argmax(scores)) == 1
    assert scores[2] == pytest.approx(min(scores))


def test_bm25_rejects_unknown_variant_and_handles_empty_notes():
    with pytest.raises(ValueError, match="variant"):
        BM25Scorer(variant="bm26")
    assert BM25Scorer().score_matrix(["a question"], []).shape == (1, 0)


def test_relative_selection_keeps_scores_near_the_best():
    assert relative_selection(np.array([1.0, 5.0, 4.0, 0.0]), 0.75).tolist() == [1, 2]
    assert relative_selection(np.array([1.0, 5.0, 4.0, 0.0]), 1.0).tolist() == [1]
    assert relative_selection(np.zeros(3), 0.5).tolist() == []


def test_tfidf_cosine_is_one_for_the_same_text_and_zero_without_overlap():
    scores = TfidfScorer().score(NOTE[4], NOTE)
    assert scores[4] == pytest.approx(1.0)
    assert scores[2] == pytest.approx(0.0)
    both = TfidfScorer(fit="case+queries").score_matrix(["pneumoniae cultures", "diet"], NOTE)
    assert both.shape == (2, len(NOTE)) and both[0].argmax() == 4 and both[1].argmax() == 2


@pytest.mark.parametrize("fit", ["case", "case+queries"])
@pytest.mark.parametrize("sublinear_tf", [True, False])
def test_tfidf_weights_as_scikit_learn_does(fit, sublinear_tf):
    from sklearn.feature_extraction.text import TfidfVectorizer

    scorer = TfidfScorer(ngram_max=2, sublinear_tf=sublinear_tf, fit=fit)
    queries = ["Why was a chest tube placed?", "cultures cultures pneumoniae", "the of and"]
    sentences = [*NOTE, "Cultures were sent; cultures grew pneumoniae again."]
    documents = sentences + (queries if fit == "case+queries" else [])
    reference = TfidfVectorizer(analyzer=scorer._analyzer, sublinear_tf=sublinear_tf).fit(documents)
    expected = (reference.transform(queries) @ reference.transform(sentences).T).toarray()
    np.testing.assert_allclose(scorer.score_matrix(queries, sentences), expected, atol=1e-12)
    assert not scorer.score_matrix(["the of"], ["and the", ""]).any()  # nothing to weigh: all zero


def test_build_scorer_names_the_components():
    assert build_scorer("bm25", {"k1": 1.2}).k1 == 1.2
    with pytest.raises(ValueError, match="unknown evidence scorer"):
        build_scorer("splade")
    with pytest.raises(ValueError, match="model directory"):
        build_scorer("cross_encoder")


def test_normalise():
    assert normalise(np.array([2.0, 4.0, -1.0]), "max").tolist() == [0.5, 1.0, 0.0]
    assert normalise(np.array([2.0, 4.0, 0.0]), "minmax").tolist() == [0.5, 1.0, 0.0]
    assert normalise(np.array([np.nan, 3.0, 1.0]), "minmax").tolist() == [0.0, 1.0, 0.0]
    assert normalise(np.array([0.0, 0.0]), "max").tolist() == [0.0, 0.0]
    with pytest.raises(ValueError):
        normalise(np.ones(2), "zscore")


def test_select_threshold_min_and_max_links():
    scores = np.array([0.2, 0.9, 0.6, 0.7])
    assert select(scores, 0.65) == [1, 3]
    assert select(scores, 0.95, min_links=1) == [1]
    assert select(scores, 0.95, min_links=0) == []
    assert select(scores, 0.0, max_links=2) == [1, 3]


def test_combine_weights_normalised_scores():
    raw = {"a": [np.array([[1.0, 2.0]])], "b": [np.array([[4.0, 0.0]])]}
    config = EnsembleConfig(weights={"a": 3.0, "b": 1.0}, normalise={"a": "max", "b": "max"})
    assert combine(raw, config)[0].tolist() == [[(3 * 0.5 + 1) / 4, 3 / 4]]


def test_weight_grid_covers_the_simplex():
    grid = weight_grid(["a", "b", "c"], 0.5)
    assert len(grid) == 6
    assert all(sum(w.values()) == pytest.approx(1.0) for w in grid)
    assert {"a": 1.0, "b": 0.0, "c": 0.0} in grid


def _synthetic_table(n_cases=30, seed=0):
    """Per case one query over 10 sentences; 'good' ranks the 2 gold sentences first, 'noise' is random."""
    rng = np.random.default_rng(seed)
    raw = {"good": [], "noise": []}
    gold = []
    for _ in range(n_cases):
        g = set(rng.choice(10, 2, replace=False).tolist())
        good = rng.uniform(0, 0.5, 10)
        good[list(g)] = rng.uniform(0.8, 1.0, 2)
        raw["good"].append(good[None, :])
        raw["noise"].append(rng.uniform(0, 1, (1, 10)))
        gold.append([g])
    config = EnsembleConfig(weights={"good": 1, "noise": 1}, normalise={"good": "max", "noise": "max"})
    ids = [str(i) for i in range(n_cases)]
    return ScoreTable.build(raw, gold, config, ids), ids


def test_tune_finds_the_informative_scorer():
    table, _ = _synthetic_table()
    best = tune(table, TuningGrid(max_links=(1, 2, 3, None)))
    assert best["f1"] == pytest.approx(1.0)
    assert best["weights"]["good"] > best["weights"]["noise"]


def test_cross_validation_separates_signal_from_noise():
    table, ids = _synthetic_table()
    folds = make_folds(ids, 5)
    good = cross_validate(table, folds, TuningGrid(), ["good"])
    noise = cross_validate(table, folds, TuningGrid(), ["noise"])
    assert good["f1"] == pytest.approx(1.0)
    assert noise["f1"] < 0.6
    assert good["gold"] == 60


def test_folds_are_seeded_and_balanced():
    ids = [str(i) for i in range(23)]
    folds = make_folds(ids, 5, seed=3)
    assert folds == make_folds(list(reversed(ids)), 5, seed=3)
    sizes = np.bincount(list(folds.values()))
    assert sizes.max() - sizes.min() <= 1 and len(sizes) == 5


def test_micro_counts():  # as tuning's cross-validation pools them: nothing predicted of nothing is perfect
    assert micro([Counts(0, 0, 0)], both_empty_is_one=True) == (1.0, 1.0, 1.0)
    assert micro([Counts(0, 3, 0)], both_empty_is_one=True) == (0.0, 0.0, 0.0)
    p, r, f = micro([Counts(2, 4, 3)], both_empty_is_one=True)
    assert (p, r) == (0.5, 2 / 3) and f == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))


def test_encoder_dtype_follows_the_cpu_unless_forced(monkeypatch):
    from ehrqa.errors import DataError
    from ehrqa.retrieval import dense

    monkeypatch.delenv(dense.DTYPE_VARIABLE, raising=False)
    for fast, expected in ((True, "bf16"), (False, "fp32")):
        monkeypatch.setattr(dense, "fast_bf16_cpu", lambda fast=fast: fast)
        assert dense.encoder_dtype() == expected
        assert dense.encoder_dtype("fp32") == "fp32" and dense.encoder_dtype("bf16") == "bf16"
    monkeypatch.setenv(dense.DTYPE_VARIABLE, "BF16")
    assert dense.encoder_dtype() == "bf16"
    assert dense.encoder_dtype("fp32") == "fp32"  # an explicit choice beats the environment
    monkeypatch.setenv(dense.DTYPE_VARIABLE, "fp16")
    with pytest.raises(DataError, match="EHRQA_ENCODER_DTYPE=fp16: expected one of auto, bf16, fp32"):
        dense.encoder_dtype()


def test_fast_bf16_is_read_from_the_cpu_flags(tmp_path):
    from ehrqa.retrieval.dense import fast_bf16_cpu

    for name, flags, expected in (("amx", "fpu avx2 amx_bf16 amx_tile", True), ("avx2", "fpu avx2 avx512f", False)):
        (tmp_path / name).write_text(f"processor\t: 0\nflags\t\t: {flags}\n")
        assert fast_bf16_cpu(str(tmp_path / name)) is expected
    assert fast_bf16_cpu(str(tmp_path / "missing")) is False


def test_bf16_vectors_follow_fp32_and_leave_the_fp32_encoder_as_it_was():
    import torch

    from ehrqa.retrieval import dense

    texts = ["Blood pressure was 150/90 on admission.", "She was discharged home on aspirin.", "Pain."]
    fp32 = dense.encode(texts, dtype="fp32")
    bf16 = dense.encode(texts, dtype="bf16")
    for text in texts:
        assert float(fp32[text] @ bf16[text]) > 0.999  # unit vectors: their cosine
        assert not np.array_equal(fp32[text], bf16[text])  # bf16 did run
    weights = {p.dtype for p in dense.load_sentence_encoder(None).parameters()}
    assert weights == {torch.float32}  # the fp32 copy was not converted by the bf16 one
    again = dense.encode(texts, dtype="fp32")
    assert all(np.array_equal(fp32[t], again[t]) for t in texts)
