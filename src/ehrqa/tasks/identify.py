"""Evidence identification (ST2): which note sentences are essential to answer the question.

Input: the XML side of a case (narrative, clinician question, numbered note), never the key.
Methods:

* ``aligner`` (default): every note sentence scored against the question by the aligner model's
  ST2 ensemble (:mod:`ehrqa.retrieval`), kept above its tuned threshold;
* ``llm``: chat models label the sentences (or answer first and cite); samples and voters vote
  (:mod:`ehrqa.tasks.llm_evidence`), the aligner standing in for a case no reply could be parsed for.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ehrqa.data.case import Case
from ehrqa.tasks.base import Context, Voter, voters_of

METHODS = ("aligner", "llm")


@dataclass(frozen=True)
class IdentifyConfig:
    method: str = "aligner"
    aligner: str | None = None  # aligner model directory (None: the shipped default)
    # llm: one voter from these fields, or several in ``voters``
    backend: str = "default"
    prompt: str = "st2-classify@1"
    samples: int = 1
    temperature: float = 0.0
    max_new_tokens: int = 768
    voters: tuple[Voter, ...] = ()
    vote_threshold: float = 0.5
    shots: int = 0
    examples: str | None = None  # dataset directory of annotated cases for few-shot examples

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method is one of {', '.join(METHODS)}, not {self.method!r}")
        self.all_voters  # noqa: B018 - builds (and so checks) the voters

    @property
    def all_voters(self) -> tuple[Voter, ...]:
        return voters_of(self)


def aligner_evidence(inputs: Sequence[Case], aligner=None) -> dict[str, list[str]]:
    """ST2 by the retrieval aligner: ``{case_id: [note sentence ids]}``."""
    from ehrqa.retrieval.aligner import load_model

    selected = load_model(aligner).select(2, list(inputs))
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
        from ehrqa.tasks.llm_evidence import predict_evidence

        predict_evidence(todo, config, ctx)
    return ctx.predictions(inputs)
