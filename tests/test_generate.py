"""ST3 answer generation: post-processing, the resumable run directory, the shipped SmolLM2."""

from __future__ import annotations

import json

import pytest

from ehrqa.data.archehr import read_dataset
from ehrqa.data.submission import build_submission, check_submission
from ehrqa.errors import DataError
from ehrqa.llm.backend import ChatBackend, GenerationConfig
from ehrqa.tasks.generate import EMPTY_REPLY_FALLBACK, postprocess_answer, predict
from ehrqa.text import word_count


@pytest.fixture(scope="module")
def cases():
    return [c.without_gold() for c in read_dataset()]


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


# ------------------------------------------------------------------ run directory and resume


class RecordingBackend(ChatBackend):
    """A deterministic backend that remembers what it was asked; it can be told to stop mid-run."""

    def __init__(self, fail_on_call: int | None = None) -> None:
        self.calls: list[int] = []
        self.asked: list[str] = []
        self.fail_on_call = fail_on_call
        self.description = {"backend": "recording"}

    def chat(self, conversations, config):
        self.calls.append(len(conversations))
        if self.fail_on_call is not None and len(self.calls) == self.fail_on_call:
            raise KeyboardInterrupt
        replies = []
        for conv in conversations:
            note = conv[1]["content"].split("Note sentences:\n", 1)[1]
            self.asked.append(note[:40])
            replies.append(f"<think>x</think>The note has {note.count(chr(10)) + 1} lines [1].")
        return replies


def test_interrupted_run_resumes_without_repeating_finished_cases(cases, tmp_path):
    run = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        predict(cases, backend=RecordingBackend(fail_on_call=3), run_dir=run, batch_size=4)
    saved = [json.loads(line) for line in (run / "answers.jsonl").read_text().splitlines()]
    assert [r["case_id"] for r in saved] == [c.id for c in cases[:8]]  # two whole batches were saved
    # an interruption in the middle of a write leaves a broken last line: it is ignored
    with (run / "answers.jsonl").open("a") as f:
        f.write('{"case_id": "109", "answ')

    again = RecordingBackend()
    answers = predict(cases, backend=again, run_dir=run, batch_size=4)
    assert sum(again.calls) == len(cases) - 8
    assert list(answers) == [c.id for c in cases]
    fresh = predict(cases, backend=RecordingBackend(), batch_size=4)
    assert answers == fresh
    assert all(a.startswith("The note has") and "[1]" not in a for a in answers.values())


def test_a_run_dir_refuses_a_different_configuration(cases, tmp_path):
    predict(cases[:2], backend=RecordingBackend(), run_dir=tmp_path)
    with pytest.raises(DataError, match="different configuration"):
        predict(cases[:2], backend=RecordingBackend(), run_dir=tmp_path, generation=GenerationConfig(20))


def test_empty_replies_get_the_fallback(cases):
    class Silent(RecordingBackend):
        def chat(self, conversations, config):
            return ["<think>never finished"] * len(conversations)

    answers = predict(cases[:2], backend=Silent())
    assert set(answers.values()) == {EMPTY_REPLY_FALLBACK}
    check_submission(build_submission(3, answers, cases[:2]), 3, cases[:2])


# ------------------------------------------------------------------ the shipped model


@pytest.mark.slow
def test_smollm2_answers_are_valid_st3_predictions(cases):
    chosen = cases[:1]
    answers = predict(chosen, generation=GenerationConfig(max_new_tokens=32))
    assert set(answers) == {c.id for c in chosen}
    for answer in answers.values():
        assert answer and answer != EMPTY_REPLY_FALLBACK
        assert "\n" not in answer and "<think>" not in answer and "<|" not in answer
        assert word_count(answer) <= 75
    assert check_submission(build_submission(3, answers, chosen), 3, chosen) == answers
