"""nomic-embed-text-v1.5 as the dense features' encoder: reading its GGUF out of a split zip, the
forward pass (on a tiny random nomic-bert GGUF), the role prefixes, and training an aligner on it."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest

from ehrqa.errors import DataError
from ehrqa.retrieval.nomic import PREFIXES, read_split_member

pytestmark = pytest.mark.model


def test_a_member_is_read_out_of_the_last_parts_of_a_split_zip(tmp_path):
    member = np.random.default_rng(0).bytes(50_000)  # incompressible: spans several parts
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("before.bin", np.random.default_rng(1).bytes(30_000))
        archive.writestr("app/model.gguf", member)
        archive.writestr("after.txt", "x" * 100)
    data, size = buffer.getvalue(), 9_000
    first = 30_000 // size  # the first part holding the member's header, not the archive's start
    paths = []
    for n, start in enumerate(range(first * size, len(data), size)):
        paths.append(tmp_path / f"archive.zip.{n:03d}")
        paths[-1].write_bytes(data[start : start + size])
    assert read_split_member(paths, first * size, "app/model.gguf") == member
    with pytest.raises(DataError, match="not in the archive"):
        read_split_member(paths, first * size, "app/other.gguf")
    with pytest.raises(DataError, match="does not start in the parts"):
        read_split_member(paths[2:], (first + 2) * size, "app/model.gguf")


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory):
    """A nomic-bert GGUF with random weights: 2 blocks, width 32, 4 heads, BERT's vocabulary."""
    import gguf

    rng = np.random.default_rng(0)
    width, ffn, vocab = 32, 64, 30522
    path = tmp_path_factory.mktemp("nomic") / "tiny-nomic.gguf"
    writer = gguf.GGUFWriter(str(path), "nomic-bert")
    writer.add_block_count(2)
    writer.add_context_length(512)
    writer.add_embedding_length(width)
    writer.add_feed_forward_length(ffn)
    writer.add_head_count(4)
    writer.add_layer_norm_eps(1e-12)
    writer.add_rope_freq_base(1000.0)

    def tensor(name, *shape, scale=0.2):
        writer.add_tensor(name, (rng.standard_normal(shape) * scale).astype(np.float32))

    tensor("token_embd.weight", vocab, width, scale=1.0)
    tensor("token_types.weight", 2, width)
    writer.add_tensor("token_embd_norm.weight", np.ones(width, np.float32))
    writer.add_tensor("token_embd_norm.bias", np.zeros(width, np.float32))
    for i in range(2):
        tensor(f"blk.{i}.attn_qkv.weight", 3 * width, width)
        tensor(f"blk.{i}.attn_output.weight", width, width)
        tensor(f"blk.{i}.ffn_up.weight", ffn, width)
        tensor(f"blk.{i}.ffn_gate.weight", ffn, width)
        tensor(f"blk.{i}.ffn_down.weight", width, ffn)
        for norm in ("attn_output_norm", "layer_output_norm"):
            writer.add_tensor(f"blk.{i}.{norm}.weight", np.ones(width, np.float32))
            writer.add_tensor(f"blk.{i}.{norm}.bias", np.zeros(width, np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_the_forward_pass_pools_only_real_tokens_and_knows_word_order(tiny_gguf):
    from ehrqa.retrieval.dense import minilm_dir
    from ehrqa.retrieval.nomic import NomicEncoder

    model = NomicEncoder(tiny_gguf, tokenizer=minilm_dir())
    short, long = "the patient was discharged", "the patient was admitted for chest pain and stayed three days"
    alone = model.encode([short]).numpy()
    batched = model.encode([long, short]).numpy()  # the short text padded to the long one's length
    np.testing.assert_allclose(batched[1], alone[0], atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(batched, axis=1), 1.0, atol=1e-5)
    # rotary positions are its only notion of order: without them these two would be equal
    swapped = model.encode(["discharged was patient the"]).numpy()
    assert float(alone[0] @ swapped[0]) < 0.9999


def test_bf16_holds_the_block_matrices_in_bf16_and_follows_fp32(tiny_gguf):
    import torch

    from ehrqa.retrieval import dense

    texts = ["the patient was discharged", "chest pain resolved after two days"]
    fp32 = dense.encode(texts, str(tiny_gguf), dtype="fp32")
    bf16 = dense.encode(texts, str(tiny_gguf), dtype="bf16")
    for text in texts:
        assert float(fp32[text] @ bf16[text]) > 0.99
        assert not np.array_equal(fp32[text], bf16[text])
    weights = dense.load_sentence_encoder(str(tiny_gguf), dtype="bf16").weights
    assert weights["blk.0.ffn_up.weight"].dtype == torch.bfloat16
    assert weights["blk.0.attn_output_norm.weight"].dtype == torch.float32  # norms stay fp32
    assert {w.dtype for w in dense.load_sentence_encoder(str(tiny_gguf)).weights.values()} == {torch.float32}


def test_the_encoder_prefixes_each_text_by_role(tiny_gguf, monkeypatch):
    from ehrqa.retrieval.dense import DTYPE_VARIABLE, load_sentence_encoder
    from ehrqa.retrieval.features import Encoder

    monkeypatch.setenv(DTYPE_VARIABLE, "fp32")  # the network below runs in fp32, on any CPU
    encoder = Encoder(str(tiny_gguf))
    text = "Was the patient given antibiotics?"
    query = encoder.encode([text], role="query")[text]
    document = encoder.encode([text], role="document")[text]
    network = load_sentence_encoder(str(tiny_gguf))
    expected = network.encode([PREFIXES["query"] + text, PREFIXES["document"] + text]).numpy()
    np.testing.assert_allclose(query, expected[0], atol=1e-6)
    np.testing.assert_allclose(document, expected[1], atol=1e-6)
    assert not np.allclose(query, document)
    with pytest.raises(DataError, match="for sentence-transformers encoders"):
        load_sentence_encoder(str(tiny_gguf), tuned=str(tiny_gguf))


def test_an_aligner_trained_on_nomic_vectors_records_and_reloads_its_encoder(tiny_gguf, tmp_path):
    from ehrqa.data.archehr import read_dataset
    from ehrqa.retrieval.aligner import load_model
    from ehrqa.train.aligner import train_default_kind

    cases = read_dataset()
    model = train_default_kind(tmp_path / "aligner", cases, bundled=False, subtasks=(4,), dense_model=str(tiny_gguf))
    config = json.loads((tmp_path / "aligner" / "aligner.json").read_text())
    assert config["components"]["dense"]["model"] == str(tiny_gguf)
    assert config["training"]["command"].endswith(f"--dense-model {tiny_gguf}")
    again = load_model(tmp_path / "aligner")
    case = next(c for c in cases if c.answer_sentences)
    assert again.encoder().model == str(tiny_gguf)
    np.testing.assert_allclose(again.sentence_scores(4, [case])[0], model.sentence_scores(4, [case])[0])


def test_the_shipped_nomic_aligner_without_its_wheels_is_one_line(tmp_path, monkeypatch, capsys):
    import ehrqa.llm.models
    from ehrqa.cli import main
    from ehrqa.retrieval.aligner import load_model

    model = load_model("aligner-nomic")
    assert model.config["components"]["dense"]["model"] == "nomic-embed-text-v1.5"
    assert model.config["training"]["command"] == "ehrqa train aligner --learned --dense-model nomic-embed-text-v1.5"

    def not_installed(name):
        raise FileNotFoundError(name)

    monkeypatch.setenv("EHRQA_CACHE_DIR", str(tmp_path / "cache"))  # no GGUF read out before
    monkeypatch.setattr(ehrqa.llm.models, "package_dir", not_installed)
    out = tmp_path / "st2.json"
    code = main(["identify", "--aligner", "aligner-nomic", "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert code != 0 and not out.exists()
    assert len(err.splitlines()) == 1 and "requirements-nomic.txt" in err, err
    assert not (tmp_path / "cache" / "models" / "nomic-embed-text-v1.5").exists()  # nothing half-built
