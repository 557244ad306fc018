"""Question interpretation (ST1): patient narrative -> clinician-style question (<= 15 words).

The default predictor is a transparent rule baseline: take the patient's own question
(the marked phrases, else the narrative's last question sentence), rewrite lay
first- and third-person references to "the patient", and keep it within 15 words.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from ehrqa.data.case import Case
from ehrqa.text import QUESTION_WORD_LIMIT, split_sentences, truncate_words

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
    """The patient's question: marked phrases, else question sentences of the narrative, else all of it."""
    if case.question_phrases:
        return case.patient_question
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


def predict(cases: Sequence[Case]) -> dict[str, str]:
    """ST1 predictions for every case (uses only the narrative and its marked phrases)."""
    return {case.id: to_clinician_question(patient_question_text(case)) for case in cases}
