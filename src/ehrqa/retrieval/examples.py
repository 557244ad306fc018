"""The few-shot example pool: the annotated cases most similar to a case, for prompts of ST1-ST4.

Similarity is TF-IDF cosine over the question and the note (ST1: the narrative alone). A pool never
offers the case itself (same id or same note text), and :meth:`ExamplePool.without` removes every
case of the split being evaluated; tuning on the training cases is then leave-one-out.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from ehrqa.data.case import Case

_LABEL = re.compile(r"^\s*(?:SUBJECT|MESSAGE)\s*:\s*", re.I | re.M)


@dataclass(frozen=True)
class QuestionExample:
    narrative: str
    question: str


def _note_text(case: Case) -> str:
    return " ".join(" ".join(s.text.split()) for s in case.sentences)


def _query_text(case: Case, with_note: bool) -> str:
    parts = [case.narrative, case.clinician_question or ""]
    if with_note:
        parts.append(_note_text(case))
    return " ".join(" ".join(parts).split())


class ExamplePool:
    """Annotated cases to draw examples from, indexed once."""

    def __init__(self, cases: Sequence[Case], *, with_note: bool = True) -> None:
        from sklearn.feature_extraction.text import TfidfVectorizer

        self.cases = list(cases)
        self.with_note = with_note
        self._vectorizer = TfidfVectorizer(sublinear_tf=True, stop_words="english")
        texts = [_query_text(c, with_note) for c in self.cases] or [""]
        self._matrix = self._vectorizer.fit_transform(texts)
        self._notes = [_note_text(c) for c in self.cases]

    def without(self, cases: Iterable[Case]) -> ExamplePool:
        """The pool without these cases (by id and by note text): never the evaluated split."""
        cases = list(cases)
        ids = {c.id for c in cases}
        notes = {_note_text(c) for c in cases if c.sentences}
        kept = [c for c, note in zip(self.cases, self._notes, strict=True) if c.id not in ids and note not in notes]
        return ExamplePool(kept, with_note=self.with_note)

    def nearest(self, case: Case, k: int) -> list[Case]:
        """The ``k`` most similar pool cases, never ``case`` itself (same id or same note text)."""
        if k <= 0 or not self.cases:
            return []
        query = self._vectorizer.transform([_query_text(case, self.with_note)])
        scores = (self._matrix @ query.T).toarray().ravel()
        note = _note_text(case)
        order = sorted(range(len(self.cases)), key=lambda i: (-scores[i], i))
        picked = []
        for i in order:
            if self.cases[i].id == case.id or (note and self._notes[i] == note):
                continue
            picked.append(self.cases[i])
            if len(picked) == k:
                break
        return picked

    def nearest_questions(self, case: Case, k: int) -> list[QuestionExample]:
        """ST1 examples: (narrative, clinician question) of the nearest cases that have both."""
        return [QuestionExample(c.narrative, c.clinician_question or "") for c in self.nearest(case, k)]


@lru_cache(maxsize=4)
def _meqsum_pool(max_words: int = 120) -> ExamplePool:
    """(consumer message, expert question) pairs of the bundled MeQSum as narrative-only cases."""
    from ehrqa.data.corpora import read_meqsum

    cases = []
    for i, row in enumerate(read_meqsum()):
        message = " ".join(_LABEL.sub("", row["CHQ"]).split())
        summary = " ".join(row["Summary"].split())
        if message and summary and len(message.split()) <= max_words:
            cases.append(Case(id=f"meqsum-{i}", narrative=message, clinician_question=summary))
    return ExamplePool(cases, with_note=False)


@lru_cache(maxsize=8)
def case_pool(directory: str) -> ExamplePool:
    """Annotated cases of a dataset directory as a pool."""
    from ehrqa.data.archehr import read_dataset

    return ExamplePool(read_dataset(directory))


def question_pool(name: str = "meqsum") -> ExamplePool:
    """ST1's pool: ``meqsum`` (bundled) or a dataset directory with clinician questions (narratives only)."""
    if name == "meqsum":
        return _meqsum_pool()
    from ehrqa.data.archehr import read_dataset
    from ehrqa.errors import DataError

    cases = [c for c in read_dataset(name) if c.gold_question]  # never a user's own question (ehrqa convert)
    if not cases:
        raise DataError(f"{name}: no clinician questions to draw ST1 examples from (questions marked as user input)")
    return ExamplePool(cases, with_note=False)
