"""A static stand-in for the MiniLM encoder, for ``bench_heldout.py --encoder static``: does a
cheap encoder keep the held-out wins?

Every word piece of MiniLM's vocabulary is run through MiniLM once, alone between [CLS] and
[SEP], and its output vector kept (about 30 s on 2 cores, cached in
``$EHRQA_CACHE_DIR/bench-static``). A text's vector is then the weighted mean of its pieces'
vectors (the table centred; weight a / (a + p(piece)) with piece frequencies p counted on MedQuAD
answers, a = 1e-3), unit length. Encoding costs a tokeniser call and a sum: no forward pass.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

MEDQUAD = Path(__file__).resolve().parents[1] / "src" / "ehrqa" / "resources" / "corpora" / "medquad"
SMOOTHING = 1e-3


def piece_table(model_dir: str, out: Path) -> np.ndarray:
    """(vocabulary, dim) MiniLM output of each word piece alone; built once into ``out``."""
    if out.is_file():
        return np.load(out)
    import torch
    from transformers import AutoModel, AutoTokenizer

    tokenizer, model = AutoTokenizer.from_pretrained(model_dir), AutoModel.from_pretrained(model_dir).eval()
    ids = torch.arange(tokenizer.vocab_size)
    table = np.zeros((len(ids), model.config.hidden_size), np.float32)
    with torch.inference_mode():
        for start in range(0, len(ids), 1024):
            chunk = ids[start : start + 1024]
            cls, sep = torch.full_like(chunk, tokenizer.cls_token_id), torch.full_like(chunk, tokenizer.sep_token_id)
            x = torch.stack([cls, chunk, sep], 1)
            hidden = model(input_ids=x, attention_mask=torch.ones_like(x)).last_hidden_state
            table[start : start + len(chunk)] = hidden[:, 1].numpy()
    out.parent.mkdir(parents=True, exist_ok=True)
    np.save(out, table)
    return table


def piece_frequencies(tokenizer, answers: int = 5000) -> np.ndarray:
    """Relative frequency of each word piece in the first ``answers`` distinct MedQuAD answers."""
    with gzip.open(MEDQUAD / "medquad_answered.jsonl.gz", "rt", encoding="utf-8") as f:
        texts = list(dict.fromkeys(json.loads(line)["answer"] for line in f))[:answers]
    counts = np.ones(tokenizer.vocab_size)
    for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]:
        np.add.at(counts, ids, 1)
    return counts / counts.sum()


class StaticEncoder:
    """Same ``encode(texts) -> {text: unit vector}`` as :class:`ehrqa.retrieval.features.Encoder`."""

    def __init__(self) -> None:
        from transformers import AutoTokenizer

        from ehrqa.cache import cache_dir
        from ehrqa.retrieval.dense import resolve_model

        path = resolve_model(None)
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        table = piece_table(path, cache_dir() / "bench-static" / "pieces.npy")
        self.table = (table - table.mean(axis=0)).astype(np.float32)
        frequency = piece_frequencies(self.tokenizer)
        self.weight = SMOOTHING / (SMOOTHING + frequency)

    def encode(self, texts: Sequence[str], role: str = "document") -> dict[str, np.ndarray]:
        unique = list(dict.fromkeys(texts))
        pieces = self.tokenizer(unique, add_special_tokens=False, truncation=True, max_length=512)["input_ids"]
        out = {}
        for text, ids in zip(unique, pieces, strict=True):
            v = (self.table[ids] * self.weight[ids, None]).sum(axis=0) if ids else np.zeros(self.table.shape[1])
            norm = np.linalg.norm(v)
            out[text] = (v / norm if norm > 0 else v).astype(np.float32)
        return out
