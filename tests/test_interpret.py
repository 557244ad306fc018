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
