"""The learned relevance model: a logistic combiner over :mod:`ehrqa.retrieval.features` and a
decision rule that says how many sentences each query keeps.

Inference (:class:`LearnedRelevance`): standardise the features with the stored means and
scales, ``p = sigmoid(features . coef + intercept)`` per (query, sentence), then keep per query

- ``threshold``: every sentence with ``p >= t``;
- ``relative``: every sentence with ``p >= t x`` the query's best ``p``;
- ``fraction``: the best ``ceil(t x n)`` of the query's ``n`` sentences;

with at least ``min_links`` and at most ``max_links`` (best first). With ``blend`` set to a weight
``w``, the rule reads ``w x p / (the query's best p) + (1 - w) x bm25`` (BM25 relative to the
query's best sentence) instead of ``p``: the learned score ensembled with BM25's relative
ranking. All of it is a few dozen numbers in ``aligner.json``.

Fitting (:func:`fit_relevance`): scikit-learn's L2 logistic regression with each training source
weighted equally (so a large augmentation source does not drown a small clinical one); the rule,
its parameters and the blend weight are then chosen on out-of-fold probabilities (k folds of cases
inside the training data) or on the fitted model's own probabilities (``rule_folds="none"``, what
the shipped learned model uses) by the mean over sources of micro F1, so no source's share of
essential sentences dominates the decision.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

RULES = ("threshold", "relative", "fraction")


@dataclass(frozen=True)
class DecisionRule:
    """How many sentences each query keeps from its row of combined scores (see the module
    docstring): the last stage of every aligner, whichever combiner made the scores."""

    rule: str = "threshold"
    threshold: float = 0.5
    min_links: int = 1
    max_links: int | None = None

    def select(self, scores: np.ndarray) -> list[list[int]]:
        """Per query row, the kept sentence indices (best first)."""
        return [decide_row(row, self.rule, self.threshold, self.min_links, self.max_links) for row in scores]


@dataclass
class LearnedRelevance:
    """A fitted combiner and its decision rule (the ``learned`` section of ``aligner.json``)."""

    features: list[str]
    mean: list[float]
    scale: list[float]
    coef: list[float]
    intercept: float
    rule: str = "threshold"
    threshold: float = 0.5
    min_links: int = 1
    max_links: int | None = None
    blend: float | None = None  # weight of the learned score against relative BM25 (None: p alone)
    record: dict = field(default_factory=dict)  # how it was fitted (sources, sizes, held-out F1)

    @classmethod
    def from_dict(cls, d: dict) -> LearnedRelevance:
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(d) - known - {"kind", "query"})
        if unknown:
            raise ValueError(f"learned relevance config: unknown keys {', '.join(unknown)}")
        model = cls(**{k: v for k, v in d.items() if k in known})
        if model.rule not in RULES:
            raise ValueError(f"learned relevance config: unknown rule {model.rule!r}: expected one of {RULES}")
        return model

    def to_dict(self) -> dict:
        return {
            "kind": "learned",
            "features": list(self.features),
            "mean": [round(float(v), 6) for v in self.mean],
            "scale": [round(float(v), 6) for v in self.scale],
            "coef": [round(float(v), 6) for v in self.coef],
            "intercept": round(float(self.intercept), 6),
            "rule": self.rule,
            "threshold": self.threshold,
            "min_links": self.min_links,
            "max_links": self.max_links,
            "blend": self.blend,
            "record": self.record,
        }

    def probabilities(self, tensor: np.ndarray) -> np.ndarray:
        """``(queries, sentences, features)`` -> ``(queries, sentences)`` probabilities."""
        z = (tensor - np.asarray(self.mean)) / np.asarray(self.scale)
        return 1.0 / (1.0 + np.exp(-(z @ np.asarray(self.coef) + self.intercept)))

    def scores(self, tensor: np.ndarray) -> np.ndarray:
        """``(queries, sentences, features)`` -> the ``(queries, sentences)`` scores the rule reads."""
        p = self.probabilities(tensor)
        if self.blend is None:
            return p
        return blend_scores(p, tensor[..., self.features.index("bm25")], self.blend)

    @property
    def decision_rule(self) -> DecisionRule:
        return DecisionRule(self.rule, self.threshold, self.min_links, self.max_links)

    @property
    def rerank(self) -> None:
        """The logistic combiner reads every pair's features (no reranking)."""
        return None

    def select(self, scores: np.ndarray) -> list[list[int]]:
        """Per query row, the kept sentence indices (best first)."""
        return self.decision_rule.select(scores)


def blend_scores(p: np.ndarray, bm25: np.ndarray, weight: float, row: np.ndarray | None = None) -> np.ndarray:
    """``weight x p / max p + (1 - weight) x bm25``, the maximum taken per query row (per matrix
    row, or per id in ``row`` for flattened pairs); ``bm25`` is already relative to its row's best."""
    if row is None:
        top = p.max(axis=-1, keepdims=True) if p.size else p
    else:
        best = np.zeros(row.max() + 1 if len(row) else 0)
        np.maximum.at(best, row, p)
        top = best[row]
    return weight * p / np.maximum(top, 1e-12) + (1 - weight) * bm25


def decide_row(row: np.ndarray, rule: str, threshold: float, min_links: int, max_links: int | None) -> list[int]:
    """The kept indices of one query row under a rule (see the module docstring)."""
    if not len(row):
        return []
    order = np.argsort(-row, kind="stable")
    if rule == "fraction":
        keep = [int(j) for j in order[: max(min_links, int(np.ceil(threshold * len(row))))]]
        return keep[:max_links] if max_links is not None else keep
    cut = threshold * float(row.max()) if rule == "relative" else threshold
    keep = [int(j) for rank, j in enumerate(order) if rank < min_links or row[j] >= cut]
    return keep[:max_links] if max_links is not None else keep


# ---------------------------------------------------------------------------------------------
# Fitting


@dataclass
class Rows:
    """Training data flattened: one entry per (query, sentence) of every case."""

    x: np.ndarray  # (pairs, features)
    y: np.ndarray  # bool
    row: np.ndarray  # query row index per pair
    case: np.ndarray  # case index per pair
    source: np.ndarray  # source name per pair

    @classmethod
    def build(cls, tensors: Sequence[np.ndarray], gold: Sequence[Sequence[set[int]]], sources: Sequence[str]) -> Rows:
        xs, ys, rows, cases, srcs = [], [], [], [], []
        row_id = 0
        for c, (tensor, per_query, source) in enumerate(zip(tensors, gold, sources, strict=True)):
            for i, gold_ids in enumerate(per_query):
                n = tensor.shape[1]
                xs.append(tensor[i])
                ys.append(np.isin(np.arange(n), list(gold_ids)))
                rows.append(np.full(n, row_id))
                cases.append(np.full(n, c))
                srcs.append(np.full(n, source, dtype=object))
                row_id += 1
        width = tensors[0].shape[-1] if tensors else 0
        return cls(
            x=np.concatenate(xs) if xs else np.zeros((0, width)),
            y=np.concatenate(ys) if ys else np.zeros(0, bool),
            row=np.concatenate(rows) if rows else np.zeros(0, int),
            case=np.concatenate(cases) if cases else np.zeros(0, int),
            source=np.concatenate(srcs) if srcs else np.zeros(0, object),
        )

    def take(self, mask: np.ndarray) -> Rows:
        return Rows(self.x[mask], self.y[mask], self.row[mask], self.case[mask], self.source[mask])


def _source_weights(source: np.ndarray) -> np.ndarray:
    names, counts = np.unique(source, return_counts=True)
    per = {n: len(source) / (len(names) * c) for n, c in zip(names, counts, strict=True)}
    return np.array([per[s] for s in source])


def _fit_logistic(rows: Rows, c: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    from sklearn.linear_model import LogisticRegression

    mean = rows.x.mean(axis=0)
    scale = rows.x.std(axis=0)
    scale = np.where(scale > 1e-9, scale, 1.0)
    model = LogisticRegression(C=c, max_iter=2000)
    model.fit((rows.x - mean) / scale, rows.y, sample_weight=_source_weights(rows.source))
    return mean, scale, model.coef_[0], float(model.intercept_[0])


def _probabilities(x: np.ndarray, mean, scale, coef, intercept) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-(((x - mean) / scale) @ coef + intercept)))


def _rank_and_top(p: np.ndarray, rows: Rows) -> tuple:
    """Per pair: its rank within its query row (0 = best), the row's best probability, the row's
    length; and one mask per source."""
    row = rows.row
    order = np.lexsort((-p, row))
    sorted_rows = row[order]
    starts = np.searchsorted(sorted_rows, sorted_rows, side="left")
    rank = np.empty(len(p), dtype=int)
    rank[order] = np.arange(len(p)) - starts
    top = np.zeros(row.max() + 1 if len(row) else 0)
    np.maximum.at(top, row, p)
    length = np.bincount(row)[row] if len(row) else np.zeros(0, int)
    masks = [rows.source == s for s in np.unique(rows.source.astype(str))]
    return rank, top[row], length, masks


def source_f1(rows: Rows, p: np.ndarray, rule: str, threshold: float, min_links: int, max_links, cache=None) -> float:
    """Mean over sources of micro F1 when every query row keeps what the rule keeps."""
    rank, top, length, masks = cache if cache is not None else _rank_and_top(p, rows)
    if rule == "fraction":
        kept = rank < np.maximum(min_links, np.ceil(threshold * length))
    else:
        cut = threshold * top if rule == "relative" else threshold
        kept = (rank < min_links) | (p >= cut)
    if max_links is not None:
        kept &= rank < max_links
    scores = []
    for m in masks:
        tp, pred, gold = (kept & rows.y & m).sum(), (kept & m).sum(), (rows.y & m).sum()
        scores.append(2 * tp / (pred + gold) if pred + gold else 1.0)
    return float(np.mean(scores))


DEFAULT_THRESHOLDS = tuple(np.round(np.arange(0.02, 0.99, 0.02), 2))


def fit_relevance(
    tensors: Sequence[np.ndarray],
    gold: Sequence[Sequence[set[int]]],
    sources: Sequence[str],
    features: Sequence[str],
    *,
    max_links: Sequence[int | None] = (None,),
    min_links: int = 1,
    c: float = 1.0,
    folds: int = 5,
    seed: int = 13,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    rule_sources: Sequence[str] | None = None,
    rule_folds: str = "cases",
    rules: Sequence[str] = RULES,
    blends: Sequence[float | None] = (None,),
) -> LearnedRelevance:
    """Fit the combiner on all ``tensors`` and choose its rule on out-of-fold probabilities of the
    ``rule_sources`` (default: every source; augmentation sources can help the fit yet be kept out
    of the decision, whose best setting differs on them).

    ``rule_folds``: ``cases`` (k folds of cases: out-of-fold probabilities) or ``none`` (the
    probabilities of the model fitted on all the training data, for a combiner too small and too
    regularised to overfit them). ``rules``: the candidate rules (see :data:`RULES`). ``blends``:
    candidate weights of the learned score against relative BM25 (None: the probability alone;
    needs ``bm25`` among the features)."""
    if rule_folds not in ("cases", "none"):
        raise ValueError(f"learned relevance: rule_folds {rule_folds!r}: expected cases or none")
    unknown = sorted(set(rules) - set(RULES))
    if unknown or not rules:
        raise ValueError(f"learned relevance: unknown rules {unknown}: expected some of {', '.join(RULES)}")
    rows = Rows.build(tensors, gold, sources)
    if not rows.y.any():
        raise ValueError("learned relevance: the training data has no positive (gold) sentence")
    rng = np.random.default_rng(seed)
    fold_of_case = rng.permutation(len(tensors)) % max(2, min(folds, len(tensors)))
    final = _fit_logistic(rows, c)
    oof = _probabilities(rows.x, *final) if rule_folds == "none" else np.zeros(len(rows.y))
    for f in np.unique(fold_of_case) if rule_folds == "cases" else ():
        test = fold_of_case[rows.case] == f
        train = rows.take(~test)
        if not train.y.any():
            continue
        oof[test] = _probabilities(rows.x[test], *_fit_logistic(train, c))
    judged = rows if rule_sources is None else rows.take(np.isin(rows.source.astype(str), list(rule_sources)))
    oof = oof if rule_sources is None else oof[np.isin(rows.source.astype(str), list(rule_sources))]
    best = choose_rule(judged, oof, features, rules, max_links, thresholds, blends, min_links)
    mean, scale, coef, intercept = final
    sizes = {
        str(s): int(n) for s, n in zip(*np.unique(np.asarray(sources, dtype=str), return_counts=True), strict=True)
    }
    return LearnedRelevance(
        features=list(features),
        mean=mean.tolist(),
        scale=scale.tolist(),
        coef=coef.tolist(),
        intercept=intercept,
        **best.settings(),
        min_links=min_links,
        record={
            "cases_per_source": sizes,
            "c": c,
            "rule_chosen_on": f"{folds}-fold out-of-fold" if rule_folds == "cases" else "in-sample probabilities",
            "rule_mean_source_f1": round(best.f1, 4),
        },
    )


@dataclass
class RuleChoice:
    """The best decision rule found by :func:`choose_rule` and its mean source F1."""

    f1: float
    rule: str
    threshold: float
    max_links: int | None
    blend: float | None

    def settings(self) -> dict:
        blend = None if self.blend is None else round(float(self.blend), 4)
        return {"rule": self.rule, "threshold": self.threshold, "max_links": self.max_links, "blend": blend}


def choose_rule(
    rows: Rows,
    p: np.ndarray,
    features: Sequence[str],
    rules: Sequence[str] = RULES,
    max_links: Sequence[int | None] = (None,),
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    blends: Sequence[float | None] = (None,),
    min_links: int = 1,
) -> RuleChoice:
    """The rule, threshold, max links and BM25 blend with the best mean over sources of micro F1
    when ``rows`` are scored with probabilities ``p`` (the combiner stays as it is)."""
    if any(b is not None for b in blends) and "bm25" not in features:
        raise ValueError("learned relevance: blending with BM25 needs the bm25 feature")
    best = RuleChoice(-1.0, "threshold", 0.5, None, None)
    for blend in blends:
        scored = p if blend is None else blend_scores(p, rows.x[:, list(features).index("bm25")], blend, rows.row)
        cache = _rank_and_top(scored, rows)
        for rule in rules:
            for k in max_links:
                for t in thresholds:
                    f1 = source_f1(rows, scored, rule, float(t), min_links, k, cache)
                    if f1 > best.f1 + 1e-12:
                        best = RuleChoice(f1, rule, float(t), k, blend)
    return best
