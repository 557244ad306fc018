"""Word tokens for the lexical scorers: lower-cased alphanumerics, English stop words
dropped, optionally Porter-stemmed (so "infections" matches "infection")."""

from __future__ import annotations

import re
from functools import lru_cache

_WORD = re.compile(r"[a-z0-9]+(?:[.'][a-z0-9]+)*")


@lru_cache(maxsize=1)
def _stop_words() -> frozenset[str]:
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    return frozenset(ENGLISH_STOP_WORDS)


@lru_cache(maxsize=1)
def _stemmer():
    from nltk.stem.porter import PorterStemmer

    return PorterStemmer()


@lru_cache(maxsize=65536)
def _stem(word: str) -> str:
    return _stemmer().stem(word)


def tokenize(text: str, *, stop_words: bool = True, stem: bool = True) -> list[str]:
    return list(_tokens(text, stop_words, stem))


@lru_cache(maxsize=65536)
def _tokens(text: str, stop_words: bool, stem: bool) -> tuple[str, ...]:
    """The tokens of a text, kept: every lexical feature of a case reads the same sentences."""
    words = _WORD.findall(text.lower())
    if stop_words:
        stops = _stop_words()
        words = [w for w in words if w not in stops]
    if stem:
        words = [_stem(w) for w in words]
    return tuple(words)
