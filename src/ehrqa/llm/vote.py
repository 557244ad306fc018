"""Votes: which ST2 evidence ids and ST4 links several samples or models agree on, and which text is most central.

Each sample (or voter) names a set of candidates: note sentence ids for ST2, (answer id, note id)
links for ST4. A candidate's votes are the summed weights of the samples naming it (weight 1 each
unless given), and a :class:`Rule` decides, from the votes and the total weight of the samples
that voted, whether it is kept:

- a threshold ``F`` (a float in [0, 1]): kept when ``votes >= F x total``. The comparison is exact
  up to a 1e-9 tolerance (``votes >= F x total - 1e-9``), so with unit weights the number of votes
  needed is the smallest whole number at least ``F x N``: F = 0.5 with N = 5 samples is 2.5, so
  3 votes; F = 0.5 with N = 4 is 2 votes (a tie is kept); F = 0.6 with N = 5 is exactly 3 votes
  (the tolerance stops ``0.6 * 5 = 3.0000000000000004`` from demanding 4).
- ``"majority"``: more than half the total weight (N = 4 needs 3, N = 5 needs 3).
- ``"union"``: at least one vote; ``"intersection"``: every sample.
- ``k`` (an int, or ``"k=3"``): at least k votes, in weight units.

A sample that produced nothing usable should be passed as ``None``: it is left out of the total
(no reply is not a vote against every candidate), while an empty list is a vote for nothing.

Several voters (models, prompts, the retrieval aligner) combine in one of two ways: vote each
voter's samples first and then vote the voters' kept sets with their weights (call the same
function twice), or pass every sample of every voter at once with weight ``voter weight / its
samples``, so that each voter's samples together weigh what the voter weighs.

Vote counts come back with every result, in the form run records store them: ST2
``{"sid": votes}``, ST4 ``{"aid": {"sid": votes}}``.

:func:`medoid` picks, among candidate texts (ST1 questions, ST3 answers), the one with the
highest mean ROUGE-L F1 to the others; ties go to the lowest index.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from ehrqa.errors import DataError

TOLERANCE = 1e-9


@dataclass(frozen=True)
class Rule:
    """When a candidate with ``votes`` out of ``total`` weight is kept (see the module docstring)."""

    kind: str = "threshold"
    value: float = 0.5  # the threshold F, or k

    def keeps(self, votes: float, total: float) -> bool:
        if votes <= TOLERANCE or total <= TOLERANCE:
            return False
        if self.kind == "threshold":
            return votes >= self.value * total - TOLERANCE
        if self.kind == "majority":
            return votes > total / 2 + TOLERANCE
        if self.kind == "union":
            return True
        if self.kind == "intersection":
            return votes >= total - TOLERANCE
        return votes >= self.value - TOLERANCE  # k

    @classmethod
    def from_config(cls, value: object) -> Rule:
        """How :mod:`ehrqa.config` reads a rule from a recipe or a flag (see :func:`parse_rule`)."""
        return parse_rule(value)

    def to_config(self) -> str | float | int:
        """The rule as a recipe writes it: ``0.5``, ``3``, ``"majority"``."""
        if self.kind == "threshold":
            return self.value
        return int(self.value) if self.kind == "k" else self.kind


def parse_rule(rule: object) -> Rule:
    """The one reader of vote rules, for recipes, ``--vote``/``--vote-threshold`` flags and records:
    ``0.5`` (threshold), ``3`` or ``"k=3"`` (at least 3 votes), ``"majority"``, ``"union"``/``"any"``,
    ``"intersection"``/``"all"``. Anything else is a one-line :class:`DataError`."""
    if isinstance(rule, Rule):
        return rule
    bad = DataError(
        f"vote rule {rule!r}: expected majority, union, intersection, a count k (e.g. 3) or a threshold between 0 and 1"
    )
    if isinstance(rule, bool):
        raise bad
    if isinstance(rule, int):
        if rule < 1:
            raise bad
        return Rule("k", float(rule))
    if isinstance(rule, float):
        if not 0.0 <= rule <= 1.0:
            raise bad
        return Rule("threshold", rule)
    if not isinstance(rule, str):
        raise bad
    text = rule.strip().lower()
    named = {
        "majority": "majority",
        "union": "union",
        "any": "union",
        "intersection": "intersection",
        "all": "intersection",
    }
    if text in named:
        return Rule(named[text], 0.0)
    text = re.sub(r"^(k|threshold|t)\s*=\s*", lambda m: "k=" if m.group(1) == "k" else "", text)
    if text.startswith("k="):
        text = text[2:]
        if not text.isdigit():
            raise bad
    if text.isdigit():
        return parse_rule(int(text))
    try:
        return parse_rule(float(text))
    except ValueError:
        raise bad from None


def _weights(samples: Sequence, weights: Sequence[float] | None) -> list[float]:
    if weights is None:
        return [1.0] * len(samples)
    if len(weights) != len(samples):
        raise ValueError(f"{len(weights)} weights for {len(samples)} samples")
    if any(w < 0 for w in weights):
        raise ValueError("vote weights must not be negative")
    return [float(w) for w in weights]


def _number(value: float, whole: bool) -> float | int:
    return int(round(value)) if whole else value


def _id_key(order: Mapping[str, int]):
    """Sort ids by their position in ``order``; others after, numbers numerically."""

    def key(sid: str) -> tuple:
        if sid in order:
            return (0, order[sid], 0, "")
        return (1, 0, int(sid), "") if sid.isdigit() else (1, 0, 0, sid)

    return key


def _tally(samples: Sequence[Iterable | None], weights: list[float]) -> tuple[dict, float]:
    votes: dict = {}
    total = 0.0
    for sample, weight in zip(samples, weights, strict=True):
        if sample is None:
            continue
        total += weight
        for candidate in dict.fromkeys(sample):
            votes[candidate] = votes.get(candidate, 0.0) + weight
    return votes, total


@dataclass
class IdVote:
    """A ST2 vote: the kept ids (in note order), every candidate's votes, and the total weight."""

    kept: list[str]
    counts: dict[str, float | int]
    total: float | int


def vote_ids(
    samples: Sequence[Iterable[str] | None],
    rule: Rule | str | float | int = 0.5,
    weights: Sequence[float] | None = None,
    order: Sequence[str] | None = None,
) -> IdVote:
    """Vote over id sets (one per sample; ``None`` = no usable reply). ``order``: the note's ids,
    for the order of ``kept`` and ``counts``. Counts are ints when every weight is whole."""
    rule = parse_rule(rule)
    w = _weights(samples, weights)
    whole = all(x.is_integer() for x in w)
    votes, total = _tally([None if s is None else [str(i) for i in s] for s in samples], w)
    key = _id_key({sid: i for i, sid in enumerate(order or ())})
    ranked = sorted(votes, key=key)
    kept = [sid for sid in ranked if rule.keeps(votes[sid], total)]
    return IdVote(kept, {sid: _number(votes[sid], whole) for sid in ranked}, _number(total, whole))


@dataclass
class LinkVote:
    """A ST4 vote: kept links ``{answer id: [note ids]}`` (every answer id, in order), votes
    ``{answer id: {note id: votes}}`` and the total weight."""

    kept: dict[str, list[str]]
    counts: dict[str, dict[str, float | int]]
    total: float | int

    def pairs(self) -> set[tuple[str, str]]:
        return {(aid, sid) for aid, sids in self.kept.items() for sid in sids}


def vote_links(
    samples: Sequence[Mapping[str, Iterable[str]] | None],
    rule: Rule | str | float | int = 0.5,
    weights: Sequence[float] | None = None,
    answer_ids: Sequence[str] | None = None,
    note_order: Sequence[str] | None = None,
) -> LinkVote:
    """Vote over (answer id, note id) links, one ``{answer id: [note ids]}`` mapping per sample
    (``None`` = no usable reply). ``answer_ids`` (default: those the samples name, in first-seen
    order) all appear in ``kept``, with an empty list when no link of theirs is kept."""
    rule = parse_rule(rule)
    w = _weights(samples, weights)
    whole = all(x.is_integer() for x in w)
    pair_samples = [
        None if s is None else [(str(aid), str(sid)) for aid, sids in s.items() for sid in sids] for s in samples
    ]
    votes, total = _tally(pair_samples, w)
    if answer_ids is None:
        answer_ids = list(dict.fromkeys(str(aid) for s in samples if s is not None for aid in s))
    answers = [str(a) for a in answer_ids]
    key = _id_key({sid: i for i, sid in enumerate(note_order or ())})
    answer_key = _id_key({aid: i for i, aid in enumerate(answers)})
    kept: dict[str, list[str]] = {aid: [] for aid in answers}
    counts: dict[str, dict[str, float | int]] = {}
    for aid, sid in sorted(votes, key=lambda p: (answer_key(p[0]), key(p[1]))):
        counts.setdefault(aid, {})[sid] = _number(votes[(aid, sid)], whole)
        if rule.keeps(votes[(aid, sid)], total):
            kept.setdefault(aid, []).append(sid)
    return LinkVote(kept, counts, _number(total, whole))


# ---------------------------------------------------------------- texts

_NON_ALPHANUM = re.compile(r"[^a-z0-9]+")


def rouge_tokens(text: str) -> list[str]:
    """Tokens as ``rouge_score`` 0.1.2 makes them without stemming: lowercase, a-z0-9 runs."""
    return _NON_ALPHANUM.sub(" ", text.lower()).split()


def _lcs(a: list[str], b: list[str]) -> int:
    if len(a) < len(b):
        a, b = b, a
    row = [0] * (len(b) + 1)
    for x in a:
        previous = 0  # row[j - 1] of the previous line
        for j, y in enumerate(b, 1):
            current = row[j]
            row[j] = previous + 1 if x == y else max(row[j], row[j - 1])
            previous = current
    return row[-1]


def rouge_l_f1(a: str | list[str], b: str | list[str]) -> float:
    """ROUGE-L F-measure of two texts (symmetric; equals ``rouge_score``'s rougeL fmeasure)."""
    ta = rouge_tokens(a) if isinstance(a, str) else a
    tb = rouge_tokens(b) if isinstance(b, str) else b
    if not ta or not tb:
        return 0.0
    lcs = _lcs(ta, tb)
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(tb), lcs / len(ta)
    return 2 * precision * recall / (precision + recall)


def centrality(texts: Sequence[str | None]) -> list[float | None]:
    """Each text's mean ROUGE-L F1 to the other texts (``None`` for a missing text, which is
    neither a candidate nor one of the others). A lone text scores 1.0."""
    tokens = {i: rouge_tokens(t) for i, t in enumerate(texts) if t is not None}
    scores: list[float | None] = [None] * len(texts)
    if len(tokens) == 1:
        scores[next(iter(tokens))] = 1.0
        return scores
    pair: dict[tuple[int, int], float] = {}
    for i in tokens:
        for j in tokens:
            if i < j:
                pair[(i, j)] = rouge_l_f1(tokens[i], tokens[j])
    for i in tokens:
        others = [pair[(min(i, j), max(i, j))] for j in tokens if j != i]
        scores[i] = sum(others) / len(others)
    return scores


def medoid(texts: Sequence[str | None]) -> int:
    """The index of the most central text (highest mean ROUGE-L F1 to the others); ties, within
    1e-12, go to the lowest index. Raises ValueError when there is no text at all."""
    scores = centrality(texts)
    best = None
    for i, score in enumerate(scores):
        if score is not None and (best is None or score > scores[best] + 1e-12):
            best = i
    if best is None:
        raise ValueError("medoid of no texts")
    return best
