"""Sentence SARI as HF ``evaluate``'s ``sari`` metric computes it (EASSE-style), written for ehrqa.

SARI (Xu et al., 2016) rewards n-grams of the output that are rightly kept from the source,
rightly deleted from it and rightly added. For ST3 the source is the patient narrative and
there is one reference. Texts are lowercased and 13a-tokenised, n = 1..4, and the score is
the mean over n of (keep F1 + deletion precision + addition F1) / 3, times 100.

Like ``evaluate`` (and unlike the original paper's code) the keep recall divides by the
total count of kept reference n-grams, and every 0/0 is defined as 1. An output equal to its
reference scores 100 only when the source repeats no n-gram more often than the output:
deletion counts are multisets, so the extra copies of "the" in a long narrative count as
deletions of an n-gram the reference holds (the gold answers of the sample score 99.43).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from ehrqa.score.bleu import _tokenizer
from ehrqa.score.metric import Resources, TextMetric, package_version, register

MAX_ORDER = 4


def normalize(text: str) -> str:
    """Lowercase, then sacreBLEU's 13a tokenizer (tokens joined by single spaces)."""
    return _tokenizer()(text.lower())


def _ngrams(tokens: list[str], n: int) -> list[str]:
    return [" ".join(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


def _f1(p: float, r: float) -> float:
    return 2 * p * r / (p + r) if p > 0 or r > 0 else 0


def _sari_ngram(source: list[str], output: list[str], references: list[list[str]]) -> tuple[float, float, float]:
    """(keep F1, deletion precision, addition F1) for one n-gram order."""
    n_refs = len(references)
    ref_counts = Counter(g for ref in references for g in ref)
    # Source and output counts are multiplied by the number of references.
    src_rep = Counter({g: c * n_refs for g, c in Counter(source).items()})
    out_rep = Counter({g: c * n_refs for g, c in Counter(output).items()})

    # keep: n-grams of the source that the output kept
    keep = src_rep & out_rep
    keep_good = keep & ref_counts
    keep_all = src_rep & ref_counts
    keep_precision_sum = 0
    keep_good_total = 0
    for g in keep:
        keep_precision_sum += keep_good[g] / keep[g]
        keep_good_total += keep_good[g]
    keep_p = keep_precision_sum / len(keep) if keep else 1
    keep_r = keep_good_total / sum(keep_all.values()) if keep_all else 1
    keep_f = _f1(keep_p, keep_r)

    # deletion: n-grams of the source that the output dropped (precision only)
    deleted = src_rep - out_rep
    deleted_good = deleted - ref_counts
    del_sum = 0
    for g in deleted:
        del_sum += deleted_good[g] / deleted[g]
    del_p = del_sum / len(deleted) if deleted else 1

    # addition: n-gram types of the output not in the source
    added = set(out_rep) - set(src_rep)
    added_good = added & set(ref_counts)
    added_all = set(ref_counts) - set(src_rep)
    add_hits = len(added_good)
    add_p = add_hits / len(added) if added else 1
    add_r = add_hits / len(added_all) if added_all else 1
    add_f = _f1(add_p, add_r)
    return keep_f, del_p, add_f


def sentence_sari(source: str, prediction: str, references: Sequence[str], max_order: int = MAX_ORDER) -> float:
    """SARI on the 0-100 scale of one prediction given its source and references
    (what ``evaluate``'s ``sari`` returns for a single example)."""
    return 100 * _sari_unit(source, prediction, references, max_order)


def _sari_unit(source: str, prediction: str, references: Sequence[str], max_order: int = MAX_ORDER) -> float:
    src = normalize(source).split(" ")
    out = normalize(prediction).split(" ")
    refs = [normalize(r).split(" ") for r in references]
    keeps, dels, adds = [], [], []
    for n in range(1, max_order + 1):
        k, d, a = _sari_ngram(_ngrams(src, n), _ngrams(out, n), [_ngrams(r, n) for r in refs])
        keeps.append(k)
        dels.append(d)
        adds.append(a)
    return (sum(keeps) / max_order + sum(dels) / max_order + sum(adds) / max_order) / 3


def corpus_sari(sources: Sequence[str], predictions: Sequence[str], references: Sequence[Sequence[str]]) -> float:
    """``evaluate``'s corpus value: the mean of the sentence scores (summed, then divided), x100."""
    total = 0
    for s, p, r in zip(sources, predictions, references, strict=True):
        total += _sari_unit(s, p, r)
    return 100 * (total / len(predictions))


@dataclass(frozen=True)
class Sari(TextMetric):
    """The official ST3 SARI, per case, with the patient narrative as the source."""

    max_order: int = MAX_ORDER
    key = "sari"
    scale = 1.0  # already 0-100
    needs_source = True

    def per_case(self, predictions: Sequence[str], references: Sequence[str], sources: Sequence[str]) -> list[float]:
        return [
            sentence_sari(s, p, [r], self.max_order) for s, p, r in zip(sources, predictions, references, strict=True)
        ]

    def signature(self) -> str:
        return f"evaluate-sent-lc-tok13a-n{self.max_order}-src=narrative-sacrebleu{package_version('sacrebleu')}"


@register("sari")
def _build(resources: Resources) -> list[TextMetric]:
    return [Sari()]
