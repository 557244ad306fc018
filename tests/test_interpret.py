from dataclasses import replace

from ehrqa.tasks.interpret import patient_question_text, predict, to_clinician_question
from helpers import make_case


def test_lay_references_become_the_patient():
    assert to_clinician_question("Why did my dad need a tube if it was just pneumonia?") == (
        "Why did the patient need a tube if it was just pneumonia?"
    )
    assert to_clinician_question("Is my mother's heart getting worse") == "Is the patient's heart getting worse?"


def test_question_is_within_15_words_and_ends_with_question_mark():
    q = to_clinician_question("why " * 30)
    assert len(q.split()) == 15 and q.endswith("?") and q.startswith("Why")


def test_uses_marked_phrases_else_last_question_sentence():
    case = make_case()
    assert patient_question_text(case) == "Why did she need a stent?"
    unmarked = replace(case, question_phrases=(), narrative="I was sick. Was it my heart? Why the stent? Thanks.")
    assert patient_question_text(unmarked) == "Why the stent?"


def test_predict_reads_only_the_narrative():
    case = make_case()
    assert predict([case]) == predict([replace(case, clinician_question=None).without_gold()])
    assert predict([case]) == {"7": "Why did the patient need a stent?"}


class ScriptedBackend:
    """A chat backend that replays fixed replies and records the conversations it was given."""

    def __init__(self, replies):
        self.replies = list(replies)
        self.seen = []

    def chat(self, conversations, config):
        self.seen.extend(conversations)
        return [self.replies.pop(0) for _ in conversations]


def test_llm_replies_are_cleaned_to_one_question():
    from ehrqa.tasks.interpret import clean_question

    reply = "<think>hmm</think>\nQuestion: Why was a stent placed\nExtra line"
    assert clean_question(reply) == "Why was a stent placed?"
    assert clean_question('"Why was the patient intubated?"') == "Why was the patient intubated?"
    assert len(clean_question("why " * 40).split()) == 15
    assert clean_question("  \n<think>unfinished") == ""


def test_llm_path_uses_retrieved_examples_and_falls_back_on_empty_replies():
    cases = [make_case("7"), make_case("8")]
    backend = ScriptedBackend(["Why was a coronary stent placed?", "   "])
    out = predict([c.without_gold() for c in cases], backend=backend, k_examples=2)
    assert out == {"7": "Why was a coronary stent placed?", "8": "Why did the patient need a stent?"}
    conversation = backend.seen[0]
    assert [m["role"] for m in conversation] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert conversation[-1]["content"].endswith(cases[0].narrative)
    assert all("Why was a coronary stent placed" not in m["content"] for m in conversation)  # no gold in the prompt


def test_nearest_examples_prefer_shared_rare_words():
    from ehrqa.tasks.interpret import nearest_examples

    examples = nearest_examples("I take metformin for diabetes; can metformin hurt my kidneys?", k=3)
    assert sum("metformin" in message.lower() for message, _ in examples) >= 2


def test_interpret_command_writes_a_valid_submission(tmp_path):
    from ehrqa import read_submission, sample_dir
    from ehrqa.cli import main

    out = tmp_path / "st1" / "submission.json"
    assert main(["interpret", "--out", str(out)]) == 0
    entries = read_submission(out)
    assert main(["validate", "--submission", str(out), "--subtask", "1", "--data", str(sample_dir())]) == 0
    assert all(len(e["prediction"].split()) <= 15 for e in entries)
