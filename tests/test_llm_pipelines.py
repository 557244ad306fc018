"""LLM pipelines for ST2/ST3/ST4: prompts, parsing in context, the correction turn, fallback, votes, examples."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ehrqa.data.archehr import read_dataset, sample_dir
from ehrqa.llm.prompt import available_prompts, case_slots, load_prompt
from ehrqa.retrieval.examples import ExamplePool
from ehrqa.tasks.align import AlignConfig
from ehrqa.tasks.align import predict as align
from ehrqa.tasks.base import Context, Voter
from ehrqa.tasks.generate import GenerateConfig
from ehrqa.tasks.generate import predict as generate
from ehrqa.tasks.identify import IdentifyConfig
from ehrqa.tasks.identify import predict as identify
from helpers import ScriptedBackend

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def cases():
    return read_dataset()


def test_every_shipped_prompt_renders_every_declared_slot(cases):
    case = cases[0].input_for(4)
    for name in available_prompts():
        prompt = load_prompt(name)
        assert prompt.subtask in (1, 2, 3, 4) and prompt.output in ("text", "json")
        messages = prompt.render({**case_slots(case), "draft": "A draft answer."})
        assert messages[-1]["role"] == "user" and "{{" not in json.dumps(messages)
        if "note" in prompt.slots:
            assert f"[{case.sentences[0].id}]" in messages[-1]["content"]
        assert prompt.ref == f"{name}:{prompt.sha256}"


def test_alignment_replies_are_parsed_and_never_name_unknown_ids(cases):
    inputs = [c.input_for(4) for c in cases[:3]]
    first = inputs[0]
    a1 = first.answer_sentences[0].id

    def reply(request):
        return f'Here you go:\n```json\n{{"{a1}": [{first.sentences[0].id}, 999], "77": [1]}}\n```'

    ctx = Context(backends={"default": ScriptedBackend(reply)})
    out = align(inputs, AlignConfig(method="llm"), ctx)
    known = {c.id: {s.id for s in c.sentences} for c in inputs}
    for case in inputs:
        answer_ids = [a.id for a in case.answer_sentences]
        assert [e["answer_id"] for e in out[case.id]] == answer_ids  # every answer sentence, in order
        assert all(set(e["evidence_id"]) <= known[case.id] for e in out[case.id])
    assert out[first.id][0]["evidence_id"] == [first.sentences[0].id]


@pytest.mark.model
def test_a_bad_reply_gets_one_correction_turn_then_the_aligner_stands_in(cases):
    inputs = [c.input_for(2) for c in cases[:2]]
    good = inputs[0].sentences[1].id

    def reply(request):
        corrected = request.prompt.endswith(":correction")
        if request.case_id == inputs[0].id:
            return json.dumps({good: "essential"}) if corrected else "I think sentence two matters."
        return "still not JSON"

    backend = ScriptedBackend(reply)
    ctx = Context(backends={"default": backend})
    out = identify(inputs, IdentifyConfig(method="llm"), ctx)
    assert out[inputs[0].id] == [good]
    correction = [r for r in backend.requests if r.prompt.endswith(":correction")]
    assert len(correction) == 2 and correction[0].messages[-2]["role"] == "assistant"
    assert "ids" in correction[0].messages[-1]["content"]
    fallback = ctx.records.by_case[inputs[1].id]
    assert fallback["status"] == "fallback" and "correction" in fallback["reason"]
    from ehrqa.tasks.identify import aligner_evidence

    assert out[inputs[1].id] == aligner_evidence([inputs[1]])[inputs[1].id]


@pytest.mark.model
def test_votes_across_samples_and_voters_follow_the_threshold(cases):
    case = cases[0].input_for(2)
    ids = [s.id for s in case.sentences]
    # five samples: ids[0] named 5 times, ids[1] 3 times, ids[2] twice
    script = iter([[ids[0], ids[1], ids[2]], [ids[0], ids[1], ids[2]], [ids[0], ids[1]], [ids[0]], [ids[0]]])
    backend = ScriptedBackend(lambda r: json.dumps(next(script)))
    ctx = Context(backends={"default": backend}, seed=1)
    config = IdentifyConfig(method="llm", samples=5, temperature=0.7, vote_threshold=0.5)
    out = identify([case], config, ctx)
    assert out[case.id] == [ids[0], ids[1]]  # 0.5 x 5 = 2.5 -> 3 votes needed
    record = ctx.records.by_case[case.id]
    assert record["votes"] == {ids[0]: 5, ids[1]: 3, ids[2]: 2} and record["n_votes"] == 5
    assert (record["calls"], record["prompt_tokens"], record["completion_tokens"]) == (5, 50, 25)  # per case
    assert len({r.config.seed for r in backend.requests}) == 5
    # the aligner as a second voter with the same weight as the five samples together
    script = iter([[ids[2]]] * 5)
    ctx = Context(backends={"default": ScriptedBackend(lambda r: json.dumps(next(script)))})
    voters = (Voter(samples=5, temperature=0.7), Voter(kind="aligner"))
    out = identify([case], IdentifyConfig(method="llm", voters=voters, vote_threshold=0.5), ctx)
    from ehrqa.tasks.identify import aligner_evidence

    assert set(out[case.id]) == {ids[2]} | set(aligner_evidence([case])[case.id])  # each voter holds half


@pytest.mark.model
def test_few_shot_examples_never_show_the_case_itself(cases):
    pool = ExamplePool(cases)
    for case in cases:
        neighbours = pool.nearest(case, 3)
        assert len(neighbours) == 3 and case.id not in {c.id for c in neighbours}
    renamed = [c.__class__(**{**c.__dict__, "id": f"copy-{c.id}"}) for c in cases]
    assert all(c.id != "copy-" + e.id for c in renamed for e in pool.nearest(c, 3))  # same note text is excluded
    assert not pool.without(cases[:5]).cases or all(
        c.id not in {x.id for x in cases[:5]} for c in pool.without(cases[:5]).cases
    )
    backend = ScriptedBackend(lambda r: "{}")
    ctx = Context(backends={"default": backend}, examples=pool)
    case = cases[0].input_for(4)
    align([case], AlignConfig(method="llm", shots=2), ctx)
    messages = backend.requests[0].messages
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user", "assistant", "user"]
    note = " ".join(case.sentences[0].text.split())
    assert all(note not in m["content"] for m in messages[1:-1])  # examples come from other cases


@pytest.mark.model
def test_evidence_first_answers_are_rewritten_and_cited(cases):
    case = cases[0].input_for(3)
    chosen = [s.id for s in case.sentences[:3]]

    def reply(request):
        if "Draft answer" in request.messages[-1]["content"]:
            return "The rewritten answer. It keeps the facts."
        return "A first draft."

    backend = ScriptedBackend(reply)
    ctx = Context(backends={"default": backend})
    config = GenerateConfig(prompt="st3-evidence@1", rewrite_prompt="st3-rewrite@1")
    out = generate([case], config, ctx, evidence={case.id: chosen})
    assert out[case.id] == "The rewritten answer. It keeps the facts."
    record = ctx.records.by_case[case.id]
    assert record["draft"] == "A first draft." and record["calls"] == 2
    cited = record["answer_sentences"]
    assert [a["text"] for a in cited] == ["The rewritten answer.", "It keeps the facts."]
    assert all(set(a["citations"]) <= {s.id for s in case.sentences} for a in cited)


def test_align_command_votes_through_a_server(tmp_path, openai_server):
    cases = read_dataset()[:2]

    def responder(body):
        from fakes.openai_server import reply

        text = body["messages"][-1]["content"]
        case = next(c for c in cases if " ".join(c.sentences[0].text.split()) in text)
        return reply(json.dumps({a.id: [case.sentences[0].id] for a in case.answer_sentences}))

    openai_server.responder = responder
    out = tmp_path / "st4.json"
    args = [
        "-q",
        "align",
        "--method",
        "llm",
        "--backend",
        "openai",
        "--base-url",
        openai_server.base_url,
        "--model",
        "m",
        "--samples",
        "3",
        "--temperature",
        "0.7",
        "--vote-threshold",
        "0.5",
        "--data",
        str(sample_dir()),
        "--cases",
        cases[0].id,
        cases[1].id,
        "--out",
        str(out),
    ]
    env = {"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-m", "ehrqa.cli", *args], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    entries = json.loads(out.read_text())
    assert entries[0]["prediction"][0]["evidence_id"] == [cases[0].sentences[0].id]
    assert openai_server.count == 6 and len({b["seed"] for b in openai_server.bodies}) == 6
    records = (tmp_path / "st4.run" / "steps" / "st4" / "records.jsonl").read_text().splitlines()
    assert json.loads(records[0])["n_votes"] == 3


@pytest.mark.slow
def test_smollm2_runs_every_subtask_end_to_end(tmp_path):
    """The laptop pipeline check: the shipped SmolLM2 through ST1-ST4 llm methods on two sample cases.
    A 135M model mostly fails the JSON contracts; whatever it replies, every prediction is valid."""
    from ehrqa.data.submission import check_submission, read_submission
    from ehrqa.runs.config import parse_recipe
    from ehrqa.runs.pipeline import run

    tokens = {"max_new_tokens": 48}
    recipe = parse_recipe(
        {
            "backends": {"default": {"kind": "hf", "model": "smollm2"}},
            "steps": [
                {"subtask": 1, "method": "llm", **tokens},
                {"subtask": 2, "method": "llm", "prompt": "st2-answer-first@1", **tokens},
                {"subtask": 3, "method": "llm", "prompt": "st3-evidence@1", "evidence": "st2", **tokens},
                {"subtask": 4, "method": "llm", **tokens},
            ],
        },
        "smollm2-llm",
    )
    cases = read_dataset()[:2]
    rows = run(recipe, cases, tmp_path / "run")
    assert [r["status"] for r in rows] == ["ok"] * 4
    for row in rows:
        check_submission(read_submission(row["submission"]), row["subtask"], cases)
        assert row["calls"] >= 2 and "scores" in row


def test_a_run_never_shows_a_predicted_case_as_an_example(tmp_path):
    from ehrqa.data.archehr import write_key, write_xml
    from ehrqa.runs.config import StepSpec
    from ehrqa.runs.pipeline import example_pool, file_sha256

    cases = read_dataset()
    step = StepSpec(4, "st4", AlignConfig(method="llm", shots=2, examples=str(sample_dir())))
    # examples from another dataset that shares two cases with the evaluated split: those two are removed
    other = tmp_path / "other"
    write_xml(cases[:5], other / "archehr-qa.xml")
    write_key(cases[:5], other / "archehr-qa_key.json")
    step_other = StepSpec(4, "st4", AlignConfig(method="llm", shots=2, examples=str(other)))
    pool = example_pool(step_other, [c.input_for(4) for c in cases[3:]], {"xml_sha256": "another dataset"})
    assert [c.id for c in pool.cases] == [c.id for c in cases[:3]]
    # examples from the very dataset being run: leave-one-out, the case itself is never offered
    same = {"xml_sha256": file_sha256(sample_dir() / "archehr-qa.xml")}
    pool = example_pool(step, [c.input_for(4) for c in cases], same)
    assert len(pool.cases) == len(cases)
    assert all(case.id not in {e.id for e in pool.nearest(case, 3)} for case in cases)
    assert example_pool(StepSpec(4, "st4", AlignConfig(method="llm")), cases, same) is None  # no shots, no pool


def test_answer_first_citations_ignore_copied_sentence_labels():
    from ehrqa.tasks.llm_evidence import answer_citations as cited_ids

    ids = [str(i) for i in range(1, 10)]
    answer = "He had a blocked artery [3, 5]. A stent was placed [7-8].\n[9] A copied note line."
    assert cited_ids(answer, ids).value == ["3", "5", "7", "8"]
    echoed = "[1] Admission note.\n[2] Chest pain on arrival.\n[3] ECG showed"
    parsed = cited_ids(echoed, ids)
    assert not parsed.ok and "note sentence ids" in parsed.hint  # goes to the correction turn


def test_one_grammar_reads_and_strips_citation_markers():
    from ehrqa.llm.reply import cited_ids, strip_citations
    from ehrqa.tasks.postprocess import clean_answer

    text = "A stent was placed [S3, 5]. Pain eased [sentences 7-9] and |10| then [11 and 12]."
    assert cited_ids(text) == ["3", "5", "7", "8", "9", "10", "11", "12"]
    assert strip_citations(text) == "A stent was placed. Pain eased and then."
    assert clean_answer("<think>[1] draft</think>" + text) == "A stent was placed. Pain eased and then."
    assert cited_ids("[3-1]") == ["3", "1"]  # a backwards span is two ids, not a range


def test_a_sample_or_correction_without_a_reply_fails_the_case_instead_of_falling_back(cases):
    from ehrqa.llm.backend import Reply

    inputs = [c.input_for(4) for c in cases[:3]]
    lost_sample, lost_correction, fine = (c.id for c in inputs)

    def reply(request):
        case = next(c for c in inputs if c.id == request.case_id)
        if case.id == lost_sample and request.sample == 1:
            return Reply(None, error="HTTP 502 after 4 attempts")
        if case.id == lost_correction:
            return Reply(None, error="timeout") if request.prompt.endswith(":correction") else "no JSON here"
        return json.dumps({a.id: [case.sentences[0].id] for a in case.answer_sentences})

    ctx = Context(backends={"default": ScriptedBackend(reply)})
    out = align(inputs, AlignConfig(method="llm", samples=3, temperature=0.7), ctx)
    assert list(out) == [fine]
    records = ctx.records.by_case
    assert (records[lost_sample]["status"], records[lost_sample]["reason"]) == ("failed", "HTTP 502 after 4 attempts")
    assert (records[lost_correction]["status"], records[lost_correction]["reason"]) == ("failed", "timeout")
    assert records[fine]["status"] == "ok"
