"""Reply clean-up shared by every subtask: think blocks, special tokens, labels, citation markers.

ST1 turns a reply into one question of at most 15 words; ST3 into one answer paragraph of at
most 75 words without citation markers. Think blocks, special tokens and citation markers are
read by :mod:`ehrqa.llm.reply` (their one home); JSON replies (ST2, ST4) by :mod:`ehrqa.llm.jsonout`.
"""

from __future__ import annotations

import re

from ehrqa.llm.reply import strip_citations, strip_thinking
from ehrqa.text import ANSWER_WORD_LIMIT, QUESTION_WORD_LIMIT, split_sentences, truncate_words, word_count

_ANSWER_LABEL = re.compile(r"^\s*(?:final\s+)?(?:answer|response)\s*:\s*", re.I)
_QUESTION_LABEL = re.compile(r"^\s*(?:SUBJECT|MESSAGE|question|clinician question)\s*:\s*", re.I | re.M)
_MARKDOWN = re.compile(r"\*\*|__|^\s*(?:[-*•]|\d+[.)])\s+", re.M)


def clean_answer(text: str, limit: int = ANSWER_WORD_LIMIT) -> str:
    """A model reply as an ST3 answer: no think blocks, citation markers or special tokens; one
    line; no repeated sentences; at most ``limit`` words, cut after the last whole sentence that
    fits where possible."""
    text = strip_citations(strip_thinking(text))
    text = _MARKDOWN.sub("", text)
    text = _ANSWER_LABEL.sub("", text)
    text = " ".join(text.split())
    text = re.sub(r"\s+([.,;:!?])", r"\1", text)
    # Small models loop under greedy decoding; an answer never needs the same sentence twice.
    sentences = list(dict.fromkeys(split_sentences(text)))
    text = " ".join(sentences)
    if len(sentences) > 1 and not sentences[-1].rstrip("\"')").endswith((".", "!", "?")):
        text = " ".join(sentences[:-1])  # drop a last sentence cut off by the token limit
        sentences = sentences[:-1]
    if word_count(text) <= limit:
        return text
    kept: list[str] = []
    for sentence in sentences:
        if word_count(" ".join([*kept, sentence])) > limit:
            break
        kept.append(sentence)
    return " ".join(kept) if kept else truncate_words(text, limit)


def clean_question(reply: str, limit: int = QUESTION_WORD_LIMIT) -> str:
    """The first non-empty line of a reply, without think blocks, labels or quotes, as one question."""
    lines = [line.strip() for line in strip_thinking(reply).splitlines() if line.strip()]
    if not lines:
        return ""
    line = _QUESTION_LABEL.sub("", lines[0]).strip().strip("\"'*` ")
    if not line:
        return ""
    question = truncate_words(line, limit)
    return question if question.endswith("?") else question.rstrip(".,;:!") + "?"
