"""Question interpretation (ST1): patient narrative -> clinician-style question (<= 15 words).

ST1's official input is the case id and the patient narrative, nothing else. Methods:

* ``rule`` (default): the narrative's last question sentence, lay first- and third-person
  references rewritten to "the patient", kept within 15 words;
* ``llm``: a chat model rewrites the narrative, shown the most similar (patient message,
  clinician question) pairs of an example pool (the bundled MeQSum by default) as earlier turns;
  with several samples the medoid question is kept. Replies that are empty once cleaned fall back
  to the rule (the record says so); a request that got no reply fails the case, which the next
  run retries.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from ehrqa.data.case import Case
from ehrqa.llm.prompt import load_prompt
from ehrqa.tasks.base import Context, ModelSettings
from ehrqa.tasks.postprocess import clean_question
from ehrqa.text import QUESTION_WORD_LIMIT, split_sentences, truncate_words


@dataclass(frozen=True)
class InterpretConfig(ModelSettings):
    method: str = "rule"
    prompt: str = "st1-question@1"
    max_new_tokens: int = 40
    shots: int = 3  # retrieved examples per prompt
    examples: str = "meqsum"  # the example pool: "meqsum" or a dataset directory with clinician questions

    METHODS = ("rule", "llm")


# Lay references to the patient, longest first; "my dad" before "my".
_PATIENT = (
    r"my (?:dad|father|mom|mother|husband|wife|son|daughter|brother|sister|grandfather|grandmother|grandma|grandpa"
    r"|partner|baby|child|uncle|aunt)"
)
_REWRITES = [
    (re.compile(rf"\b{_PATIENT}'s\b", re.I), "the patient's"),
    (re.compile(rf"\b{_PATIENT}\b", re.I), "the patient"),
    (re.compile(r"\b(?:I|he|she)\b(?!')"), "the patient"),
    (re.compile(r"\b(?:I'm|he's|she's)\b", re.I), "the patient is"),
    (re.compile(r"\b(?:my|his|her)\b", re.I), "the patient's"),
    (re.compile(r"\b(?:me|him)\b", re.I), "the patient"),
    (re.compile(r"\b(?:am|was) the patient\b", re.I), "was the patient"),
]


def patient_question_text(case: Case) -> str:
    """The patient's question: the narrative's last question sentence, else all of it."""
    questions = [s for s in split_sentences(case.narrative) if s.rstrip().endswith("?")]
    return questions[-1] if questions else case.narrative


def to_clinician_question(text: str) -> str:
    """Rewrite a lay question in the third person and keep it within the ST1 word limit."""
    text = " ".join(text.split())
    for pattern, replacement in _REWRITES:
        text = pattern.sub(replacement, text)
    text = text.replace("the patient the patient", "the patient")
    if text:
        text = text[0].upper() + text[1:]
    question = truncate_words(text, QUESTION_WORD_LIMIT)
    if not question.endswith("?"):
        question = question.rstrip(".,;:!") + "?"
    return question


def rule_question(case: Case) -> str:
    return to_clinician_question(patient_question_text(case))


def interpretation_messages(case: Case, config: InterpretConfig, ctx: Context | None = None) -> list[dict[str, str]]:
    """The prompt: system turn, retrieved examples as earlier turns, then the case's narrative."""
    from ehrqa.retrieval.examples import question_pool

    pool = ctx.examples if ctx is not None and ctx.examples is not None else question_pool(config.examples)
    examples = [({"narrative": q.narrative}, q.question) for q in pool.nearest_questions(case, config.shots)]
    return load_prompt(config.prompt).render({"narrative": case.narrative}, examples)


def predict(inputs: Sequence[Case], config: InterpretConfig | None = None, ctx: Context | None = None) -> dict:
    """ST1 predictions ``{case_id: question}`` for every input (id and narrative only)."""
    config = config or InterpretConfig()
    ctx = ctx or Context()
    todo = ctx.todo(inputs)
    if config.method == "rule":
        for case in todo:
            ctx.record(case.id, rule_question(case))
        return ctx.predictions(inputs)

    from ehrqa.llm.vote import medoid

    voter = config.voter
    prompt = load_prompt(config.prompt)
    generation = voter.generation()
    requests = [
        r
        for case in todo
        for r in ctx.requests(case, interpretation_messages(case, config, ctx), generation, prompt.ref)
    ]
    replies = ctx.complete(voter.backend, requests)
    by_case: dict[str, list] = {}
    for request, reply in zip(requests, replies, strict=True):
        by_case.setdefault(request.case_id, []).append(reply)
    for case in todo:
        replies = by_case.get(case.id, [])
        failed = [r.error or "no reply" for r in replies if not r.ok]
        if failed:  # a request that never got a reply: the case fails (and is retried), never the rule
            ctx.record(case.id, None, status="failed", reason=failed[0])
            continue
        questions = [q for q in (clean_question(r.text) for r in replies) if q]
        if not questions:
            ctx.record(case.id, rule_question(case), status="fallback", reason="empty reply", calls=len(replies))
            continue
        pick = medoid(questions) if len(questions) > 1 else 0
        ctx.record(case.id, questions[pick], samples=questions, calls=len(by_case[case.id]))
    return ctx.predictions(inputs)
