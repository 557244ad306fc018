"""ST2 and ST4 by chat models that vote: prompt, sample, parse, correct once, vote, fall back.

For every case and every voter (a backend + prompt + samples; the retrieval aligner may be one
voter too), each sample's reply is parsed by :mod:`ehrqa.llm.jsonout` (or, for answer-first
prompts, by the citation markers of a drafted answer). A reply that cannot be used gets one
correction turn naming its problems; if that fails too the sample is left out of the vote. The
kept sentences (ST2) or links (ST4) are those the vote rule ``vote_threshold`` keeps (a fraction
of the voting weight, majority, a count; :mod:`ehrqa.llm.vote`). A case without a single usable
(parsable) sample falls back to the retrieval aligner, and its record says so (``status: fallback``).
A request that got no reply at all (a connection failure, an HTTP error after retries) fails the
case instead: it is recorded as failed, named at the end of the run and retried by the next one,
never replaced by the aligner. No prediction ever names an id the case does not have.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ehrqa.data.case import Case
from ehrqa.llm.backend import ChatRequest
from ehrqa.llm.jsonout import Parsed, correction_message, parse_alignment, parse_evidence
from ehrqa.llm.prompt import case_slots, load_prompt, reply_schema
from ehrqa.llm.reply import cited_ids, strip_thinking
from ehrqa.tasks.base import Context, Voter

_LABEL_AT_LINE_START = re.compile(r"^\s*\[\s*\d+\s*\]", re.M)


def answer_citations(reply: str | None, note_ids: Sequence[str]) -> Parsed:
    """The note ids cited as ``[3]`` / ``[3, 5]`` / ``[3-5]`` in a drafted answer (answer-first ST2)."""
    # "[3] ..." at the start of a line is a note sentence's label copied from the prompt, not a citation
    found = cited_ids(_LABEL_AT_LINE_START.sub("", strip_thinking(reply or "")))
    valid = set(note_ids)
    kept = [sid for sid in note_ids if sid in set(found)]
    dropped = len({f for f in found if f not in valid})
    hint = f"note sentence ids: {', '.join(note_ids)}"
    if not found:
        problems = ["no [id] citations at the ends of sentences (copying the numbered note is not an answer)"]
        return Parsed([], problems, 0, ok=False, kind="evidence", hint=hint)
    return Parsed(kept, [], dropped, ok=bool(kept) or not dropped, kind="evidence", hint=hint)


def _example_reply(example: Case, prompt_id: str, subtask: int) -> str:
    """The reply a few-shot example should get, in the shape the prompt asks for, from its gold."""
    if subtask == 4:
        return json.dumps(
            {a.id: [int(c) if c.isdigit() else c for c in a.citations or ()] for a in example.answer_sentences or ()}
        )
    if "answer-first" in prompt_id and example.answer_sentences:
        return " ".join(f"{a.text} [{', '.join(a.citations or ())}]" for a in example.answer_sentences)
    labels = dict(example.relevance or ())
    return json.dumps({s.id: labels.get(s.id, "not-relevant") for s in example.sentences})


def messages_for(case: Case, voter: Voter, ctx: Context, shots: int, subtask: int) -> list[dict]:
    prompt = load_prompt(voter.prompt)
    examples = []
    if shots and ctx.examples is not None:
        for example in ctx.examples.nearest(case, shots):
            if subtask == 4 and not example.answer_sentences:
                continue
            examples.append((case_slots(example.input_for(subtask)), _example_reply(example, prompt.id, subtask)))
    return prompt.render(case_slots(case), examples)


Parser = Callable[[Case, str | None], Parsed]


@dataclass(frozen=True)
class Asked:
    """What :func:`ask` got from one voter (the run's totals are counted in ``ctx.counts``)."""

    samples: dict[str, list[Parsed | None]]  # case id -> per sample, the parsed reply (None: none usable)
    failed: list[tuple[str, str]]  # (case id, error) of each request that got no reply
    costs: dict[str, dict]  # case id -> calls, prompt_tokens, completion_tokens, seconds


def ask(ctx: Context, voter: Voter, cases: Sequence[Case], subtask: int, shots: int, parse: Parser) -> Asked:
    """Every sample of ``voter`` for every case, parsed, with one correction turn for unusable replies."""
    prompt = load_prompt(voter.prompt)
    generation = voter.generation(json=prompt.output == "json")
    by_id = {c.id: c for c in cases}
    requests: list[ChatRequest] = []
    for case in cases:
        messages = messages_for(case, voter, ctx, shots, subtask)
        requests += ctx.requests(case, messages, generation, prompt.ref, reply_schema(prompt, case))
    replies = ctx.complete(voter.backend, requests)
    samples = 1 if generation.greedy else generation.n
    results: dict[str, list] = {c.id: [None] * samples for c in cases}
    costs: dict[str, dict] = {
        c.id: {"calls": 0, "prompt_tokens": 0, "completion_tokens": 0, "seconds": 0.0} for c in cases
    }

    def count(request: ChatRequest, reply) -> None:
        cost = costs[request.case_id]
        cost["calls"] += 1
        cost["prompt_tokens"] += reply.prompt_tokens or 0
        cost["completion_tokens"] += reply.completion_tokens or 0
        cost["seconds"] = round(cost["seconds"] + reply.seconds, 3)

    failed: list[tuple[str, str]] = []
    retry: list[tuple[int, ChatRequest]] = []
    for request, reply in zip(requests, replies, strict=True):
        count(request, reply)
        if not reply.ok:
            failed.append((request.case_id, reply.error or "no reply"))
            continue
        parsed = parse(by_id[request.case_id], reply.text)
        if parsed.ok:
            results[request.case_id][request.sample] = parsed
        else:
            turn = (
                *request.messages,
                {"role": "assistant", "content": reply.text},
                {"role": "user", "content": correction_message(parsed)},
            )
            retry.append(
                (
                    request.sample,
                    ChatRequest(
                        turn,
                        request.config,
                        request.case_id,
                        request.sample,
                        prompt.ref + ":correction",
                        request.schema,
                    ),
                )
            )
    if retry:
        second = ctx.complete(voter.backend, [r for _, r in retry])
        for (sample, request), reply in zip(retry, second, strict=True):
            count(request, reply)
            if not reply.ok:
                failed.append((request.case_id, reply.error or "no reply"))
            else:
                parsed = parse(by_id[request.case_id], reply.text)
                if parsed.ok:
                    results[request.case_id][sample] = parsed
    return Asked(results, failed, costs)


def _parser(subtask: int, prompt_id: str) -> Parser:
    if subtask == 4:
        return lambda case, reply: parse_alignment(
            reply, [a.id for a in case.answer_sentences or ()], [s.id for s in case.sentences]
        )
    if "answer-first" in prompt_id:
        return lambda case, reply: answer_citations(reply, [s.id for s in case.sentences])
    return lambda case, reply: parse_evidence(reply, [s.id for s in case.sentences])


def _collect(cases: Sequence[Case], config, ctx: Context, subtask: int, aligner_output: Callable) -> tuple:
    """Per case, every voter's samples with their weights; the aligner's output where needed."""
    voters = config.all_voters
    samples: dict[str, list] = {c.id: [] for c in cases}
    weights: dict[str, list[float]] = {c.id: [] for c in cases}
    failures: dict[str, list[str]] = {c.id: [] for c in cases}
    costs: dict[str, dict] = {c.id: {} for c in cases}
    several = len(voters) > 1
    aligner = None
    for voter in voters:
        if voter.kind == "aligner":
            aligner = aligner if aligner is not None else aligner_output(cases)
            for case in cases:
                samples[case.id].append(aligner[case.id])
                weights[case.id].append(voter.weight)
            continue
        asked = ask(ctx, voter, cases, subtask, config.shots, _parser(subtask, voter.prompt))
        for case_id, error in asked.failed:
            failures[case_id].append(error)
        for case_id, cost in asked.costs.items():
            for key, value in cost.items():
                costs[case_id][key] = round(costs[case_id].get(key, 0) + value, 3)
        for case in cases:
            for parsed in asked.samples[case.id]:
                samples[case.id].append(None if parsed is None else parsed.value)
                weights[case.id].append(voter.weight / voter.samples if several else 1.0)
    return samples, weights, failures, costs, aligner


def predict_votes(subtask: int, cases: Sequence[Case], config, ctx: Context, by_aligner: Callable) -> None:
    """ST2 or ST4 by voting chat models; records each case (see :mod:`ehrqa.tasks.identify`/``align``).
    ``by_aligner(cases, aligner)``: the subtask's aligner output, for the aligner voter and fallbacks."""
    from ehrqa.data.submission import prediction_from_links
    from ehrqa.llm.vote import vote_ids, vote_links

    def aligner_output(cs):
        return by_aligner(cs, config.aligner)

    def prediction(case: Case, value):
        return value if subtask == 2 else prediction_from_links(value, [a.id for a in case.answer_sentences or ()])

    samples, weights, failures, costs, aligner = _collect(cases, config, ctx, subtask, aligner_output)
    fallback = [c for c in cases if not failures[c.id] and all(s is None for s in samples[c.id])]
    if fallback and aligner is None:
        aligner = aligner_output(fallback)
    for case in cases:
        if failures[case.id]:  # a request that never got a reply: the case fails, the next run retries it
            ctx.record(case.id, None, status="failed", reason=failures[case.id][0], **costs[case.id])
            continue
        usable = sum(s is not None for s in samples[case.id])
        if not usable:
            ctx.record(
                case.id,
                prediction(case, aligner[case.id]),
                status="fallback",
                reason="no usable reply after a correction turn",
                n_votes=0,
                **costs[case.id],
            )
            continue
        note_order = [s.id for s in case.sentences]
        if subtask == 2:
            vote = vote_ids(samples[case.id], config.vote_threshold, weights[case.id], note_order)
        else:
            answer_ids = [a.id for a in case.answer_sentences or ()]
            vote = vote_links(samples[case.id], config.vote_threshold, weights[case.id], answer_ids, note_order)
        ctx.record(
            case.id,
            prediction(case, vote.kept),
            votes=vote.counts,
            n_votes=vote.total,
            usable_samples=usable,
            **costs[case.id],
        )
