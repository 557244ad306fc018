"""ST4 alignment and ST2 identification: predictors, gold independence, training, model
directories and the commands."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from ehrqa.cli import main
from ehrqa.data.archehr import read_dataset, sample_dir
from ehrqa.data.case import AnswerSentence
from ehrqa.data.submission import build_submission, read_submission
from ehrqa.retrieval.aligner import DEFAULT_MODEL_DIR, AlignerModel
from ehrqa.retrieval.cross_encoder import CONFIG_NAME, WEIGHTS_NAME
from ehrqa.retrieval.features import st2_query
from ehrqa.tasks import align, identify
from ehrqa.train.aligner import load_recipe, train_aligner, training_pairs
from ehrqa.train.cross_encoder import CrossEncoderSettings, save_cross_encoder, train_cross_encoder

LEXICAL = {
    "use": ["bm25", "tfidf"],
    "components": {"bm25": {"variant": "okapi", "k1": 1.5, "b": 0.75}, "tfidf": {"ngram_max": 2}},
    "tuning": {"folds": 3, "weight_step": 0.25, "threshold_step": 0.05},
}

RECIPES = Path(__file__).resolve().parents[1] / "recipes"


def _align(cases, model=None):
    """ST4 through the task interface, with an aligner model object or directory."""
    return align.predict(cases, align.AlignConfig(aligner=model))


def _identify(cases, model=None):
    return identify.predict(cases, identify.IdentifyConfig(aligner=model))


@pytest.fixture(scope="session")
def cases():
    return read_dataset()


@pytest.fixture(scope="session")
def lexical_model(cases, tmp_path_factory):
    return train_aligner(cases, LEXICAL, tmp_path_factory.mktemp("lexical"))


def _scramble_gold(case):
    """The same case with every gold field changed: all sentences essential, every citation to sentence 1."""
    first = case.sentences[0].id
    answer_sentences = tuple(AnswerSentence(a.id, a.text, (first,)) for a in case.answer_sentences)
    relevance = tuple((s.id, "essential") for s in case.sentences)
    return replace(case, relevance=relevance, answer="changed", answer_sentences=answer_sentences)


def _check_st4(predictions, cases, max_links):
    entries = build_submission(4, predictions, cases)
    for case, entry in zip(cases, entries, strict=True):
        assert [a["answer_id"] for a in entry["prediction"]] == [a.id for a in case.answer_sentences]
        for a in entry["prediction"]:
            assert 1 <= len(a["evidence_id"]) <= (max_links or len(case.sentences))
            assert set(a["evidence_id"]) <= set(case.sentence_ids)


def test_align_predictions_are_valid_and_ignore_gold(cases, lexical_model):
    predictions = _align(cases, lexical_model)
    _check_st4(predictions, cases, lexical_model.ensemble(4).max_links)
    assert _align([_scramble_gold(c) for c in cases], lexical_model) == predictions
    assert _align([c.input_for(4) for c in cases], lexical_model) == predictions


def test_identify_predictions_are_valid_and_ignore_gold(cases, lexical_model):
    predictions = _identify(cases, lexical_model)
    build_submission(2, predictions, cases)
    assert all(predictions[c.id] and set(predictions[c.id]) <= set(c.sentence_ids) for c in cases)
    assert _identify([_scramble_gold(c) for c in cases], lexical_model) == predictions


def _micro_f1(pred_pairs, gold_pairs):
    tp = len(pred_pairs & gold_pairs)
    return 2 * tp / (len(pred_pairs) + len(gold_pairs))


def test_alignment_beats_random_links(cases, lexical_model):
    predictions = _align(cases, lexical_model)
    rng = np.random.default_rng(0)
    ours = random = 0.0
    pred, rand, gold = set(), set(), set()
    for case in cases:
        gold |= {(case.id, *p) for p in case.citation_pairs}
        for a in predictions[case.id]:
            pred |= {(case.id, a["answer_id"], e) for e in a["evidence_id"]}
            k = len(a["evidence_id"])
            rand |= {(case.id, a["answer_id"], e) for e in rng.choice(case.sentence_ids, k, replace=False)}
    ours, random = _micro_f1(pred, gold), _micro_f1(rand, gold)
    assert ours > random + 0.2


def test_trained_model_records_its_tuning(lexical_model, tmp_path):
    config = json.loads((lexical_model.path / CONFIG_NAME).read_text())
    assert set(config["subtasks"]) == {"2", "4"}
    for section in config["subtasks"].values():
        assert sum(section["weights"].values()) == pytest.approx(1.0)
        assert 0.0 <= section["threshold"] <= 1.0
        assert 0.0 <= section["cv"]["f1"] <= 1.0
    assert not (lexical_model.path / WEIGHTS_NAME).exists()  # no cross-encoder in this recipe
    reloaded = AlignerModel.load(lexical_model.path)
    assert reloaded.config == lexical_model.config


def test_st2_query_falls_back_to_the_patient_question(cases):
    case = cases[0]
    assert st2_query(case) == case.clinician_question
    assert st2_query(replace(case, clinician_question=None)) == case.patient_question
    assert case.patient_question in st2_query(case, "clinician+patient")


def test_both_combiners_read_their_section_query_and_options_through_the_same_features(cases):
    """A section is features -> combiner -> rule whatever its combiner: the query mode and the
    scorer options reach the weighted (recipe) sections and the logistic (learned) ones alike."""
    import copy

    from ehrqa.retrieval.features import feature_tensors

    inputs = [c.input_for(2) for c in cases[:4]]
    assert any(c.patient_question != c.clinician_question for c in inputs)

    def scores(config: dict, query: str, **options) -> list[np.ndarray]:
        config = copy.deepcopy(config)
        config["subtasks"]["2"]["query"] = query
        config["components"] = config.get("components", {}) | options
        return AlignerModel(config).sentence_scores(2, inputs)

    weighted = copy.deepcopy(AlignerModel.load("aligner-lexical").config)
    weighted["subtasks"]["2"]["weights"] = {"bm25": 1.0}
    got = scores(weighted, "patient", bm25={"k1": 0.3})
    combiner = AlignerModel(weighted).combiner(2)
    tensors = feature_tensors(2, inputs, None, combiner.features, query="patient", components={"bm25": {"k1": 0.3}})
    for matrix, tensor in zip(got, tensors, strict=True):
        np.testing.assert_array_equal(matrix, combiner.scores(tensor))
    assert any(not np.allclose(a, b) for a, b in zip(got, scores(weighted, "patient"), strict=True))  # k1 is read
    learned = AlignerModel.load(None).config
    asked = [scores(learned, query) for query in ("clinician", "patient")]
    assert any(not np.allclose(a, b) for a, b in zip(*asked, strict=True))  # the learned section reads its query


def test_a_loaded_model_scores_the_same_input_once(cases, monkeypatch):
    """sentence_scores remembers what it computed: the same official input again (here the case with
    its gold) computes no features; another case, or the other subtask, does. The arrays returned are
    copies: changing one changes no later result. Only the most recent REMEMBERED_SCORES are kept."""
    from ehrqa.retrieval import aligner

    computed = []  # (subtask, case id) of every case whose features were computed
    feature_tensors = aligner.feature_tensors

    def counted(subtask, inputs, *args, **kwargs):
        computed.extend((subtask, c.id) for c in inputs)
        return feature_tensors(subtask, inputs, *args, **kwargs)

    monkeypatch.setattr(aligner, "feature_tensors", counted)
    model = AlignerModel.load("aligner-lexical")
    first, second = cases[0], cases[1]
    assert first.has_key  # its gold is not part of the ST2 input
    scores = model.sentence_scores(2, [first.input_for(2)])
    assert computed == [(2, first.id)]
    again = model.sentence_scores(2, [first])
    assert computed == [(2, first.id)]  # remembered
    np.testing.assert_array_equal(again[0], scores[0])
    model.sentence_scores(2, [first, second])
    model.sentence_scores(4, [first])
    assert computed == [(2, first.id), (2, second.id), (4, first.id)]  # only what was new

    again[0][:] = -1.0  # a caller changing its copy
    later = model.sentence_scores(2, [first])[0]
    fresh = AlignerModel.load("aligner-lexical").sentence_scores(2, [first])[0]
    np.testing.assert_array_equal(later, scores[0])
    np.testing.assert_array_equal(later, fresh)
    assert later.max() > -1.0

    monkeypatch.setattr(aligner, "REMEMBERED_SCORES", 1)
    computed.clear()
    for case in (first, second, first):
        model.sentence_scores(2, [case])
    assert computed == [(2, second.id), (2, first.id)]  # the second pushed the first out


def test_training_needs_gold(cases, tmp_path):
    with pytest.raises(ValueError, match="no training cases with gold"):
        train_aligner([c.input_for(4) for c in cases], LEXICAL, tmp_path)
    with pytest.raises(ValueError, match="unknown components"):
        train_aligner(cases, {**LEXICAL, "use": ["bm25", "colbert"]}, tmp_path)


def test_training_pairs_follow_the_labels(cases):
    case = cases[0]
    st2 = training_pairs([case], 2, "clinician")
    assert len(st2) == len(case.sentences)
    assert sum(label for _, _, label in st2) == len(case.essential_ids)
    st4 = training_pairs([case], 4, "answer")
    assert len(st4) == len(case.sentences) * len(case.answer_sentences)
    assert sum(label for _, _, label in st4) == len(case.citation_pairs)


@pytest.fixture(scope="session")
def tiny_cross_encoder(cases, tmp_path_factory):
    """A cross-encoder trained for one short epoch with only the top layer unfrozen, in a model directory."""
    settings = CrossEncoderSettings(trained_layers=1, epochs=1, max_length=64, batch_size=16)
    pairs = training_pairs(cases[:6], 2, "clinician") + training_pairs(cases[:6], 4, "answer")
    model = train_cross_encoder(pairs, settings)
    directory = tmp_path_factory.mktemp("ce")
    section = save_cross_encoder(model, settings, directory)
    config = {
        "format": "ehrqa-aligner/1",
        "components": {"cross_encoder": {}, "bm25": {}, "tfidf": {}},
        "cross_encoder": section,
        "subtasks": {
            "4": {
                "weights": {"bm25": 0.5, "tfidf": 0.0, "cross_encoder": 0.5},
                "threshold": 0.5,
                "max_links": 3,
                "rerank_top": 4,
                "query": "answer",
            },
            "2": {"weights": {"cross_encoder": 1.0}, "threshold": 0.5, "query": "clinician"},
        },
    }
    AlignerModel(config, directory).save(directory)
    return model, directory


@pytest.mark.slow
def test_cached_lower_layers_give_the_full_models_scores(tiny_cross_encoder, cases):
    from ehrqa.retrieval.cross_encoder import CrossEncoderScorer
    from ehrqa.train.cross_encoder import FrozenFeatures

    model, _ = tiny_cross_encoder
    pairs = [(a.text, s.text) for a in cases[8].answer_sentences for s in cases[8].sentences][:40]
    features = FrozenFeatures(model, CrossEncoderSettings(trained_layers=1, max_length=64))
    cached = features.score(model.model, pairs)
    np.testing.assert_allclose(cached, CrossEncoderScorer(model).score_pairs(pairs), atol=1e-4)
    assert len(features.states) == len(set(pairs))


@pytest.mark.slow
def test_cross_encoder_directory_stores_only_trained_tensors(tiny_cross_encoder, cases):
    from safetensors import safe_open

    from ehrqa.retrieval.cross_encoder import CrossEncoderScorer

    model, directory = tiny_cross_encoder
    with safe_open(str(directory / WEIGHTS_NAME), "pt") as f:
        names = list(f.keys())
    assert names and all(n.startswith(("bert.encoder.layer.5.", "bert.pooler.", "classifier.")) for n in names)
    assert (directory / WEIGHTS_NAME).stat().st_size < 5_000_000
    pairs = [(cases[7].clinician_question, s.text) for s in cases[7].sentences]
    in_memory = CrossEncoderScorer(model).score_pairs(pairs)
    reloaded = CrossEncoderScorer.from_model_dir(directory).score_pairs(pairs)
    np.testing.assert_allclose(reloaded, in_memory, atol=0.05)  # fp16 storage
    assert np.corrcoef(reloaded, in_memory)[0, 1] > 0.99


@pytest.mark.slow
def test_cross_encoder_reranks_only_candidates(tiny_cross_encoder, cases):
    _, directory = tiny_cross_encoder
    model = AlignerModel.load(directory)
    subset = cases[6:9]
    predictions = _align(subset, model)
    _check_st4(predictions, subset, 3)
    config = model.ensemble(4)
    from ehrqa.retrieval.features import feature_tensors

    inputs = [c.input_for(4) for c in subset]
    tensors = feature_tensors(
        4,
        inputs,
        None,
        config.features,
        components=model.config["components"],
        model_dir=directory,
        rerank=config.rerank,
    )
    cross = [t[..., config.features.index("cross_encoder")] for t in tensors]
    scored = [np.sum(~np.isnan(m), axis=1) for m in cross]
    assert all((n == min(4, m.shape[1])).all() for n, m in zip(scored, cross, strict=True))
    assert _identify(subset, model) == _identify([_scramble_gold(c) for c in subset], model)


@pytest.mark.model
def test_default_model_is_shipped_and_aligns_the_sample(cases):
    model = AlignerModel.load()
    assert model.path == DEFAULT_MODEL_DIR
    assert model.kind(2) == model.kind(4) == "learned"
    for path in DEFAULT_MODEL_DIR.iterdir():
        assert path.stat().st_size < 20_000_000
    predictions = _align(cases)
    _check_st4(predictions, cases, model.learned(4).max_links)
    lexical = AlignerModel.load("aligner-lexical")  # a shipped model by name
    assert lexical.kind(4) == "ensemble" and lexical.path == DEFAULT_MODEL_DIR.parent / "aligner-lexical"
    assert _identify(cases[:3]) == _identify([_scramble_gold(c) for c in cases[:3]])


def test_recipe_files_have_an_aligner_section(tmp_path):
    recipe = load_recipe(RECIPES / "qu-nlp.yaml")
    assert {"bm25", "tfidf", "cross_encoder"} <= set(recipe["use"])
    (tmp_path / "r.yaml").write_text("generator: {}\n")
    with pytest.raises(ValueError, match="aligner"):
        load_recipe(tmp_path / "r.yaml")


def test_commands_write_valid_submissions(tmp_path, lexical_model, cases):
    model_dir = str(lexical_model.path)
    assert (
        main(["align", "--data", str(sample_dir()), "--aligner", model_dir, "--out", str(tmp_path / "st4.json")]) == 0
    )
    entries = read_submission(tmp_path / "st4.zip")
    assert [e["case_id"] for e in entries] == [c.id for c in cases]
    assert {e["case_id"]: e["prediction"] for e in entries} == _align(cases, lexical_model)
    out2 = tmp_path / "st2.json"
    assert (
        main(["identify", "--xml", str(sample_dir() / "archehr-qa.xml"), "--aligner", model_dir, "--out", str(out2)])
        == 0
    )
    assert {e["case_id"]: e["prediction"] for e in read_submission(out2)} == _identify(cases, lexical_model)


def test_align_command_needs_answer_sentences(tmp_path, capsys):
    code = main(["align", "--xml", str(sample_dir() / "archehr-qa.xml"), "--out", str(tmp_path / "x.json")])
    assert code == 2
    assert "clinician_answer_sentences" in capsys.readouterr().err


def test_train_command_writes_a_usable_model(tmp_path):
    out = tmp_path / "model"
    code = main(["train", "aligner", "--components", "bm25,tfidf", "--folds", "2", "--subtask", "4", "--out", str(out)])
    assert code == 0
    model = AlignerModel.load(out)
    assert set(model.config["subtasks"]) == {"4"}
    with pytest.raises(ValueError, match="nothing for subtask 2"):
        _identify(read_dataset()[:1], model)


def test_cases_without_note_sentences_get_no_evidence(cases, lexical_model):
    empty = replace(cases[0], id="999", sentences=(), relevance=None).input_for(4)
    assert _identify([empty], lexical_model) == {"999": []}
    links = _align([empty], lexical_model)["999"]
    assert [a["answer_id"] for a in links] == [a.id for a in cases[0].answer_sentences]
    assert all(a["evidence_id"] == [] for a in links)


def test_medquad_weak_pairs_are_seeded_and_labelled():
    from ehrqa.train.cross_encoder import balance, medquad_pairs

    pairs = medquad_pairs(30, seed=5)
    assert pairs == medquad_pairs(30, seed=5) and len(pairs) == 30
    labels = [label for _, _, label in pairs]
    assert set(labels) == {0.0, 1.0} and sum(labels) >= 10
    by_question: dict[str, list] = {}
    for question, sentence, label in pairs:
        by_question.setdefault(question, []).append((sentence, label))
    assert any(len(v) == 2 and {lab for _, lab in v} == {0.0, 1.0} for v in by_question.values())
    kept = balance(pairs + [(q, s, 0.0) for q, s, _ in pairs], 1.0, seed=0)
    assert sum(1 for p in kept if p[2] > 0) == sum(labels)
    assert sum(1 for p in kept if p[2] <= 0) == sum(labels)


@pytest.mark.slow
def test_train_aligner_with_a_cross_encoder_end_to_end(cases, tmp_path):
    recipe = {
        "use": ["bm25", "tfidf", "cross_encoder"],
        "cross_encoder_training": {"trained_layers": 1, "epochs": 1, "max_length": 64},
        "subtasks": {"4": {"query": "answer", "rerank_top": 3, "max_links": [1, 2, 3]}},
        "tuning": {"folds": 2, "weight_step": 0.5, "threshold_step": 0.1},
    }
    model = train_aligner(cases[:6], recipe, tmp_path, subtasks=[4])
    assert (tmp_path / WEIGHTS_NAME).is_file() and model.config["cross_encoder"]["trained_layers"] == 1
    assert model.ensemble(4).rerank_top == 3 and 0 <= model.config["subtasks"]["4"]["cv"]["f1"] <= 1
    reloaded = AlignerModel.load(tmp_path)
    held_out = cases[6:9]
    predictions = _align(held_out, reloaded)
    _check_st4(predictions, held_out, 3)
    assert _align([_scramble_gold(c) for c in held_out], reloaded) == predictions


def test_aligner_recipes_refuse_unknown_keys_and_wrong_types(tmp_path):
    from ehrqa.errors import DataError

    (tmp_path / "typo.yaml").write_text("aligner:\n  uses: [bm25]\n")
    with pytest.raises(DataError, match="aligner.uses: unknown key"):
        load_recipe(tmp_path / "typo.yaml")
    (tmp_path / "type.yaml").write_text("aligner:\n  use: bm25\n")
    with pytest.raises(DataError, match="aligner.use: expected a list"):
        load_recipe(tmp_path / "type.yaml")
    for name in ("aligner-lexical.yaml", "aligner-dense.yaml", "qu-nlp.yaml"):
        assert load_recipe(RECIPES / name)["use"]


@pytest.mark.model
def test_train_learned_on_your_cases_records_a_rule_the_scorer_agrees_with(tmp_path, capsys):
    from ehrqa.score import score_predictions

    out = tmp_path / "learned"
    code = main(["train", "aligner", "--learned", "--no-bundled", "--data", str(sample_dir()), "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    model = AlignerModel.load(out)
    assert {model.kind(2), model.kind(4)} == {"learned"}
    assert model.config["training"]["sources"] == {"2": ["yours"], "4": ["yours"]}
    cases = read_dataset()
    for subtask, predict, key in ((2, _identify, "strict_micro_f1"), (4, _align, "micro_f1")):
        predictions = predict([c.input_for(subtask) for c in cases], model)
        recorded = 100 * model.section(subtask)["record"]["rule_mean_source_f1"]
        assert score_predictions(subtask, predictions, cases)[key] == pytest.approx(recorded, abs=0.01)


def test_train_learned_refuses_ensemble_flags_and_needs_cases_without_the_bundle(tmp_path, capsys):
    assert main(["train", "aligner", "--learned", "--folds", "3", "--out", str(tmp_path / "a")]) == 2
    assert "--learned takes no --folds" in capsys.readouterr().err
    assert main(["train", "aligner", "--learned", "--no-bundled", "--out", str(tmp_path / "b")]) == 2
    assert "needs your cases" in capsys.readouterr().err
    assert main(["train", "aligner", "--no-bundled", "--out", str(tmp_path / "c")]) == 2
    assert "goes with --learned" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_shipped_sources_add_yours_to_both_subtasks_and_refuse_a_taken_name():
    from ehrqa.train.aligner import shipped_sources

    own = read_dataset()[:2]
    sources = shipped_sources(own)
    assert sorted(sources[2]) == ["aci_dev", "mediqa_dev", "sample", "yours"]
    assert sorted(sources[4]) == ["aci_dev", "check_covid", "sample", "yours"]
    assert sources[4]["yours"] == own
    with pytest.raises(ValueError, match="already called 'sample'"):
        shipped_sources(own, name="sample")


@pytest.mark.parametrize(
    ("damage", "fragments"),
    [
        (lambda text: text.replace('"threshold": ', '"treshold": ', 1), ["aligner.subtasks.2.treshold: unknown key"]),
        (lambda text: text.replace('"subtasks"', '"subtask"', 1), ["aligner.subtask: unknown key"]),
        (lambda text: text[: len(text) // 2], ["not valid JSON (line"]),
        (lambda text: text.replace('"rule": "', '"rule": "x', 1), ["aligner.subtasks.2.rule: expected one of"]),
        (
            lambda text: re.sub(r'"fill": \w+', '"fill": "no"', text, count=1),
            ["extractive.fill: expected true or false"],
        ),
    ],
)
def test_a_damaged_aligner_file_is_one_line_naming_the_key(tmp_path, capsys, damage, fragments):
    model_dir = tmp_path / "damaged"
    model_dir.mkdir()
    original = (DEFAULT_MODEL_DIR / CONFIG_NAME).read_text()
    (model_dir / CONFIG_NAME).write_text(damage(original))
    out = tmp_path / "st2.json"
    code = main(["identify", "--data", str(sample_dir()), "--aligner", str(model_dir), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err, err
    assert len(err.splitlines()) == 1 and err.startswith("ehrqa: error: "), err
    assert str(model_dir / CONFIG_NAME) in err
    for fragment in fragments:
        assert fragment in err, (fragment, err)
    assert not out.exists()


@pytest.mark.model
@pytest.mark.parametrize("base_model", [None, "aligner-lexical"], ids=["logistic", "weighted"])
def test_calibrate_keeps_the_weights_and_chooses_the_rule_on_your_cases(tmp_path, capsys, base_model):
    from ehrqa.score import score_predictions

    out = tmp_path / "calibrated"
    chosen_model = ["--aligner", base_model] if base_model else []
    arguments = ["--data", str(sample_dir()), "--subtask", "2,4", "--out", str(out)]
    code = main(["train", "aligner", "--calibrate", *chosen_model, *arguments])
    assert code == 0, capsys.readouterr().err
    base, model = AlignerModel.load(base_model), AlignerModel.load(out)
    assert model.config["training"]["calibrated"]["subtasks"] == ["2", "4"]
    cases = read_dataset()
    for subtask, predict, key in ((2, _identify, "strict_micro_f1"), (4, _align, "micro_f1")):
        learned = base.kind(subtask) == "learned"
        assert model.kind(subtask) == base.kind(subtask)
        combiner = ("features", "mean", "scale", "coef", "intercept") if learned else ("weights", "normalise")
        for kept in (*combiner, "query"):
            assert model.section(subtask).get(kept) == base.section(subtask).get(kept)
        predictions = predict([c.input_for(subtask) for c in cases], model)
        chosen = 100 * model.section(subtask)["record" if learned else "cv"]["rule_mean_source_f1"]
        assert score_predictions(subtask, predictions, cases)[key] == pytest.approx(chosen, abs=0.01)
        shipped = score_predictions(subtask, predict([c.input_for(subtask) for c in cases], base), cases)[key]
        assert chosen >= shipped - 0.01  # chosen on these very cases: never worse on them
    assert model.config.get("extractive") == base.config.get("extractive")


@pytest.mark.model
def test_calibrate_keeps_the_st4_rule_unless_asked(tmp_path, capsys):
    out = tmp_path / "calibrated"
    assert main(["train", "aligner", "--calibrate", "--data", str(sample_dir()), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    base, model = AlignerModel.load(None), AlignerModel.load(out)
    assert model.config["training"]["calibrated"]["subtasks"] == ["2"]
    assert model.section(4) == base.section(4)
    rule = base.combiner(4).decision_rule
    assert f"ST4: rule {rule.rule} {rule.threshold} max_links {rule.max_links} kept" in printed
    assert "ST2: rule" in printed and "(chosen on them)" in printed


def test_calibrate_refuses_training_flags_and_needs_cases(tmp_path, capsys):
    assert main(["train", "aligner", "--calibrate", "--out", str(tmp_path / "a")]) == 2
    assert "--calibrate needs your annotated cases" in capsys.readouterr().err
    assert main(["train", "aligner", "--calibrate", "--learned", "--out", str(tmp_path / "b")]) == 2
    assert "--calibrate takes no --learned" in capsys.readouterr().err
    assert main(["train", "aligner", "--aligner", "aligner-lexical", "--out", str(tmp_path / "c")]) == 2
    assert "--aligner goes with --calibrate" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def _assert_same(got, want, where: str) -> None:
    """Equal data, numbers to 1e-3 (the encoder's last bits differ between CPUs)."""
    if isinstance(want, dict):
        assert isinstance(got, dict) and got.keys() == want.keys(), where
        for key in want:
            _assert_same(got[key], want[key], f"{where}.{key}")
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), where
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            _assert_same(g, w, f"{where}[{i}]")
    elif isinstance(want, float) and not isinstance(got, bool):
        assert got == pytest.approx(want, abs=1e-3), where
    else:
        assert got == want, where


def test_train_aligner_recipe_writes_exactly_the_shipped_lexical_aligner(tmp_path, capsys):
    """The weighted combiner's recipe trains through the same features: the shipped aligner-lexical
    is what `ehrqa train aligner --recipe recipes/aligner-lexical.yaml` writes from the sample."""
    shipped = AlignerModel.load("aligner-lexical").config
    out = tmp_path / "lexical"
    code = main(["train", "aligner", "--recipe", str(RECIPES / "aligner-lexical.yaml"), "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    got = AlignerModel.load(out).config
    assert got["components"] == shipped["components"] and got["subtasks"] == shipped["subtasks"]
    del got["training"]["seconds"], shipped["training"]["seconds"]
    assert got["training"] == shipped["training"]


@pytest.mark.slow
def test_train_aligner_learned_writes_exactly_what_ships(tmp_path, monkeypatch, capsys):
    shipped = AlignerModel.load(None).config
    monkeypatch.setenv("EHRQA_ENCODER_DTYPE", shipped["training"]["encoder_dtype"])
    out = tmp_path / "retrained"
    assert main(["train", "aligner", "--learned", "--out", str(out)]) == 0, capsys.readouterr().err
    got = AlignerModel.load(out).config
    assert got.keys() == shipped.keys()
    for section in ("format", "components", "subtasks", "extractive"):
        _assert_same(got[section], shipped[section], section)
    del got["training"]["seconds"], shipped["training"]["seconds"]
    assert got["training"] == shipped["training"]
