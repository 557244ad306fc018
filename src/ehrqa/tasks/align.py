"""Evidence alignment (ST4): link each answer sentence to the note sentences that support it.

Input: the ST2 input plus the answer sentences, without citations. Methods:

* ``aligner`` (default): each answer sentence is a query scored against the note sentences by the
  aligner model's ST4 ensemble (:mod:`ehrqa.retrieval`), with its tuned threshold and link counts;
* ``llm``: chat models align all answer sentences of a case in one JSON reply; samples and voters
  vote on each (answer, note sentence) link (:mod:`ehrqa.tasks.llm_evidence`); a case no reply
  could be parsed for falls back to the aligner, and its record says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ehrqa.data.case import Case
from ehrqa.tasks.base import Context, Voter, voters_of

METHODS = ("aligner", "llm")


@dataclass(frozen=True)
class AlignConfig:
    method: str = "aligner"
    aligner: str | None = None  # aligner model directory (None: the shipped default)
    # llm: one voter from these fields, or several in ``voters``
    backend: str = "default"
    prompt: str = "st4-align@1"
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


def as_submission(case: Case, links: dict[str, list[str]]) -> list[dict]:
    """``{answer id: [note ids]}`` as the official ST4 prediction, one entry per answer sentence."""
    return [{"answer_id": a.id, "evidence_id": list(links.get(a.id, []))} for a in case.answer_sentences or ()]


def aligner_links(inputs: Sequence[Case], aligner=None) -> dict[str, dict[str, list[str]]]:
    """ST4 by the retrieval aligner: ``{case_id: {answer id: [note ids]}}``."""
    from ehrqa.retrieval.aligner import load_model

    selected = load_model(aligner).select(4, list(inputs))
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
            ctx.record(case.id, as_submission(case, links[case.id]))
    elif todo:
        from ehrqa.tasks.llm_evidence import predict_alignment

        predict_alignment(todo, config, ctx)
    return ctx.predictions(inputs)
