"""Evidence alignment (ST4): link each answer sentence to the note sentences that support it.

Each answer sentence is a query scored against the note sentences by the aligner model's
ST4 ensemble (:mod:`ehrqa.retrieval`); every answer sentence gets at least ``min_links``
and at most ``max_links`` citations. Existing citations (gold) are never read.
"""

from __future__ import annotations

from collections.abc import Sequence

from ehrqa.data.case import Case


def predict(cases: Sequence[Case], model=None) -> dict[str, list[dict]]:
    """ST4 predictions: case id -> ``[{"answer_id", "evidence_id": [...]}, ...]`` (``model``: an
    AlignerModel, a model directory, or None for the shipped default)."""
    from ehrqa.retrieval.aligner import load_model

    aligner = load_model(model)
    cases = [c.without_gold() for c in cases]
    selected = aligner.select(4, cases)
    return {
        case.id: [
            {"answer_id": answer.id, "evidence_id": ids}
            for answer, ids in zip(case.answer_sentences or (), per_query, strict=True)
        ]
        for case, per_query in zip(cases, selected, strict=True)
    }
