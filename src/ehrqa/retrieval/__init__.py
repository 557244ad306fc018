"""Evidence retrieval for ST2 and ST4. An aligner is features -> combiner -> decision rule:

- :mod:`~ehrqa.retrieval.features`: every feature of a (query, note sentence) pair, one code path;
- :mod:`~ehrqa.retrieval.base`: the :class:`Scorer` interface; :func:`build_scorer` here makes one by name;
- :mod:`~ehrqa.retrieval.bm25`, :mod:`~ehrqa.retrieval.tfidf`, :mod:`~ehrqa.retrieval.cross_encoder`:
  the scorers behind the lexical and cross-encoder features; :mod:`~ehrqa.retrieval.dense`: the
  sentence encoder behind the dense ones;
- the combiners: :mod:`~ehrqa.retrieval.ensemble` (weighted sum of normalised features, the
  reference system's) and :mod:`~ehrqa.retrieval.relevance` (logistic, the shipped default's),
  which also holds the :class:`~ehrqa.retrieval.relevance.DecisionRule` both end in;
- :mod:`~ehrqa.retrieval.tuning`: the cross-validated search of the weighted combiner's parameters;
- :mod:`~ehrqa.retrieval.aligner`: the model directory (``load_model``, ``select``, ``sentence_scores``);
- :mod:`~ehrqa.retrieval.extractive`: the grounded extractive ST3 answer.
"""

from __future__ import annotations


def build_scorer(name: str, options: dict | None = None, model_dir=None):
    """A scorer by component name, configured by ``options`` (a recipe/config section)."""
    from ehrqa.retrieval.base import COMPONENTS

    options = dict(options or {})
    if name == "bm25":
        from ehrqa.retrieval.bm25 import BM25Scorer

        return BM25Scorer(**options)
    if name == "tfidf":
        from ehrqa.retrieval.tfidf import TfidfScorer

        return TfidfScorer(**options)
    if name == "cross_encoder":
        from ehrqa.retrieval.cross_encoder import CrossEncoderScorer

        return CrossEncoderScorer.from_model_dir(model_dir, **options)
    raise ValueError(f"unknown evidence scorer {name!r}: expected one of {', '.join(COMPONENTS)}")
