"""TF-IDF cosine similarity between a query and each note sentence (scikit-learn).

Word n-grams over the shared lexical tokens, sublinear tf. ``fit="case"`` fits the
idf on the case's own note sentences (the default: no state to ship, and measured no
worse than a corpus fit, see benchmarks/bench_align.py); ``fit="case+queries"`` also
counts the queries as documents so that words only the query uses still count.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ehrqa.retrieval.base import Scorer
from ehrqa.retrieval.tokens import tokenize

FITS = ("case", "case+queries")


class TfidfScorer(Scorer):
    name = "tfidf"

    def __init__(self, ngram_max: int = 2, sublinear_tf: bool = True, fit: str = "case", stem: bool = True) -> None:
        if fit not in FITS:
            raise ValueError(f"unknown TF-IDF fit {fit!r}: expected one of {', '.join(FITS)}")
        self.ngram_max, self.sublinear_tf, self.fit, self.stem = ngram_max, sublinear_tf, fit, stem

    def _analyzer(self, text: str) -> list[str]:
        words = tokenize(text, stem=self.stem)
        grams = list(words)
        for n in range(2, self.ngram_max + 1):
            grams.extend(" ".join(words[i : i + n]) for i in range(len(words) - n + 1))
        return grams

    def score_matrix(self, queries: Sequence[str], sentences: Sequence[str]) -> np.ndarray:
        from sklearn.feature_extraction.text import TfidfVectorizer

        out = np.zeros((len(queries), len(sentences)))
        docs = list(sentences) + (list(queries) if self.fit == "case+queries" else [])
        if not sentences or not any(self._analyzer(d) for d in docs):
            return out
        vectorizer = TfidfVectorizer(analyzer=self._analyzer, sublinear_tf=self.sublinear_tf)
        vectorizer.fit(docs)
        s = vectorizer.transform(sentences)
        q = vectorizer.transform(queries)
        return (q @ s.T).toarray()  # rows are l2-normalised: the product is the cosine
