"""Question interpretation (ST1): patient narrative -> clinician-style question (<= 15 words).

The default predictor is a transparent rule baseline: take the patient's own question
(the marked phrases, else the narrative's last question sentence), rewrite lay
first- and third-person references to "the patient", and keep it within 15 words.

Given a chat backend, a language model rewrites the narrative instead, shown the most
similar consumer-question / expert-question pairs of the bundled MeQSum corpus as examples.
Replies are cleaned to one question; an empty reply falls back to the rule baseline.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from functools import lru_cache

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


SYSTEM_PROMPT = (
    "You read a patient's message about a hospital stay and write the one question a clinician would look up "
    "in the patient's notes to answer it. Write about 'the patient' in the third person, use clinical terms, "
    f"and use at most {QUESTION_WORD_LIMIT} words. Reply with the question only."
)
_WORD = re.compile(r"[a-z0-9]+")
_LABEL = re.compile(r"^\s*(?:SUBJECT|MESSAGE|question|clinician question)\s*:\s*", re.I | re.M)


def _content_words(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if len(w) > 3}


@lru_cache(maxsize=1)
def example_pool(max_words: int = 120) -> tuple[tuple[str, str], ...]:
    """(consumer question, expert question) pairs from the bundled MeQSum, short ones only."""
    from ehrqa.data.corpora import read_meqsum

    pool = []
    for row in read_meqsum():
        message = " ".join(_LABEL.sub("", row["CHQ"]).split())
        if message and row["Summary"].strip() and len(message.split()) <= max_words:
            pool.append((message, " ".join(row["Summary"].split())))
    return tuple(pool)


@lru_cache(maxsize=1)
def _pool_index() -> tuple[list[set[str]], dict[str, float]]:
    """Content words of every pool message and their inverse document frequencies."""
    words = [_content_words(message) for message, _ in example_pool()]
    df: dict[str, int] = {}
    for ws in words:
        for w in ws:
            df[w] = df.get(w, 0) + 1
    return words, {w: math.log(len(words) / n) for w, n in df.items()}


def nearest_examples(narrative: str, k: int = 3) -> list[tuple[str, str]]:
    """The k MeQSum pairs most similar to the narrative: cosine over IDF-weighted content words."""
    query = _content_words(narrative)
    words, idf = _pool_index()

    def norm(ws: set[str]) -> float:
        return math.sqrt(sum(idf.get(w, 0.0) ** 2 for w in ws)) or 1.0

    q_norm = norm(query)
    scores = [sum(idf[w] ** 2 for w in query & ws) / (q_norm * norm(ws)) for ws in words]
    best = sorted(range(len(scores)), key=lambda i: (-scores[i], i))[:k]
    return [example_pool()[i] for i in best]


def interpretation_messages(case: Case, k_examples: int = 3) -> list[dict[str, str]]:
    """System prompt, retrieved examples as earlier turns, then the case's narrative."""
    messages = [{"role": "system", "content": SYSTEM_PROMPT}]
    for message, question in nearest_examples(case.narrative, k_examples):
        messages.append({"role": "user", "content": f"Patient message:\n{message}"})
        messages.append({"role": "assistant", "content": question})
    messages.append({"role": "user", "content": f"Patient message:\n{' '.join(case.narrative.split())}"})
    return messages


def clean_question(reply: str) -> str:
    """The first non-empty line of a reply, without think blocks, labels or quotes, as one question."""
    reply = re.sub(r"<think>.*?(</think>|$)", "", reply, flags=re.S)
    lines = [line.strip() for line in reply.splitlines() if line.strip()]
    if not lines:
        return ""
    line = _LABEL.sub("", lines[0]).strip().strip("\"'*` ")
    if not line:
        return ""
    question = truncate_words(line, QUESTION_WORD_LIMIT)
    return question if question.endswith("?") else question.rstrip(".,;:!") + "?"


def predict(cases: Sequence[Case], backend=None, generation=None, k_examples: int = 3) -> dict[str, str]:
    """ST1 predictions for every case, reading only the narrative and its marked phrases.

    Without ``backend`` the rule baseline; with one (an :class:`ehrqa.llm.backend.ChatBackend`)
    the model's rewrite, falling back to the baseline for an empty reply.
    """
    baseline = {case.id: to_clinician_question(patient_question_text(case)) for case in cases}
    if backend is None:
        return baseline
    from ehrqa.llm.backend import GenerationConfig

    generation = generation or GenerationConfig(max_new_tokens=40)
    replies = backend.chat([interpretation_messages(c, k_examples) for c in cases], generation)
    return {c.id: clean_question(reply) or baseline[c.id] for c, reply in zip(cases, replies, strict=True)}
