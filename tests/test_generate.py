"""ST3 answer generation: post-processing, records and resume, samples and the medoid, the shipped SmolLM2."""

from __future__ import annotations

import pytest

from ehrqa.data.archehr import read_dataset
from ehrqa.data.submission import build_submission, check_submission
from ehrqa.llm.backend import Reply
from ehrqa.tasks.base import Context
from ehrqa.tasks.generate import EMPTY_REPLY_FALLBACK, GenerateConfig, predict
from ehrqa.tasks.postprocess import clean_answer as postprocess_answer
from ehrqa.text import word_count
from helpers import ScriptedBackend


@pytest.fixture(scope="module")
def cases():
    return [c.input_for(3) for c in read_dataset()]


# ------------------------------------------------------------------ post-processing


def test_think_blocks_are_removed():
    assert postprocess_answer("<think>\nthe patient is old\n</think>\n\nHe had a stent.") == "He had a stent."
    # the opening tag was in the prompt, only the closing one is generated
    assert postprocess_answer("weighing options</think>The scan was normal.") == "The scan was normal."
    # thinking that never closed is not an answer
    assert postprocess_answer("<think>Let me see, the note says") == ""


def test_citation_markers_and_special_tokens_are_removed():
    text = "The tube drained pus [2]. Antibiotics were given [3, 5] |7| [S4] [sentences 8-9].<|im_end|>"
    assert postprocess_answer(text) == "The tube drained pus. Antibiotics were given."


def test_one_line_without_labels_or_markdown():
    text = "Answer: **He needed** a chest tube.\n\n- It drained the infected fluid.\n"
    assert postprocess_answer(text) == "He needed a chest tube. It drained the infected fluid."


def test_long_answers_are_cut_at_a_sentence_boundary():
    first = " ".join(["word"] * 40) + "."
    second = " ".join(["more"] * 30) + "."
    third = " ".join(["extra"] * 20) + "."
    answer = postprocess_answer(f"{first} {second} {third}")
    assert answer == f"{first} {second}"
    assert word_count(answer) == 70


def test_a_single_overlong_sentence_is_truncated_to_the_limit():
    answer = postprocess_answer(" ".join(f"w{i}" for i in range(100)) + ".")
    assert word_count(answer) == 75 and answer.endswith("w74")


def test_repeated_sentences_are_kept_once():
    looped = "He takes aspirin. He takes aspirin. It prevents clots. He takes aspirin. He takes"
    assert postprocess_answer(looped) == "He takes aspirin. It prevents clots."


def test_a_sentence_cut_by_the_token_limit_is_dropped():
    assert postprocess_answer("He had pneumonia. The tube was placed because the") == "He had pneumonia."
    assert postprocess_answer("No final stop here") == "No final stop here"


# ------------------------------------------------------------------ records, samples, fallbacks


def note_lines(request) -> str:
    note = request.messages[-1]["content"].split("Note sentences:\n", 1)[1].split("\n\n", 1)[0]
    return f"<think>x</think>The note has {note.count(chr(10)) + 1} lines [1]."


@pytest.mark.model
def test_answers_are_recorded_per_case_and_not_asked_again(cases):
    backend = ScriptedBackend(note_lines)
    ctx = Context(backends={"default": backend})
    answers = predict(cases[:5], GenerateConfig(), ctx)
    assert len(backend.requests) == 5
    assert all(a.startswith("The note has") and "[1]" not in a for a in answers.values())
    again = predict(cases, GenerateConfig(), ctx)  # the first five are finished: only the rest is asked
    assert len(backend.requests) == len(cases)
    assert list(again) == [c.id for c in cases] and {k: again[k] for k in answers} == answers


@pytest.mark.model
def test_sampled_answers_get_distinct_seeds_and_the_medoid_is_kept(cases):
    texts = iter(["He had a blocked artery.", "He had a blocked artery and a stent.", "Unrelated words here."])
    backend = ScriptedBackend(lambda request: next(texts))
    ctx = Context(backends={"default": backend}, seed=3)
    answers = predict(cases[:1], GenerateConfig(samples=3, temperature=0.8), ctx)
    assert len({r.config.seed for r in backend.requests}) == 3
    assert answers[cases[0].id] == "He had a blocked artery."
    assert ctx.records.by_case[cases[0].id]["calls"] == 3


@pytest.mark.model
def test_empty_replies_get_the_fallback_and_failed_ones_are_retried(cases):
    ctx = Context(backends={"default": ScriptedBackend(["<think>never finished"])})
    answers = predict(cases[:2], GenerateConfig(), ctx)
    assert set(answers.values()) == {EMPTY_REPLY_FALLBACK}
    check_submission(build_submission(3, answers, cases[:2]), 3, cases[:2])
    failing = Context(backends={"default": ScriptedBackend([Reply(None, error="HTTP 500")])})
    assert predict(cases[:2], GenerateConfig(), failing) == {}
    assert {r["status"] for r in failing.records.by_case.values()} == {"failed"}
    failing.backends = {"default": ScriptedBackend(["Fine now."])}
    failing._built.clear()
    assert set(predict(cases[:2], GenerateConfig(), failing).values()) == {"Fine now."}


@pytest.mark.model
def test_evidence_first_shows_only_the_chosen_sentences(cases):
    backend = ScriptedBackend(["An answer."])
    case = cases[0]
    chosen = [case.sentences[1].id]
    config = GenerateConfig(prompt="st3-evidence@1")
    predict([case], config, Context(backends={"default": backend}), evidence={case.id: chosen})
    user = backend.requests[0].messages[-1]["content"]
    assert " ".join(case.sentences[1].text.split()) in user
    assert " ".join(case.sentences[0].text.split()) not in user


# ------------------------------------------------------------------ the shipped model


@pytest.mark.slow
def test_smollm2_answers_are_valid_st3_predictions(cases):
    from ehrqa.llm.backend import BackendSpec

    chosen = cases[:1]
    ctx = Context(backends={"default": BackendSpec()})
    answers = predict(chosen, GenerateConfig(max_new_tokens=32), ctx)
    ctx.close()
    assert set(answers) == {c.id for c in chosen}
    for answer in answers.values():
        assert answer and answer != EMPTY_REPLY_FALLBACK
        assert "\n" not in answer and "<think>" not in answer and "<|" not in answer
        assert word_count(answer) <= 75
    assert check_submission(build_submission(3, answers, chosen), 3, chosen) == answers
