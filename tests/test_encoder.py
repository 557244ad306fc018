"""The taught encoder (ehrqa.train.encoder): examples from gold only, the frozen-layer shortcut
equal to MiniLM's own pipeline, a training step that learns, cross-fitting that never lets a source
see itself, and an aligner that ships and calibrates with its encoder."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ehrqa.data.case import AnswerSentence, Case, NoteSentence
from ehrqa.errors import DataError

pytestmark = pytest.mark.model


def _case(case_id: str, question: str, sentences: list[str], essential: list[int], answers=()) -> Case:
    return Case(
        id=case_id,
        narrative="I was in hospital and want to know what happened.",
        clinician_question=question,
        sentences=tuple(NoteSentence(str(j + 1), t) for j, t in enumerate(sentences)),
        relevance=tuple((str(j + 1), "essential" if j in essential else "not-relevant") for j in range(len(sentences))),
        answer_sentences=tuple(answers) or None,
    )


NOTE = [
    "Chest X-ray showed a right lower lobe pneumonia.",
    "She was started on intravenous ceftriaxone.",
    "Her daughter visited on Tuesday.",
    "The cafeteria menu was reviewed with the family.",
]


def test_evidence_triples_pair_each_gold_link_with_a_non_evidence_sentence_of_the_same_note():
    from ehrqa.train.aligner import evidence_triples

    case = _case("1", "Why was she given antibiotics?", NOTE, [0, 1])
    triples = evidence_triples(2, [case])
    assert [(q, p) for q, p, _ in triples] == [
        ("Why was she given antibiotics?", NOTE[0]),
        (case.clinician_question, NOTE[1]),
    ]
    assert all(n in NOTE[2:] for _, _, n in triples)
    cited = _case("2", "q", NOTE, [0], [AnswerSentence("1", "She had pneumonia.", ("1",))])
    assert [(q, p) for q, p, _ in evidence_triples(4, [cited])] == [("She had pneumonia.", NOTE[0])]
    unlabelled = _case("3", "q", NOTE, [])
    assert evidence_triples(4, [unlabelled]) == []  # no citations: nothing to learn from


def test_frozen_lower_layers_plus_top_layers_equal_minilms_own_vectors():
    from ehrqa.retrieval.dense import encode
    from ehrqa.train.encoder import LowerStates, TunedVectors

    texts = [*NOTE, "Why was she given antibiotics?", "ok"]
    states = LowerStates(trained_layers=2)
    ours = TunedVectors(states, states.base).encode(texts)
    theirs = encode(texts)
    for text in texts:
        assert float(ours[text] @ theirs[text]) > 0.9999


def test_teaching_pulls_a_query_towards_its_evidence_and_ships_what_it_scored_with(tmp_path):
    from ehrqa.retrieval.features import Encoder
    from ehrqa.train.encoder import EncoderSettings, LowerStates, TunedVectors, save_encoder, train_encoder

    query, positive, negative = "Why was she given antibiotics?", NOTE[1], NOTE[3]
    triples = [(query, positive, negative), ("What did the X-ray show?", NOTE[0], NOTE[2])] * 8
    states = LowerStates(trained_layers=2)
    before = TunedVectors(states, states.base).encode([query, positive, negative])
    settings = EncoderSettings(batch_size=2, epochs=3, learning_rate=1e-4)
    network, tensors = train_encoder(triples, states, settings)
    after = TunedVectors(states, network).encode([query, positive, negative])
    margin = lambda v: float(v[query] @ v[positive] - v[query] @ v[negative])  # noqa: E731
    assert margin(after) > margin(before)
    assert all(name.startswith(("encoder.layer.4.", "encoder.layer.5.")) for name in tensors)
    assert {str(t.dtype) for t in tensors.values()} == {"torch.float16"}
    section = save_encoder(tensors, settings, tmp_path, {"triples": {"toy": len(triples)}})
    shipped = Encoder(tuned=tmp_path / section["tuned"]).encode([query, positive])
    for text in (query, positive):  # the production loader gives the vectors training scored with
        assert float(shipped[text] @ after[text]) > 0.9999


def test_cross_fitting_never_encodes_a_source_with_an_encoder_taught_on_it():
    from ehrqa.train.encoder import CrossFitted, EncoderSettings

    triples = {
        "a": [("Why antibiotics?", NOTE[1], NOTE[2])] * 2,
        "b": [("What did the X-ray show?", NOTE[0], NOTE[3])] * 2,
        "c": [],
    }
    family = CrossFitted(triples, EncoderSettings(batch_size=2))
    per = family.per_source(["a", "b", "c"])
    assert per["a"] is family.vectors(["b"]) and per["b"] is family.vectors(["a"])
    assert per["c"] is family.vectors(["a", "b"])  # a source with no triples: taught on the others
    assert set(family.tensors) == {frozenset("a"), frozenset("b"), frozenset("ab")}
    assert family.vectors([]).network is family.states.base  # no source: MiniLM as shipped


def test_an_aligner_with_a_taught_encoder_loads_it_carries_it_when_calibrated_and_names_it_when_missing(tmp_path):
    from ehrqa.retrieval.aligner import AlignerModel
    from ehrqa.retrieval.dense import TUNED_NAME
    from ehrqa.train.aligner import calibrate_aligner
    from ehrqa.train.encoder import EncoderSettings, LowerStates, save_encoder, train_encoder

    states = LowerStates(trained_layers=2)
    _, tensors = train_encoder([("Why antibiotics?", NOTE[1], NOTE[2])] * 2, states, EncoderSettings(batch_size=2))
    model_dir = tmp_path / "taught"
    shipped = AlignerModel.load(None).config
    config = {**shipped, "components": {"dense": save_encoder(tensors, EncoderSettings(), model_dir, {})}}
    AlignerModel(config, model_dir).save(model_dir)
    model = AlignerModel.load(model_dir)
    assert model.encoder().tuned == str(model_dir / TUNED_NAME)
    cases = [_case(str(i), "Why was she given antibiotics?", NOTE, [1]) for i in range(3)]
    untaught = AlignerModel.load(None).sentence_scores(2, cases)
    taught = model.sentence_scores(2, cases)
    assert not np.allclose(untaught[0], taught[0])  # the taught layers are in use
    calibrated = calibrate_aligner(model, cases, tmp_path / "calibrated", subtasks=(2,))
    assert (tmp_path / "calibrated" / TUNED_NAME).read_bytes() == (model_dir / TUNED_NAME).read_bytes()
    assert np.allclose(AlignerModel.load(calibrated.path).sentence_scores(2, cases)[0], taught[0])
    (model_dir / TUNED_NAME).unlink()
    with pytest.raises(DataError, match="taught encoder, encoder.safetensors, that is not there"):
        AlignerModel.load(model_dir).sentence_scores(2, cases)
    saved = json.loads((model_dir / "aligner.json").read_text())
    assert saved["components"]["dense"]["training"]["hard_negatives"] is True


def test_train_aligner_teach_encoder_ships_the_taught_layers_and_refuses_it_without_learned(tmp_path, capsys):
    from ehrqa.cli import main
    from ehrqa.data.archehr import read_dataset, sample_dir
    from ehrqa.retrieval.aligner import AlignerModel
    from ehrqa.retrieval.dense import TUNED_NAME

    assert main(["train", "aligner", "--teach-encoder", "--out", str(tmp_path / "a")]) == 2
    assert "--teach-encoder goes with --learned" in capsys.readouterr().err
    out = tmp_path / "taught"
    argv = ["train", "aligner", "--learned", "--no-bundled", "--teach-encoder", "--data", str(sample_dir())]
    assert main([*argv, "--out", str(out)]) == 0, capsys.readouterr().err
    model = AlignerModel.load(out)
    dense = model.config["components"]["dense"]
    assert dense["tuned"] == TUNED_NAME and (out / TUNED_NAME).is_file()
    assert (
        dense["training"]["triples"] == {"yours": dense["training"]["triples"]["yours"]}
        and dense["training"]["triples"]["yours"] > 0
    )
    assert model.config["training"]["command"].endswith("--teach-encoder")
    cases = [c.input_for(4) for c in read_dataset()]
    picked = model.select(4, cases)
    assert [len(p) for p in picked] == [len(c.answer_sentences) for c in cases]
