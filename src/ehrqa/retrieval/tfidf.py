"""TF-IDF cosine similarity between a query and each note sentence.

Word n-grams over the shared lexical tokens, sublinear tf (``1 + ln tf``), smoothed idf
(``ln((1 + n) / (1 + df)) + 1``) and unit-length rows: scikit-learn's ``TfidfVectorizer``
weighting, computed here in a few numpy lines because one vectorizer fit per case costs
scikit-learn's input checks every time (they were most of the evidence features' time).
``fit="case"`` fits the idf on the case's own note sentences (the default: no state to ship, and
measured no worse than a corpus fit, see benchmarks/bench_align.py); ``fit="case+queries"`` also
counts the queries as documents so that words only the query uses still count.
"""

from __future__ import annotations

from collections import Counter
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
        return self.score_matrices([queries], sentences)[0]

    def score_matrices(self, groups: Sequence[Sequence[str]], sentences: Sequence[str]) -> list[np.ndarray]:
        """:meth:`score_matrix` of each group of queries against the same note sentences, which are
        analysed once (with ``fit="case"`` their idf and weights are computed once too)."""
        sentence_grams = [Counter(self._analyzer(s)) for s in sentences]
        shared = self._fit(sentence_grams, []) if self.fit == "case" else None
        out = []
        for queries in groups:
            query_grams = [Counter(self._analyzer(q)) for q in queries]
            vocabulary, idf, sentence_weights = shared or self._fit(sentence_grams, query_grams)
            if not sentences or not vocabulary:
                out.append(np.zeros((len(queries), len(sentences))))
            else:
                out.append(self._weights(query_grams, vocabulary, idf) @ sentence_weights.T)
        return out

    def _fit(self, sentence_grams: list[Counter], query_grams: list[Counter]) -> tuple:
        """(vocabulary, idf, the sentences' weights) of the documents: the sentences, and the queries
        with ``fit="case+queries"``."""
        documents = sentence_grams + (query_grams if self.fit == "case+queries" else [])
        vocabulary = {g: j for j, g in enumerate(sorted({g for grams in documents for g in grams}))}
        df = np.zeros(len(vocabulary))
        for grams in documents:
            df[[vocabulary[g] for g in grams]] += 1
        idf = np.log((1 + len(documents)) / (1 + df)) + 1
        return vocabulary, idf, self._weights(sentence_grams, vocabulary, idf)

    def _weights(self, texts: Sequence[Counter], vocabulary: dict[str, int], idf: np.ndarray) -> np.ndarray:
        """Unit-length tf-idf rows (grams outside the vocabulary ignored)."""
        counts = np.zeros((len(texts), len(vocabulary)))
        for r, grams in enumerate(texts):
            for gram, n in grams.items():
                if gram in vocabulary:
                    counts[r, vocabulary[gram]] = n
        tf = np.log(counts, out=np.zeros_like(counts), where=counts > 0) + (counts > 0) if self.sublinear_tf else counts
        weights = tf * idf
        norms = np.linalg.norm(weights, axis=1, keepdims=True)
        return weights / np.where(norms > 0, norms, 1.0)
