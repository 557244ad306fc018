"""Prompts for answer generation (ST3), shared by training and inference.

Training examples and inference requests are built by the same functions, so the model is asked
at test time exactly what it learned to answer.
"""

from __future__ import annotations

from collections.abc import Sequence

from ehrqa.data.case import Case
from ehrqa.text import ANSWER_WORD_LIMIT

Message = dict[str, str]

SYSTEM_PROMPT = (
    "You are a clinician answering a patient's question about their hospital care. "
    "Use only the numbered note sentences you are given. "
    f"Reply with one short paragraph of at most {ANSWER_WORD_LIMIT} words in a professional register. "
    "Do not include sentence numbers or citations."
)


def answer_user_message(question: str, clinician_question: str | None, sentences: Sequence[tuple[str, str]]) -> str:
    """The user turn: the patient's question, the clinician's reading of it, and the numbered note."""
    note = "\n".join(f"[{sid}] {' '.join(text.split())}" for sid, text in sentences)
    # The note comes first and the questions last: small models stay closer to the question then.
    parts = [f"Note sentences:\n{note}", f"Patient question:\n{' '.join(question.split())}"]
    if clinician_question and " ".join(clinician_question.split()) != " ".join(question.split()):
        parts.append(f"Clinician question:\n{' '.join(clinician_question.split())}")
    parts.append("Answer the question in a few sentences, using only the note sentences above.")
    return "\n\n".join(parts)


def answer_messages(
    question: str, clinician_question: str | None, sentences: Sequence[tuple[str, str]]
) -> list[Message]:
    """System and user turns for one question over numbered sentences."""
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": answer_user_message(question, clinician_question, sentences)},
    ]


def case_messages(case: Case) -> list[Message]:
    """The ST3 prompt for an ArchEHR-QA case: narrative, clinician question, numbered note sentences."""
    return answer_messages(case.narrative, case.clinician_question, [(s.id, s.text) for s in case.sentences])
