"""What a chat model's reply holds besides its answer, read in one place: think blocks, special
tokens and citation markers.

Every consumer of reply text uses these: the ST1/ST3 clean-up (:mod:`ehrqa.tasks.postprocess`),
the JSON reader (:mod:`ehrqa.llm.jsonout`) and the answer-first ST2 reader of cited ids
(:mod:`ehrqa.tasks.llm_evidence`).

Thinking: a ``<think>...</think>`` block is dropped; when the chat template opened the block (only
``</think>`` in the reply) what follows the last ``</think>`` is the answer; thinking that never
finished (an unclosed ``<think>``, e.g. cut off by the token limit) is not an answer, so only what
came before it is kept.

Citation markers: ``[3]``, ``[3, 5]``, ``[3-5]``, ``[S3]``, ``[sentence 3]``, ``[3 and 5]`` and
the same between bars (``|3|``, ``|3,5|``); a range names every id in it.
"""

from __future__ import annotations

import re

_THINK_BLOCK = re.compile(r"<think>.*?</think>", re.S | re.I)
_SPECIAL_TOKEN = re.compile(r"<\|[^|<>]*\|>|</?s>")
_ID = r"(?:sentences?\s*|s)?\d+"
_IDS = rf"{_ID}(?:\s*(?:,|-|–|and)\s*{_ID})*"
CITATION = re.compile(rf"\[\s*({_IDS})\s*\]|\|\s*({_IDS})\s*\|", re.I)
_NUMBER = re.compile(r"\d+")
_MAX_RANGE = 1000  # a wider "range" is not a citation


def strip_thinking(text: str) -> str:
    """The reply without think blocks and special tokens (see the module docstring)."""
    text = _THINK_BLOCK.sub(" ", text)
    lower = text.lower()
    if "</think>" in lower:  # the opening tag was part of the prompt
        text = text[lower.rindex("</think>") + len("</think>") :]
        lower = text.lower()
    if "<think>" in lower:  # thinking that never finished is not an answer
        text = text[: lower.index("<think>")]
    return _SPECIAL_TOKEN.sub(" ", text)


def strip_citations(text: str) -> str:
    """``text`` without its citation markers (and the space before each)."""
    return re.sub(rf"\s*(?:{CITATION.pattern})", "", text, flags=re.I)


def cited_ids(text: str) -> list[str]:
    """The ids the citation markers of ``text`` name, in order of appearance, ranges expanded."""
    found: list[str] = []
    for match in CITATION.finditer(text):
        for part in re.split(r"\s*(?:,|and)\s*", match.group(1) or match.group(2), flags=re.I):
            ends = [_NUMBER.search(end).group() for end in re.split(r"-|–", part) if _NUMBER.search(end)]
            if len(ends) == 2 and 0 <= int(ends[1]) - int(ends[0]) <= _MAX_RANGE:
                found += [str(i) for i in range(int(ends[0]), int(ends[1]) + 1)]
            else:
                found += ends
    return found
