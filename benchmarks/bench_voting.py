"""Self-consistency and model votes on simulated annotators: measured micro-F1 next to what the arithmetic predicts.

A simulated model (a :class:`~ehrqa.llm.backend.ChatBackend` that knows the gold) answers every
sample by keeping each gold link (ST4) or essential sentence (ST2) with probability ``p`` and adding
each wrong one with probability ``q``, drawing from the sample's own seed, in a mix of reply
formats (plain JSON, fenced JSON with prose, the official list shape, "S3"/range strings, think
blocks, per-sentence labels). 5% of first replies are garbage, so the correction turn is exercised
(the corrected reply is a fresh, well-formed draw, so the arithmetic below still holds).

With N samples and threshold F a link needs ``t = ceil(F x N - 1e-9)`` votes, so a gold link is
kept with probability ``P(Bin(N, p) >= t)`` and a wrong one with ``P(Bin(N, q) >= t)``; with G gold
and W wrong candidates, expected TP = G Pg, FP = W Pw, FN = G - TP, and the predicted micro-F1 is
``2 TP / (2 TP + FP + FN)``. Three models voting use the sum of their (different) binomials.
The measured F1 pools TP/FP/FN over ``--replicates`` runs with different run seeds (sd across them in brackets).

By default the simulated backends are driven through the real task code:
``ehrqa.tasks.align.predict`` / ``ehrqa.tasks.identify.predict`` with ``method="llm"`` (prompt
rendering, per-sample seeds, parsing, the correction turn, voting), with the run's reply cache in
front of every backend, so the threshold sweep over one N costs no new calls. ``--direct`` uses
only ``ehrqa.llm.jsonout`` + ``ehrqa.llm.vote`` (the same seeds, the same correction rule).

    .venv/bin/python benchmarks/bench_voting.py [--replicates 4] [--direct]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ehrqa.data.archehr import read_dataset
from ehrqa.data.case import Case
from ehrqa.llm.backend import ChatBackend, ChatRequest, GenerationConfig, Reply, sample_seed
from ehrqa.llm.cache import CachedBackend
from ehrqa.llm.jsonout import correction_message, parse_alignment, parse_evidence
from ehrqa.llm.vote import vote_ids, vote_links
from ehrqa.score.sets import Counts, micro

TEMPERATURE = 0.7
GARBAGE = 0.05
# (p, q) per simulated model; the first is also the single model of the N-sample rows
MODELS = {
    4: [(0.60, 0.020), (0.55, 0.030), (0.65, 0.025)],
    2: [(0.65, 0.15), (0.60, 0.20), (0.70, 0.12)],
}
SWEEP = {1: [0.5], 3: [0.34, 0.5, 1.0], 5: [0.2, 0.4, 0.6, 0.8], 9: [0.3, 0.5, 0.7]}


# ---------------------------------------------------------------- the simulated annotator


def candidates(case: Case, subtask: int) -> tuple[list, set]:
    """Every link (ST4) or sentence (ST2) a model could name, and the gold ones."""
    if subtask == 4:
        universe = [(a.id, s.id) for a in case.answer_sentences or () for s in case.sentences]
        return universe, case.citation_pairs
    return [s.id for s in case.sentences], set(case.essential_ids)


def _ids_text(ids: Sequence[str], rng: random.Random) -> object:
    """Ids in one of the forms models use: ints, strings, "S3" strings, or a compressed range string."""
    style = rng.randrange(4)
    if style == 0:
        return [int(i) for i in ids]
    if style == 1:
        return list(ids)
    if style == 2:
        return [f"S{i}" for i in ids]
    parts, run = [], []
    for i in [int(x) for x in ids]:
        if run and i == run[-1] + 1:
            run.append(i)
            continue
        if run:
            parts.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
        run = [i]
    if run:
        parts.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
    return ", ".join(parts)


def _wrap(body: str, rng: random.Random) -> str:
    style = rng.randrange(4)
    if style == 0:
        return body
    if style == 1:
        return f"Here is my answer.\n```json\n{body}\n```\nEach id was checked against the note."
    if style == 2:
        return f"<think>\nFirst draft: {{}}\nLet me check each sentence.\n</think>\n{body}"
    return f'Reasoning: the draft was {{"1": [999]}}.\nFinal:\n{body}'


def format_reply(case: Case, subtask: int, chosen: set, rng: random.Random) -> str:
    if subtask == 4:
        links = {a.id: [s.id for s in case.sentences if (a.id, s.id) in chosen] for a in case.answer_sentences}
        if rng.random() < 0.3:
            body = json.dumps([{"answer_id": a, "evidence_id": ids} for a, ids in links.items()])
        else:
            body = json.dumps({a: _ids_text(ids, rng) for a, ids in links.items()})
        return _wrap(body, rng)
    ids = [s.id for s in case.sentences if s.id in chosen]
    style = rng.randrange(4)
    if style == 0:
        body = json.dumps({s.id: "essential" if s.id in chosen else "not-relevant" for s in case.sentences})
    elif style == 1:
        body = json.dumps(
            [{"id": int(s.id), "label": "essential" if s.id in chosen else "not-relevant"} for s in case.sentences]
        )
    elif style == 2:
        body = json.dumps({"evidence": _ids_text(ids, rng)})
    else:
        listed = _ids_text(ids, rng)
        body = json.dumps(listed if isinstance(listed, list) else [listed])  # ["2-4, 7"]
    return _wrap(body, rng)


class Annotator(ChatBackend):
    """A simulated model: keeps each gold candidate with probability p, adds each wrong one with q."""

    def __init__(self, name: str, cases: Sequence[Case], subtask: int, p: float, q: float) -> None:
        self.description = {"kind": "simulated", "model": name, "p": p, "q": q}
        self.name, self.subtask, self.p, self.q = name, subtask, p, q
        self.cases = {c.id: c for c in cases}
        self.calls = 0

    def answer(self, request: ChatRequest) -> Reply:
        case = self.cases[request.case_id]
        messages = request.messages
        correction = len(messages) >= 2 and messages[-2]["role"] == "assistant"
        rng = random.Random(f"{self.name}/{request.case_id}/{request.config.seed}/{request.sample}/{correction}")
        if not correction and rng.random() < GARBAGE:
            return Reply("I think the note supports most of the answer, especially the middle part.")
        universe, gold = candidates(case, self.subtask)
        chosen = {c for c in universe if rng.random() < (self.p if c in gold else self.q)}
        return Reply(format_reply(case, self.subtask, chosen, rng))

    def complete(self, requests, on_reply=None):
        replies = []
        for i, request in enumerate(requests):
            self.calls += 1
            reply = self.answer(request)
            replies.append(reply)
            if on_reply is not None:
                on_reply(i, reply)
        return replies


# ---------------------------------------------------------------- predicting: the task code, or jsonout + vote


@dataclass(frozen=True)
class Setting:
    label: str
    models: int  # how many simulated models vote (1 or 3)
    samples: int  # samples per model
    threshold: float


def predict_task(setting: Setting, subtask: int, inputs: list[Case], backends: dict, seed: int) -> dict:
    """Predictions through ``ehrqa.tasks.align|identify.predict`` with ``method="llm"``."""
    from ehrqa.tasks.base import Context, Voter

    ctx = Context(seed=seed, _built=dict(backends))
    names = list(backends)[: setting.models]
    prompt = "st4-align@1" if subtask == 4 else "st2-classify@1"
    voters = tuple(Voter(backend=n, prompt=prompt, samples=setting.samples, temperature=TEMPERATURE) for n in names)
    if subtask == 4:
        from ehrqa.data.submission import links_from_prediction
        from ehrqa.tasks.align import AlignConfig, predict

        config = AlignConfig(method="llm", voters=voters, vote_threshold=setting.threshold)
        out = {cid: links_from_prediction(pred) for cid, pred in predict(inputs, config, ctx).items()}
    else:
        from ehrqa.tasks.identify import IdentifyConfig, predict

        config = IdentifyConfig(method="llm", voters=voters, vote_threshold=setting.threshold)
        out = predict(inputs, config, ctx)
    fallbacks = [r for r in ctx.records.by_case.values() if r.get("status") != "ok"]
    if fallbacks:
        raise RuntimeError(f"{len(fallbacks)} case(s) fell back to the aligner; the simulation should never need it")
    return out


def predict_direct(setting: Setting, subtask: int, inputs: list[Case], backends: dict, seed: int) -> dict:
    """The same pipeline written with jsonout + vote only: samples, one correction turn, a weighted vote."""
    config = GenerationConfig(temperature=TEMPERATURE, n=setting.samples, max_new_tokens=512)
    names = list(backends)[: setting.models]
    out = {}
    for case in inputs:
        note_ids = [s.id for s in case.sentences]
        answer_ids = [a.id for a in case.answer_sentences or ()]

        def parse(text, _note=note_ids, _answers=answer_ids):
            return parse_alignment(text, _answers, _note) if subtask == 4 else parse_evidence(text, _note)

        samples, weights = [], []
        for name in names:
            messages = ({"role": "user", "content": f"case {case.id}"},)
            requests = [
                ChatRequest(messages, config.for_sample(sample_seed(seed, case.id, k)), case.id, k, "bench")
                for k in range(setting.samples)
            ]
            for request, reply in zip(requests, backends[name].complete(requests), strict=True):
                parsed = parse(reply.text)
                if not parsed.ok:
                    turn = (
                        *messages,
                        {"role": "assistant", "content": reply.text},
                        {"role": "user", "content": correction_message(parsed)},
                    )
                    fixed = ChatRequest(turn, request.config, case.id, request.sample, "bench:correction")
                    parsed = parse(backends[name].complete([fixed])[0].text)
                samples.append(parsed.value if parsed.ok else None)
                weights.append(1.0 / setting.samples if setting.models > 1 else 1.0)
        if subtask == 4:
            out[case.id] = vote_links(samples, setting.threshold, weights, answer_ids, note_ids).kept
        else:
            out[case.id] = vote_ids(samples, setting.threshold, weights, note_ids).kept
    return out


# ---------------------------------------------------------------- scoring and arithmetic


def counts(cases: Sequence[Case], predictions: dict, subtask: int) -> tuple[int, int, int]:
    """Micro TP, FP, FN (ST4 pairs; ST2 strict, against the essential sentences)."""
    tp = fp = fn = 0
    for case in cases:
        if subtask == 4:
            predicted = {(a, s) for a, ids in predictions[case.id].items() for s in ids}
        else:
            predicted = set(predictions[case.id])
        _, gold = candidates(case, subtask)
        tp += len(predicted & gold)
        fp += len(predicted - gold)
        fn += len(gold - predicted)
    return tp, fp, fn


def f1(tp: float, fp: float, fn: float) -> float:
    return micro([Counts(tp, tp + fp, tp + fn)], both_empty_is_one=False)[2]


def votes_distribution(ps: Sequence[float], samples: int) -> list[float]:
    """P(total votes = k) when each model with probability p_m casts Bin(samples, p_m) votes."""
    dist = [1.0]
    for p in ps:
        one = [math.comb(samples, k) * p**k * (1 - p) ** (samples - k) for k in range(samples + 1)]
        dist = [
            sum(dist[i] * one[k - i] for i in range(len(dist)) if 0 <= k - i <= samples)
            for k in range(len(dist) + samples)
        ]
    return dist


def needed(setting: Setting) -> int:
    """Votes (in samples) a candidate needs: the weight rule of ehrqa.llm.vote in whole samples."""
    total = setting.models * setting.samples
    return max(1, math.ceil(setting.threshold * total - 1e-9))


def predicted_f1(setting: Setting, subtask: int, gold: int, wrong: int) -> float:
    models = MODELS[subtask][: setting.models]
    t = needed(setting)
    keep_gold = sum(votes_distribution([p for p, _ in models], setting.samples)[t:])
    keep_wrong = sum(votes_distribution([q for _, q in models], setting.samples)[t:])
    tp = gold * keep_gold
    return f1(tp, wrong * keep_wrong, gold - tp)


# ---------------------------------------------------------------- the table


def settings() -> list[Setting]:
    rows = [Setting("1 sample", 1, 1, 0.5)]
    for n in (3, 5, 9):
        rows += [Setting(f"N={n} F={f:g}", 1, n, f) for f in SWEEP[n]]
    rows += [Setting("3 models x 1, majority", 3, 1, 0.5), Setting("3 models x 5, F=0.5", 3, 5, 0.5)]
    return rows


def bench(name: str, cases: list[Case], subtask: int, replicates: int, direct: bool, tmp: Path) -> None:
    gold = sum(len(candidates(c, subtask)[1]) for c in cases)
    wrong = sum(len(candidates(c, subtask)[0]) for c in cases) - gold
    p, q = MODELS[subtask][0]
    what = "links" if subtask == 4 else "essential sentences"
    print(
        f"\nST{subtask} {name}: {len(cases)} cases, {gold} gold {what}, {wrong} wrong candidates; "
        f"models (p, q) = {', '.join(f'({a:g}, {b:g})' for a, b in MODELS[subtask])}"
    )
    print(
        f"{'setting':<24} {'votes':>5} {'measured F1 (sd)':>17} {'predicted':>9} {'req/case':>8} "
        f"{'new calls/case':>14} {'ms/case':>7}"
    )
    inputs = [c.input_for(subtask) for c in cases]
    predict = predict_direct if direct else predict_task
    pooled = {s: [0, 0, 0] for s in settings()}
    per_rep = {s: [] for s in settings()}
    cost = {s: [0, 0, 0.0] for s in settings()}  # requests, new calls, seconds
    for rep in range(replicates):
        simulated = [Annotator(f"sim-{m}", cases, subtask, *pq) for m, pq in enumerate(MODELS[subtask])]
        cached = {a.name: CachedBackend(a, tmp / f"{name}-st{subtask}-{a.name}.jsonl") for a in simulated}
        for setting in settings():
            before_calls = sum(a.calls for a in simulated)
            before_hits = sum(c.hits for c in cached.values())
            start = time.perf_counter()
            predictions = predict(setting, subtask, inputs, cached, seed=rep)
            cost[setting][2] += time.perf_counter() - start
            new_calls = sum(a.calls for a in simulated) - before_calls
            cost[setting][0] += new_calls + sum(c.hits for c in cached.values()) - before_hits
            cost[setting][1] += new_calls
            c = counts(cases, predictions, subtask)
            pooled[setting] = [x + y for x, y in zip(pooled[setting], c, strict=True)]
            per_rep[setting].append(f1(*c))
        for backend in cached.values():
            backend.cache.close()
    runs = replicates * len(cases)
    for setting in settings():
        measured = f1(*pooled[setting])
        values = per_rep[setting]
        mean = sum(values) / len(values)
        sd = math.sqrt(sum((v - mean) ** 2 for v in values) / max(1, len(values) - 1))
        requests, calls, seconds = cost[setting]
        print(
            f"{setting.label:<24} {needed(setting):>5} {measured:>10.3f} ({sd:.3f}) "
            f"{predicted_f1(setting, subtask, gold, wrong):>9.3f} {requests / runs:>8.2f} {calls / runs:>14.2f} "
            f"{1000 * seconds / runs:>7.2f}"
        )


def task_code_works(cases: list[Case]) -> bool:
    """Whether the task code runs here (it is being written alongside this benchmark); say why not."""
    try:
        for subtask in (4, 2):
            backends = {"sim-0": Annotator("sim-0", cases[:1], subtask, *MODELS[subtask][0])}
            predict_task(Setting("probe", 1, 1, 0.5), subtask, [cases[0].input_for(subtask)], backends, seed=0)
    except Exception as e:  # noqa: BLE001 - any failure means: measure with jsonout + vote instead
        print(
            f"(ehrqa.tasks.*.predict with method=llm does not run here: {type(e).__name__}: {e}; "
            "using jsonout + vote directly)"
        )
        return False
    return True


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicates", type=int, default=4, help="runs with different run seeds (default 4)")
    parser.add_argument("--direct", action="store_true", help="jsonout + vote only, not the task code")
    args = parser.parse_args(argv)
    os.environ.setdefault("EHRQA_NO_PROGRESS", "1")  # the table is the output
    from ehrqa.train.aligner import aci_dev_dir
    from ehrqa.train.examples import mediqa_dev_dir

    datasets = [  # the copies bundled with ehrqa (and their licences) under src/ehrqa/resources/corpora
        ("sample", read_dataset(), (2, 4)),
        ("aci_dev", read_dataset(aci_dev_dir()), (2, 4)),
        ("mediqa_dev", read_dataset(mediqa_dev_dir()), (2,)),
    ]
    if not args.direct:
        args.direct = not task_code_works(datasets[0][1])
    print(
        f"driven through {'ehrqa.llm.jsonout + ehrqa.llm.vote' if args.direct else 'ehrqa.tasks.*.predict'}; "
        f"{args.replicates} replicates; temperature {TEMPERATURE}; {GARBAGE:.0%} garbage first replies"
    )
    start = time.perf_counter()
    shm = Path("/dev/shm")  # the cache fsyncs every reply; on tmpfs that costs nothing
    with tempfile.TemporaryDirectory(dir=shm if shm.is_dir() else None) as tmp:
        for name, cases, subtasks in datasets:
            for subtask in sorted(subtasks, reverse=True):
                usable = [c for c in cases if subtask == 2 or any(a.citations for a in c.answer_sentences or ())]
                bench(name, usable, subtask, args.replicates, args.direct, Path(tmp))
    print(f"\ntotal {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
