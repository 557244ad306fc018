"""Evidence alignment (ST4): link each answer sentence to the note sentences that support it.

Input: the ST2 input plus the answer sentences, without citations. Methods:

* ``aligner`` (default): each answer sentence is a query scored against the note sentences by the
  aligner model (:mod:`ehrqa.retrieval.aligner`: the shipped learned combiner, or a trained
  ensemble), kept by the model's decision rule and link counts;
* ``llm``: chat models align all answer sentences of a case in one JSON reply; samples and voters
  vote on each (answer, note sentence) link (:mod:`ehrqa.tasks.llm_evidence`); a case no reply
  could be parsed for falls back to the aligner, and its record says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ehrqa.data.case import Case
from ehrqa.data.submission import prediction_from_links
from ehrqa.tasks.base import Context, EvidenceConfig, shared_aligner


@dataclass(frozen=True)
class AlignConfig(EvidenceConfig):
    """ST4 settings; the fields are :class:`ehrqa.tasks.base.EvidenceConfig`'s."""

    prompt: str = "st4-align@1"


def aligner_links(inputs: Sequence[Case], aligner=None) -> dict[str, dict[str, list[str]]]:
    """ST4 by the retrieval aligner: ``{case_id: {answer id: [note ids]}}``."""
    selected = shared_aligner(aligner).select(4, list(inputs))
    return {
        case.id: {a.id: ids for a, ids in zip(case.answer_sentences or (), per_query, strict=True)}
        for case, per_query in zip(inputs, selected, strict=True)
    }


def predict(inputs: Sequence[Case], config: AlignConfig | None = None, ctx: Context | None = None) -> dict:
    """ST4 predictions ``{case_id: [{"answer_id", "evidence_id": [...]}, ...]}``."""
    config = config or AlignConfig()
    ctx = ctx or Context()
    todo = [c for c in ctx.todo(inputs) if c.answer_sentences]
    if todo and config.method == "aligner":
        links = aligner_links(todo, config.aligner)
        for case in todo:
            ctx.record(case.id, prediction_from_links(links[case.id], [a.id for a in case.answer_sentences]))
    elif todo:
        from ehrqa.tasks.llm_evidence import predict_votes  # the chat-model path, imported when used

        predict_votes(4, todo, config, ctx, aligner_links)
    return ctx.predictions(inputs)
