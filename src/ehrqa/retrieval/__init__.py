"""Evidence retrieval for ST2 and ST4: scorers, their ensemble, the learned relevance model and
the aligner model directory that ships them.

- :mod:`~ehrqa.retrieval.base`: the :class:`Scorer` interface and :func:`build_scorer`;
- :mod:`~ehrqa.retrieval.bm25`, :mod:`~ehrqa.retrieval.tfidf`, :mod:`~ehrqa.retrieval.dense`,
  :mod:`~ehrqa.retrieval.cross_encoder`: the scorers;
- :mod:`~ehrqa.retrieval.ensemble`: normalise, weight, threshold (inference);
- :mod:`~ehrqa.retrieval.tuning`: the cross-validated search of ensemble parameters;
- :mod:`~ehrqa.retrieval.features` and :mod:`~ehrqa.retrieval.relevance`: the learned combiner;
- :mod:`~ehrqa.retrieval.aligner`: the model directory (``load_model``, ``select``, ``sentence_scores``);
- :mod:`~ehrqa.retrieval.extractive`: the grounded extractive ST3 answer.
"""
