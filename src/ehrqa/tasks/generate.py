"""Answer generation (ST3): case -> one grounded answer paragraph of at most 75 words.

Input: the XML side of a case (narrative, clinician question, numbered note), never the key.
Methods:

* ``llm``: a chat model answers from the prompt (``st3-answer@1`` by default: narrative, clinician
  question and numbered note); the reply is cleaned by :func:`clean_answer`. Evidence-first
  (``evidence: st2``) shows only the sentences an earlier ST2 step chose; several samples are
  reduced to one by a selector (the medoid);
* ``extractive``: the sentences the ST2 model ranks highest, in note order and within 75 words,
  grounded by construction (:mod:`ehrqa.retrieval.extractive`).

Each finished case is recorded at once (see :mod:`ehrqa.tasks.base`), so a resumed run skips it.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from ehrqa.data.case import Case
from ehrqa.llm.prompt import case_slots, load_prompt
from ehrqa.tasks.base import Context, ModelSettings, shared_aligner
from ehrqa.tasks.postprocess import clean_answer

log = logging.getLogger(__name__)

# Used only when a reply is empty after cleaning: the submission needs a non-empty answer.
EMPTY_REPLY_FALLBACK = "The provided notes do not contain enough information to answer this question."


@dataclass(frozen=True)
class GenerateConfig(ModelSettings):
    method: str = "llm"
    prompt: str = "st3-answer@1"
    max_new_tokens: int = 112
    select: str = "medoid"  # how one answer is chosen from several samples
    evidence: str | None = None  # "st2": answer from the sentences an earlier ST2 step chose
    rewrite_prompt: str | None = None  # a second pass that rewrites the answer (e.g. "st3-rewrite@1")
    shots: int = 0
    examples: str | None = None
    aligner: str | None = None  # the aligner model: ranks sentences (extractive), cites answers (cite)
    cite: bool = True  # align each answer sentence back to the note (a cited answer in the records)

    METHODS = ("llm", "extractive")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.select not in ("medoid", "first"):
            raise ValueError(f"select is 'medoid' or 'first', not {self.select!r}")


def answer_messages(case: Case, config: GenerateConfig, evidence: Sequence[str] | None = None, ctx=None) -> list:
    """The ST3 prompt of a case (only ``evidence`` sentences when given), with retrieved examples."""
    prompt = load_prompt(config.prompt)
    examples = []
    if config.shots and ctx is not None and ctx.examples is not None:
        for example in ctx.examples.nearest(case, config.shots):
            example_evidence = list(example.essential_ids) if evidence is not None else None
            examples.append((case_slots(example, evidence_ids=example_evidence), example.answer or ""))
    return prompt.render(case_slots(case, evidence_ids=evidence), examples)


def predict(
    inputs: Sequence[Case],
    config: GenerateConfig | None = None,
    ctx: Context | None = None,
    evidence: Mapping[str, Sequence[str]] | None = None,
) -> dict:
    """ST3 predictions ``{case_id: answer}``; ``evidence`` (ST2 predictions) for evidence-first."""
    config = config or GenerateConfig()
    ctx = ctx or Context()
    todo = ctx.todo(inputs)
    if not todo:
        return ctx.predictions(inputs)
    if config.method == "extractive":
        from ehrqa.retrieval.extractive import extractive_answer, extractive_predict

        if evidence is not None:
            for case in todo:
                answer, cited = extractive_answer(case, list(evidence.get(case.id, [])))
                ctx.record(case.id, answer, answer_sentences=_cited(cited))
        else:
            for case_id, (answer, cited) in extractive_predict(todo, model=shared_aligner(config.aligner)).items():
                ctx.record(case_id, answer, answer_sentences=_cited(cited))
        return ctx.predictions(inputs)

    voter = config.voter
    prompt = load_prompt(config.prompt)
    generation = voter.generation()
    requests = []
    for case in todo:
        chosen = list(evidence.get(case.id, [])) if evidence is not None else None
        requests += ctx.requests(case, answer_messages(case, config, chosen, ctx), generation, prompt.ref)
    wanted = Counter(r.case_id for r in requests)
    received: dict[str, list] = {case.id: [] for case in todo}

    by_id = {case.id: case for case in todo}
    drafts: dict[str, tuple[str, dict]] = {}

    def on_reply(i: int, reply) -> None:
        case_id = requests[i].case_id
        received[case_id].append((requests[i].sample, reply))
        if len(received[case_id]) == wanted[case_id]:
            chosen = _choose(by_id[case_id], sorted(received[case_id], key=lambda x: x[0]), config, ctx)
            if chosen is not None and config.rewrite_prompt:
                drafts[case_id] = chosen  # recorded after the rewrite pass
            elif chosen is not None:
                _record(by_id[case_id], *chosen, config, ctx)

    ctx.complete(voter.backend, requests, on_reply)
    if drafts:
        _rewrite([by_id[cid] for cid in drafts], drafts, config, ctx, evidence)
    return ctx.predictions(inputs)


def _rewrite(cases: list[Case], drafts: dict, config: GenerateConfig, ctx: Context, evidence) -> None:
    """The rewrite pass: each selected draft is rewritten (greedy) from the same note sentences; an
    empty rewrite keeps the draft (a fallback, recorded as one); no reply fails the case."""
    prompt = load_prompt(config.rewrite_prompt)
    generation = replace(config.voter, samples=1, temperature=0.0).generation()
    requests = []
    for case in cases:
        chosen = list(evidence.get(case.id, [])) if evidence is not None else None
        slots = {**case_slots(case, evidence_ids=chosen), "draft": drafts[case.id][0]}
        requests += ctx.requests(case, prompt.render(slots), generation, prompt.ref)

    def on_reply(i: int, reply) -> None:
        case = cases[i]
        if not reply.ok:  # no reply: the case fails and is retried, never silently left unrewritten
            ctx.record(case.id, None, status="failed", reason=reply.error or "no reply")
            return
        draft, extra = drafts[case.id]
        rewritten = clean_answer(reply.text)
        extra = {**extra, "draft": draft, "calls": extra["calls"] + 1}
        if not rewritten:
            extra.update(status="fallback", reason="empty rewrite: the draft is kept")
        _record(case, rewritten or draft, extra, config, ctx)

    ctx.complete(config.backend, requests, on_reply)


def _cited(cited) -> list[dict]:
    """``[(sentence text, [note ids])]`` as the records' cited answer; a sentence nothing supports is flagged."""
    return [
        {"id": str(i), "text": text, "citations": list(ids), "supported": bool(ids)}
        for i, (text, ids) in enumerate(cited, 1)
    ]


def cite_answer(case: Case, answer: str, aligner=None) -> list[dict]:
    """A generated answer as an ArchEHR-2025-style cited answer: each sentence with the note
    sentences the ST4 aligner links it to; a sentence that nothing supports is flagged."""
    from ehrqa.data.case import AnswerSentence
    from ehrqa.tasks.align import aligner_links
    from ehrqa.text import split_sentences

    sentences = tuple(AnswerSentence(str(i), text) for i, text in enumerate(split_sentences(answer), 1))
    if not sentences or not case.sentences:
        return []
    links = aligner_links([replace(case, answer_sentences=sentences)], aligner)[case.id]
    return _cited([(a.text, links.get(a.id, [])) for a in sentences])


def _choose(case: Case, replies: list, config: GenerateConfig, ctx: Context) -> tuple[str, dict] | None:
    """The answer of a case once all its samples arrived (the medoid of several), with its costs;
    None when the case was recorded as failed or given the fixed fallback."""
    failed = [r.error or "no reply" for _, r in replies if not r.ok]
    if failed:  # a sample without a reply: the medoid of the others would differ from a full run's
        ctx.record(case.id, None, status="failed", reason=failed[0])
        return None
    answers = [clean_answer(r.text) for _, r in replies if r.ok]
    answers = [a for a in answers if a]
    extra = {
        "calls": len(replies),
        "seconds": round(sum(r.seconds for _, r in replies), 3),
        "prompt_tokens": sum(r.prompt_tokens or 0 for _, r in replies),
        "completion_tokens": sum(r.completion_tokens or 0 for _, r in replies),
    }
    if not answers:
        log.warning("case %s: the reply was empty after cleaning; using a fixed fallback", case.id)
        ctx.record(case.id, EMPTY_REPLY_FALLBACK, status="fallback", reason="empty reply", **extra)
        return None
    pick = 0
    if len(answers) > 1 and config.select == "medoid":
        from ehrqa.llm.vote import medoid

        pick = medoid(answers)
    extra["replies"] = [r.text for _, r in replies if r.ok]
    return answers[pick], extra


def _record(case: Case, answer: str, extra: dict, config: GenerateConfig, ctx: Context) -> None:
    if config.cite:
        extra = {**extra, "answer_sentences": cite_answer(case, answer, config.aligner)}
    ctx.record(case.id, answer, **extra)
