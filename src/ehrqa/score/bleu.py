"""Sentence BLEU as the official ST3 scorer computes it.

The formula is tensorflow-nmt's ``compute_bleu`` (the one behind HF ``evaluate``'s ``bleu``):
max order 4, no smoothing, one reference, case-sensitive, on sacreBLEU's "13a" tokens.
Any order with zero matches gives 0, so every answer under 4 tokens scores 0.
The float operations are kept in the same order as the original so results match bit for bit.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

from ehrqa.score.metric import Resources, TextMetric, package_version, register

MAX_ORDER = 4


@cache
def _tokenizer():
    from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a

    return Tokenizer13a()


def tokenize_13a(text: str) -> list[str]:
    """sacreBLEU's 13a tokenizer: joins "-\\n", drops ``<skipped>``, unescapes ``&amp;`` etc."""
    return _tokenizer()(text).split()


def _ngrams(tokens: list[str], max_order: int) -> Counter:
    counts: Counter = Counter()
    for order in range(1, max_order + 1):
        for i in range(len(tokens) - order + 1):
            counts[tuple(tokens[i : i + order])] += 1
    return counts


def sentence_bleu(prediction: str, reference: str, max_order: int = MAX_ORDER) -> float:
    """BLEU in [0, 1] of one prediction against one reference."""
    hyp = tokenize_13a(prediction)
    ref = tokenize_13a(reference)
    overlap = _ngrams(hyp, max_order) & _ngrams(ref, max_order)
    matches = [0] * max_order
    for ngram, n in overlap.items():
        matches[len(ngram) - 1] += n
    precisions = [0.0] * max_order
    for i in range(max_order):
        possible = len(hyp) - i
        if possible > 0:
            precisions[i] = float(matches[i]) / possible
    if min(precisions) > 0:
        geo_mean = math.exp(sum((1.0 / max_order) * math.log(p) for p in precisions))
    else:
        geo_mean = 0
    if not hyp or not ref:
        # The original divides by zero here; with no tokens there is nothing to match.
        return 0.0
    ratio = float(len(hyp)) / len(ref)
    bp = 1.0 if ratio > 1.0 else math.exp(1 - 1.0 / ratio)
    return float(geo_mean * bp)


@dataclass(frozen=True)
class Bleu(TextMetric):
    """The official ST3 BLEU, per case."""

    max_order: int = MAX_ORDER
    key = "bleu"

    def per_case(self, predictions: Sequence[str], references: Sequence[str], sources: Sequence[str]) -> list[float]:
        return [sentence_bleu(p, r, self.max_order) for p, r in zip(predictions, references, strict=True)]

    def signature(self) -> str:
        return f"tfnmt-max{self.max_order}-nosmooth-cased-tok13a-sacrebleu{package_version('sacrebleu')}"


@register("bleu")
def _build(resources: Resources) -> list[TextMetric]:
    return [Bleu()]
