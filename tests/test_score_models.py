"""Model-based metrics: BERTScore (official path and stand-in), AlignScore nli_sp, MEDCON.

Official weights and a UMLS index are not available offline, so the official code paths run
on tiny random models and a tiny UMLS-format index built here; the stand-ins run for real.
"""

from __future__ import annotations

import csv
import shutil

import pytest

from ehrqa.data.case import Case
from ehrqa.score import Resources, score, score_submission
from ehrqa.score import alignscore as al
from ehrqa.score import bertscore as bs
from ehrqa.score import medcon as mc

torch = pytest.importorskip("torch")

# ---------------------------------------------------------------- AlignScore algorithm


def _words_scorer(pairs):
    """A stand-in for the model: P(aligned) = share of the sentence's words found in the chunk."""
    out = []
    for chunk, sentence in pairs:
        words = sentence.lower().replace(".", "").split()
        out.append(sum(w in chunk.lower().replace(".", "").split() for w in words) / len(words))
    return out


def _split(text: str) -> list[str]:
    return [s.strip() + "." for s in text.split(".") if s.strip()]


def test_context_chunks_follow_the_350_word_rule():
    short = "One two three. Four five. Six."
    assert al.context_chunks(short, _split) == ["One two three. Four five. Six."]
    # 20 sentences of 40 words = 800 words: 800 // 350 + 1 = 3 chunks wanted, so 20 // 3 = 6
    # sentences per chunk, which gives 4 chunks (6, 6, 6, 2), as the original does
    sentences = [" ".join(f"s{i}w{j}" for j in range(40)) + "." for i in range(20)]
    chunks = al.context_chunks(" ".join(sentences), _split)
    assert [c.count(".") for c in chunks] == [6, 6, 6, 2]
    assert al.context_chunks("", _split) == [""]


def test_nli_sp_max_over_chunks_mean_over_claim_sentences():
    first = " ".join(f"a{j}" for j in range(200)) + "."
    second = " ".join(f"b{j}" for j in range(200)) + "."
    context = f"{first} {second}"  # 400 words, 2 sentences -> 2 chunks of one sentence
    claim = "a1 a2 b3 b4. a5 zz. qq."
    # sentence 1: 2/4 in each chunk -> 0.5; sentence 2: 1/2 in chunk 1 -> 0.5; sentence 3: 0
    assert al.nli_sp(context, claim, _words_scorer, _split) == pytest.approx((0.5 + 0.5 + 0.0) / 3)
    assert al.nli_sp(context, "a1 a2. b1.", _words_scorer, _split) == 1.0


@pytest.fixture(scope="module")
def tiny_alignscore(tmp_path_factory):
    """A random roberta-like AlignScore checkpoint with its own small BPE tokenizer."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import RobertaConfig, RobertaTokenizerFast

    d = tmp_path_factory.mktemp("roberta")
    texts = ["The patient had a fever and pneumonia.", "A chest tube drained fluid.", "Troponin rose."] * 20
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(
        texts, vocab_size=300, min_frequency=1, special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    )
    bpe.save_model(str(d))
    tok = RobertaTokenizerFast(vocab_file=str(d / "vocab.json"), merges_file=str(d / "merges.txt"), model_max_length=64)
    tok.save_pretrained(d)
    config = RobertaConfig(
        vocab_size=tok.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=66,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
    )
    config.save_pretrained(d)
    torch.manual_seed(0)
    model = al.AlignModel(config).eval()
    state = {f"base_model.{k}": v for k, v in model.base_model.state_dict().items()}
    state.update({f"tri_layer.{k}": v for k, v in model.tri_layer.state_dict().items()})
    state["bin_layer.weight"] = torch.zeros(2, 32)  # other heads of the original model are ignored
    ckpt = d / "AlignScore-tiny.ckpt"
    torch.save({"state_dict": state, "hyper_parameters": {"model": "roberta-base"}}, ckpt)
    return model, tok, ckpt, d


def test_alignscore_checkpoint_loads_and_scores(tiny_alignscore):
    model, tok, ckpt, roberta_dir = tiny_alignscore
    scorer = al.AlignScorer.from_checkpoint(ckpt, roberta_dir)
    pairs = [("The patient had a fever.", "He had pneumonia."), ("A chest tube drained fluid.", "Troponin rose.")]
    enc = tok(
        [p for p, _ in pairs],
        [h for _, h in pairs],
        truncation="only_first",
        padding="max_length",
        max_length=64,
        return_tensors="pt",
    )
    with torch.no_grad():
        expected = model(enc["input_ids"], enc["attention_mask"])
    assert torch.equal(scorer.pair_probabilities(pairs), expected)  # the checkpoint's weights, not random ones
    context = " ".join(["The patient had a fever and pneumonia."] * 60)  # 420 words: 2 chunks, truncated
    claim = "A chest tube drained fluid. Troponin rose."
    assert scorer.score(context, claim) == pytest.approx(al.nli_sp(context, claim, scorer.pair_probabilities))
    assert 0.0 < scorer.score(context, claim) < 1.0


def test_alignscore_unavailable_without_checkpoint():
    cases = [Case(id="1", narrative="Why?", answer="He had pneumonia.")]
    got = score_submission(3, [{"case_id": "1", "prediction": "Pneumonia."}], cases, metrics="alignscore,bleu")
    assert "alignscore" not in got and "--alignscore-ckpt" in got["unavailable"]["alignscore"]
    assert got["overall_partial_metrics"] == ["bleu"]


# ---------------------------------------------------------------- BERTScore


@pytest.fixture(scope="module")
def tiny_distilbert(tmp_path_factory):
    """A random distilbert-shaped model with the real uncased BERT vocabulary (MiniLM's)."""
    from transformers import DistilBertConfig, DistilBertModel

    d = tmp_path_factory.mktemp("distilbert")
    torch.manual_seed(0)
    config = DistilBertConfig(vocab_size=30522, dim=32, n_layers=6, n_heads=2, hidden_dim=64)
    DistilBertModel(config).save_pretrained(d)
    for name in ("vocab.txt", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.json"):
        shutil.copy(bs.minilm_dir() / name, d / name)
    return d


def test_bertscore_official_layer_4_and_bundled_baseline(tiny_distilbert):
    from bert_score import BERTScorer

    preds, refs = ["he had a heart attack.", "no fever"], ["your father had a small heart attack.", "fever"]
    metric = bs.official(tiny_distilbert)
    got = metric.values(preds, refs)
    assert got.key == "bertscore" and got.official
    assert "L4" in got.signature and "rescaled" in got.signature
    raw = BERTScorer(model_type=str(tiny_distilbert), num_layers=4, lang="en", device="cpu")
    raw_f = raw.score(preds, refs)[2]
    with open(bs.baseline_file(), newline="") as f:
        row = [r for r in csv.DictReader(f) if r["LAYER"] == "4"][0]
    b = torch.tensor(float(row["F"]), dtype=torch.float32)
    assert got.values == ((raw_f - b) / (1 - b)).tolist()  # rescaled exactly as bert-score does
    assert len(bs._scorer(str(tiny_distilbert), 4, str(bs.baseline_file()))._model.transformer.layer) == 4


def test_bertscore_official_rejects_other_models():
    from ehrqa.errors import DataError

    with pytest.raises(DataError, match="distilbert"):
        bs.official(bs.minilm_dir())


def test_bertscore_proxy_is_labelled():
    cases = [
        Case(id="1", narrative="Why?", answer="He had a small heart attack."),
        Case(id="2", narrative="Why?", answer="The fever came from pneumonia."),
    ]
    entries = [
        {"case_id": "1", "prediction": "He had a small heart attack."},
        {"case_id": "2", "prediction": "Troponin levels were checked."},
    ]
    result = score(3, entries, cases, metrics="bertscore,sari")
    assert "bertscore" not in result.scores and "overall_score" not in result.scores
    assert result.scores["overall_partial_metrics"] == ["sari", "bertscore_proxy"]
    first, second = (r["bertscore_proxy"] for r in result.per_case)
    assert first == pytest.approx(100.0, abs=1e-4) and second < first
    assert "all-MiniLM-L6-v2" in result.signature
    got = score_submission(3, entries, cases, metrics="bertscore", resources=Resources(proxies=False))
    assert "bertscore_proxy" not in got and "bertscore-model" in got["unavailable"]["bertscore"]


# ---------------------------------------------------------------- MEDCON


def test_medcon_semantic_types():
    assert len(mc.MEDCON_SEMTYPES) == 66
    assert {g: len(t) for g, t in mc.SEMANTIC_GROUPS.items()} == {
        "ANAT": 11,
        "CHEM": 20,
        "DEVI": 3,
        "DISO": 12,
        "GENE": 5,
        "PHEN": 6,
        "PHYS": 9,
    }
    assert "T061" not in mc.MEDCON_SEMTYPES and "T060" not in mc.MEDCON_SEMTYPES  # procedures excluded
    assert {"T047", "T184", "T121", "T023"} <= mc.MEDCON_SEMTYPES


def test_medcon_case_f1_by_hand():
    pred = {"chest pain": {"C1"}, "fever": {"C2"}, "aspirin": {"C9"}}
    ref = {"thoracic pain": {"C1"}, "pyrexia": {"C2", "C3"}, "cough": {"C4"}, "dyspnea": {"C5"}}
    # 2 of 4 reference terms matched by CUI: P = 2/3, R = 2/4
    assert mc.case_f1(pred, ref) == 2 * (2 / 3) * 0.5 / (2 / 3 + 0.5)
    assert mc.case_f1({}, ref) == 0.0 and mc.case_f1(pred, {}) == 0.0 and mc.case_f1({}, {}) == 0.0


@pytest.fixture(scope="module")
def tiny_umls_index(tmp_path_factory):
    rows = [
        ("chest pain", "C0008031", ["T184"], 1),
        ("thoracic pain", "C0008031", ["T184"], 0),
        ("fever", "C0015967", ["T184"], 1),
        ("aspirin", "C0004057", ["T109", "T121"], 1),
        ("chest x-ray", "C0039985", ["T060"], 1),  # a diagnostic procedure: outside the MEDCON types
    ]
    return mc.build_index(rows, tmp_path_factory.mktemp("umls") / "index")


def test_medcon_official_index_settings(tiny_umls_index):
    metric = mc.Medcon(tiny_umls_index, official=True)
    found = metric.concepts("Thoracic pain and FEVER; a chest x-ray was done. Aspirin given.")
    assert found == {"thoracic pain": {"C0008031"}, "fever": {"C0015967"}, "aspirin": {"C0004057"}}
    got = metric.values(["He had chest pain."], ["Thoracic pain with fever."])
    assert got.key == "medcon" and got.values == [2 * 1.0 * 0.5 / 1.5]  # P 1/1, R 1/2
    assert "w5-t1-jaccard-sty66" in got.signature


def test_all_official_resources_give_overall_score(tiny_umls_index, tiny_distilbert, tiny_alignscore):
    _, _, ckpt, roberta_dir = tiny_alignscore
    cases = [Case(id="5", narrative="Why did he need a tube?", answer="He had chest pain and fever.")]
    resources = Resources(
        bertscore_model=str(tiny_distilbert),
        alignscore_ckpt=str(ckpt),
        alignscore_model=str(roberta_dir),
        quickumls_index=str(tiny_umls_index),
    )
    got = score_submission(3, [{"case_id": "5", "prediction": "Chest pain and fever."}], cases, resources=resources)
    names = ["bleu", "rougeLsum", "sari", "bertscore", "alignscore", "medcon"]
    assert "overall_partial" not in got
    assert got["overall_score"] == pytest.approx(sum(got[n] for n in names) / 6, rel=1e-12)
    assert got["medcon"] == 100.0


def test_medcon_proxy_index_finds_real_cuis():
    metric = mc.Medcon(mc.proxy_index(), official=False)  # built once, cached under ~/.cache/ehrqa
    found = metric.concepts("Chest pain, type 2 diabetes and hypertension treated with metformin.")
    assert "C0008031" in found["chest pain"] and "C0011860" in found["type 2 diabetes"]
    assert "C0020538" in found["hypertension"] and "metformin" in found
    cases = [Case(id="1", narrative="Why?", answer="Chest pain and fever.")]
    got = score_submission(3, [{"case_id": "1", "prediction": "He had chest pain."}], cases, metrics="medcon")
    assert "medcon" not in got and got["medcon_proxy"] == 2 * 1.0 * 0.5 / 1.5 * 100
    assert "index:proxy-v1" in got["signature"]
