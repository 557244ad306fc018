"""ROUGE exactly as ``rouge-score`` 0.1.2 computes it with ``use_stemmer=False``, written for
ehrqa so that scoring does not pay for importing nltk (2 s); tests check it against the library.

Tokens: lowercase, anything outside a-z0-9 is a separator (so "Méthimazole" is two tokens).
ROUGE-N and ROUGE-L are F-measures over the whole text; ROUGE-Lsum splits both texts into
sentences on "\\n" only and scores the summary-level union LCS, so a single-line answer has
ROUGE-Lsum == ROUGE-L.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ehrqa.score.metric import Resources, TextMetric, register

ROUGE_SCORE_VERSION = "0.1.2"  # the semantics reproduced here

_NON_ALPHANUM = re.compile(r"[^a-z0-9]+")
_SPACES = re.compile(r"\s+")
_VALID_TOKEN = re.compile(r"^[a-z0-9]+$")


def tokenize(text: str) -> list[str]:
    text = _NON_ALPHANUM.sub(" ", text.lower())
    return [t for t in _SPACES.split(text) if _VALID_TOKEN.match(t)]


def _fmeasure(precision: float, recall: float) -> float:
    if precision + recall > 0:
        return 2 * precision * recall / (precision + recall)
    return 0.0


def _ngrams(tokens: list[str], n: int) -> Counter:
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def _rouge_n(target: list[str], prediction: list[str], n: int) -> float:
    t, p = _ngrams(target, n), _ngrams(prediction, n)
    overlap = 0
    for g in t:
        overlap += min(t[g], p[g])
    precision = overlap / max(sum(p.values()), 1)
    recall = overlap / max(sum(t.values()), 1)
    return _fmeasure(precision, recall)


def _lcs_table(ref: list[str], can: list[str]) -> list[list[int]]:
    table = [[0] * (len(can) + 1) for _ in range(len(ref) + 1)]
    for i in range(1, len(ref) + 1):
        row, prev = table[i], table[i - 1]
        r = ref[i - 1]
        for j in range(1, len(can) + 1):
            if r == can[j - 1]:
                row[j] = prev[j - 1] + 1
            else:
                row[j] = max(prev[j], row[j - 1])
    return table


def _rouge_l(target: list[str], prediction: list[str]) -> float:
    if not target or not prediction:
        return 0.0
    lcs = _lcs_table(target, prediction)[-1][-1]
    return _fmeasure(lcs / len(prediction), lcs / len(target))


def _lcs_indices(ref: list[str], can: list[str]) -> list[int]:
    """Indices into ``ref`` of one LCS, backtracking the way rouge-score does."""
    table = _lcs_table(ref, can)
    i, j = len(ref), len(can)
    out: list[int] = []
    while i > 0 and j > 0:
        if ref[i - 1] == can[j - 1]:
            out.append(i - 1)
            i -= 1
            j -= 1
        elif table[i][j - 1] > table[i - 1][j]:
            j -= 1
        else:
            i -= 1
    return out[::-1]


def _rouge_lsum(target_sents: list[list[str]], prediction_sents: list[list[str]]) -> float:
    if not target_sents or not prediction_sents:
        return 0.0
    m = sum(map(len, target_sents))
    n = sum(map(len, prediction_sents))
    if not n or not m:
        return 0.0
    # token budgets so that a token is not counted twice
    budget_t: Counter = Counter()
    budget_p: Counter = Counter()
    for s in target_sents:
        budget_t.update(s)
    for s in prediction_sents:
        budget_p.update(s)
    hits = 0
    for ref in target_sents:
        union = sorted(set().union(*(_lcs_indices(ref, c) for c in prediction_sents)))
        for t in (ref[i] for i in union):
            if budget_p[t] > 0 and budget_t[t] > 0:
                hits += 1
                budget_p[t] -= 1
                budget_t[t] -= 1
    return _fmeasure(hits / n, hits / m)


def _sentences(text: str) -> list[list[str]]:
    return [tokenize(s) for s in text.split("\n") if len(s)]


# each variant as a function of (prediction, reference); the target is the reference
_VARIANTS: dict[str, Callable[[str, str], float]] = {
    "rouge1": lambda p, r: _rouge_n(tokenize(r), tokenize(p), 1),
    "rouge2": lambda p, r: _rouge_n(tokenize(r), tokenize(p), 2),
    "rougeL": lambda p, r: _rouge_l(tokenize(r), tokenize(p)),
    "rougeLsum": lambda p, r: _rouge_lsum(_sentences(r), _sentences(p)),
}
ROUGE_TYPES = tuple(_VARIANTS)


def sentence_rouge(prediction: str, reference: str) -> dict[str, float]:
    """F-measures in [0, 1] for rouge1, rouge2, rougeL and rougeLsum (target = reference)."""
    return {key: score(prediction, reference) for key, score in _VARIANTS.items()}


@dataclass(frozen=True)
class Rouge(TextMetric):
    """One ROUGE variant (``key`` from :data:`ROUGE_TYPES`), per case."""

    key: str
    label = "rouge"

    def per_case(self, predictions: Sequence[str], references: Sequence[str], sources: Sequence[str]) -> list[float]:
        score = _VARIANTS[self.key]
        return [score(p, r) for p, r in zip(predictions, references, strict=True)]

    def signature(self) -> str:
        return f"rouge-score{ROUGE_SCORE_VERSION}-nostem-lsum-newline"


@register("rouge")
def _build(resources: Resources) -> list[TextMetric]:
    return [Rouge(key) for key in ROUGE_TYPES]
