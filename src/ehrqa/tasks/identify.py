"""Evidence identification (ST2): which note sentences are essential to answer the question.

The query is the clinician question (optionally with the patient's), scored against every
note sentence by the aligner model's ST2 ensemble (:mod:`ehrqa.retrieval`). Only the
XML side of a case is read: never its relevance labels.
"""

from __future__ import annotations

from collections.abc import Sequence

from ehrqa.data.case import Case


def predict(cases: Sequence[Case], model=None) -> dict[str, list[str]]:
    """ST2 predictions: case id -> note sentence ids (``model``: an AlignerModel, a model
    directory, or None for the shipped default)."""
    from ehrqa.retrieval.aligner import load_model

    aligner = load_model(model)
    cases = [c.without_gold() for c in cases]
    selected = aligner.select(2, cases)
    return {case.id: per_query[0] if per_query else [] for case, per_query in zip(cases, selected, strict=True)}
