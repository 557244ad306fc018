"""Does the note answer the question at all? The abstention decision of ``ehrqa answer``.

The aligner's ST2 model scores every note sentence as evidence for the question
(:func:`evidence_scores`, the one place this module calls the aligner). The decision reads one
number from those scores, the case's *evidence score* (the statistic named in the decision file,
e.g. the best sentence's score), and compares it with a *bar*:

- below the bar: the note does not answer the question; the answer is :data:`ABSTENTION` alone,
  citing nothing;
- at or above it: the question is answered, and an extractive answer keeps only the note
  sentences whose own score clears the same bar (:attr:`Verdict.supported`), instead of filling
  up to 75 words with unrelated ones.

The question is judged alone, without the patient's narrative, as the bar was fitted.

The bar is not set by hand: ``benchmarks/bench_abstain.py --write`` learns it on held-out sources
(answerable pairs: the real questions; unanswerable pairs: one case's question asked of another
case's note from the same source, on another topic), and stores it in
``models/abstain.json`` with how it was made and the sha256 of the aligner's ``aligner.json``
whose scores it reads (:data:`DECISION_FILE`).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ehrqa.data.case import Case, QuestionPhrase

log = logging.getLogger(__name__)

DECISION_FILE = Path(__file__).resolve().parent.parent / "models" / "abstain.json"
FORMAT = "ehrqa-abstain/1"
ABSTENTION = "The note does not answer this question."


def evidence_scores(cases: Sequence[Case], aligner=None) -> list[np.ndarray]:
    """Per case, the ST2 evidence score of every note sentence (higher = better), from ``aligner``
    (an AlignerModel, a model directory, or None for the shipped default, loaded once per process)."""
    from ehrqa.tasks.base import shared_aligner

    model = shared_aligner(aligner)
    inputs = [c.input_for(2) for c in cases]
    matrices = model.sentence_scores(2, inputs) if inputs else []
    return [
        np.asarray(m[0] if len(m) else np.zeros(len(c.sentences)), dtype=float)
        for c, m in zip(inputs, matrices, strict=True)
    ]


def top_mean(scores: np.ndarray, k: int) -> float:
    """The mean of the ``k`` best scores (all of them when there are fewer); 0 for an empty note."""
    if not len(scores):
        return 0.0
    return float(np.sort(np.asarray(scores, dtype=float))[::-1][:k].mean())


# The case-level statistics the decision can read, by name.
STATISTICS = {
    "max": lambda s: top_mean(s, 1),
    "top3_mean": lambda s: top_mean(s, 3),
}


def aligner_sha256(aligner_dir: str | Path | None = None) -> str:
    """The sha256 of an aligner directory's ``aligner.json`` (None: the shipped default)."""
    from ehrqa.retrieval.aligner import DEFAULT_MODEL_DIR
    from ehrqa.retrieval.cross_encoder import CONFIG_NAME

    return hashlib.sha256((Path(aligner_dir or DEFAULT_MODEL_DIR) / CONFIG_NAME).read_bytes()).hexdigest()


@dataclass(frozen=True)
class Decision:
    """Answerable when the case's ``statistic`` of its evidence scores is at least ``bar``."""

    statistic: str
    bar: float
    record: dict = field(default_factory=dict)  # how it was made (written by the benchmark)

    def __post_init__(self) -> None:
        if self.statistic not in STATISTICS:
            raise ValueError(
                f"abstention: unknown statistic {self.statistic!r}: expected one of {', '.join(STATISTICS)}"
            )

    def evidence_score(self, scores: np.ndarray) -> float:
        return float(STATISTICS[self.statistic](scores))

    @classmethod
    def load(cls, path: str | Path | None = None) -> Decision:
        """The decision file at ``path`` (None: the shipped one); an unreadable one is a one-line
        :class:`~ehrqa.errors.DataError`."""
        from ehrqa.config import load_json
        from ehrqa.errors import DataError

        path = Path(path or DECISION_FILE)
        data = load_json(path, "decision file")
        if data.get("format") != FORMAT:
            raise DataError(f"{path}: not an ehrqa abstention decision (format {data.get('format')!r})")
        try:
            return cls(str(data["statistic"]), float(data["bar"]), dict(data.get("record") or {}))
        except (ValueError, KeyError, TypeError) as e:
            raise DataError(f"{path}: {e}") from None

    def save(self, path: str | Path | None = None) -> Path:
        from ehrqa.io import atomic_write_json

        data = {"format": FORMAT, "statistic": self.statistic, "bar": self.bar, "record": self.record}
        return atomic_write_json(Path(path or DECISION_FILE), data)


def fit_bar(answerable: Sequence[Sequence[float]], unanswerable: Sequence[Sequence[float]]) -> float:
    """The bar that best separates answerable from unanswerable evidence scores, given per source
    (``answerable[i]`` and ``unanswerable[i]`` come from source i): the highest balanced accuracy
    (the share of answerable cases kept and of unanswerable ones refused, averaged), averaged over
    sources so that each counts the same; the midpoint between neighbouring scores; ties go to the
    lowest bar (refuse fewer real questions)."""
    groups = [
        (np.asarray(p, dtype=float), np.asarray(n, dtype=float)) for p, n in zip(answerable, unanswerable, strict=True)
    ]
    if not groups or any(not len(p) or not len(n) for p, n in groups):
        raise ValueError("abstention: fitting the bar needs answerable and unanswerable cases from every source")
    values = np.unique(np.concatenate([v for group in groups for v in group]))
    candidates = np.concatenate([[values[0]], (values[:-1] + values[1:]) / 2, [values[-1] + 1e-9]])
    best, best_bar = -1.0, float(candidates[0])
    for bar in candidates:
        accuracy = np.mean([((p >= bar).mean() + (n < bar).mean()) / 2 for p, n in groups])
        if accuracy > best + 1e-12:
            best, best_bar = accuracy, float(bar)
    return round(best_bar, 6)


@dataclass(frozen=True)
class Verdict:
    """Whether the note answers the question, the evidence score that decided it, and the note
    sentences (ids, best first) whose own score clears the bar."""

    answerable: bool
    score: float
    bar: float
    statistic: str
    supported: tuple[str, ...] = ()


def question_only(case: Case) -> Case:
    """The case as the bar was fitted on it: the clinician question alone, no patient narrative (a
    narrative shifts the ST2 scores: on aci_dev and the sample, real questions score lower with it)."""
    question = " ".join((case.clinician_question or case.patient_question).split())
    return replace(
        case, narrative=question, question_phrases=(QuestionPhrase("0", question, 0),), clinician_question=question
    )


def judge(case: Case, aligner=None, decision: Decision | None = None, scores: np.ndarray | None = None) -> Verdict:
    """The verdict on one case, judged on its note and question alone (:func:`question_only`);
    ``scores``: those :func:`evidence_scores` when already computed. ``decision``: None for the
    shipped one, fitted for the shipped aligner."""
    decision = decision or shipped_decision()
    if scores is None:
        scores = evidence_scores([question_only(case)], aligner)[0]
    score = decision.evidence_score(scores)
    order = np.argsort(-scores, kind="stable")
    supported = tuple(case.sentences[j].id for j in order if scores[j] >= decision.bar)
    answerable = score >= decision.bar
    return Verdict(answerable, round(score, 6), decision.bar, decision.statistic, supported if answerable else ())


_SHIPPED: list[Decision] = []


def shipped_decision() -> Decision:
    """The shipped decision, loaded once; a warning when the shipped aligner changed since it was fitted."""
    if not _SHIPPED:
        decision = Decision.load()
        fitted_for = decision.record.get("aligner_sha256")
        if fitted_for and fitted_for != aligner_sha256():
            log.warning(
                "models/abstain.json was fitted for another aligner-default; "
                "refit it with `python benchmarks/bench_abstain.py --write`"
            )
        _SHIPPED.append(decision)
    return _SHIPPED[0]
