"""Evidence identification (ST2): which note sentences are essential to answer the question.

Input: the XML side of a case (narrative, clinician question, numbered note), never the key.
Methods:

* ``aligner`` (default): every note sentence scored against the question by the aligner model
  (:mod:`ehrqa.retrieval.aligner`: the shipped learned combiner, or a trained ensemble) and kept
  by the model's decision rule;
* ``llm``: chat models label the sentences (or answer first and cite); samples and voters vote
  (:mod:`ehrqa.tasks.llm_evidence`), the aligner standing in for a case no reply could be parsed for.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ehrqa.data.case import Case
from ehrqa.tasks.base import Context, EvidenceConfig, shared_aligner


@dataclass(frozen=True)
class IdentifyConfig(EvidenceConfig):
    """ST2 settings; the fields are :class:`ehrqa.tasks.base.EvidenceConfig`'s."""

    prompt: str = "st2-classify@1"


def aligner_evidence(inputs: Sequence[Case], aligner=None) -> dict[str, list[str]]:
    """ST2 by the retrieval aligner: ``{case_id: [note sentence ids]}``."""
    selected = shared_aligner(aligner).select(2, list(inputs))
    return {case.id: per_query[0] if per_query else [] for case, per_query in zip(inputs, selected, strict=True)}


def predict(inputs: Sequence[Case], config: IdentifyConfig | None = None, ctx: Context | None = None) -> dict:
    """ST2 predictions ``{case_id: [note sentence ids]}``."""
    config = config or IdentifyConfig()
    ctx = ctx or Context()
    todo = ctx.todo(inputs)
    if todo and config.method == "aligner":
        for case_id, ids in aligner_evidence(todo, config.aligner).items():
            ctx.record(case_id, ids)
    elif todo:
        from ehrqa.tasks.llm_evidence import predict_votes  # the chat-model path, imported when used

        predict_votes(2, todo, config, ctx, aligner_evidence)
    return ctx.predictions(inputs)
