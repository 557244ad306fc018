"""The aligner model (ST2 evidence identification, ST4 evidence alignment): a directory loadable
by path like a sentence-transformers model, whose file format this module owns.

Contract (what the tasks call)::

    model = load_model(path_or_None)            # None: the shipped default, src/ehrqa/models/aligner-default
                                                # ("aligner-lexical": the fast lexical one shipped beside it;
                                                # "aligner-nomic": the default's recipe on nomic-embed vectors)
    model.select(subtask, cases)                # per case, per query, the selected note sentence ids
    model.sentence_scores(subtask, cases)       # per case, a (queries x note sentences) array, higher = better;
                                                # remembered per model: the same input is scored once

``subtask`` is 2 (one query per case: the question) or 4 (one query per answer sentence).
``cases`` hold only the official input of that subtask (no relevance, no answer text; for ST4
answer sentences without citations); nothing else is read.

Every section is one aligner: features -> combiner -> decision rule. The features come from
:func:`~ehrqa.retrieval.features.feature_tensors` (the section's ``query`` mode, the scorers'
``components`` options); the combiner is a weighted sum of normalised features (``kind:
ensemble``, the reference system's) or a logistic one (``kind: learned``, the shipped default's);
both end in a :class:`~ehrqa.retrieval.relevance.DecisionRule`.

Directory format ``ehrqa-aligner/2`` (``/1``, the same without ``kind`` and ``ehrqa_version``, still loads):

- ``aligner.json``: ``format``; ``ehrqa_version`` that saved it; the scorer options
  (``components``); one section per subtask (``subtasks: {"2": ..., "4": ...}``) whose ``kind`` is
  ``ensemble`` (weights, threshold, links: :class:`~ehrqa.retrieval.ensemble.EnsembleConfig`) or
  ``learned`` (a logistic combiner over features and its decision rule:
  :class:`~ehrqa.retrieval.relevance.LearnedRelevance`); how queries are built (``query``); the
  training record (``training``: sources, cases, folds, seconds);
- ``cross_encoder.safetensors``: the fine-tuned cross-encoder tensors, when an ensemble uses one
  (see :mod:`ehrqa.retrieval.cross_encoder`);
- ``encoder.safetensors``: the top layers of a taught MiniLM (fp16), when ``components.dense.tuned``
  names it (``ehrqa train aligner --learned --teach-encoder``, :mod:`ehrqa.train.encoder`); the
  dense features then come from MiniLM with these layers.
"""

from __future__ import annotations

import shutil
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ehrqa.config import load_json
from ehrqa.data.case import Case
from ehrqa.errors import DataError
from ehrqa.io import atomic_write_json
from ehrqa.retrieval.base import Request
from ehrqa.retrieval.cross_encoder import CONFIG_NAME
from ehrqa.retrieval.ensemble import EnsembleConfig
from ehrqa.retrieval.features import QUERY_MODES, feature_tensors, queries_for

DEFAULT_MODEL_DIR = Path(__file__).resolve().parent.parent / "models" / "aligner-default"
FORMAT = "ehrqa-aligner/2"
READABLE_FORMATS = ("ehrqa-aligner/1", FORMAT)
# How many cases' score arrays one loaded model remembers (AlignerModel.sentence_scores): more than
# the cases of an ArchEHR-QA split, while a long run over many cases stays at a few MB.
REMEMBERED_SCORES = 512


def requests_for(subtask: int, cases: Sequence[Case], query_mode: str) -> list[Request]:
    """Per case, its queries (:func:`~ehrqa.retrieval.features.queries_for`) and note sentences."""
    return [(queries_for(subtask, case, query_mode)[0], [s.text for s in case.sentences]) for case in cases]


@dataclass(frozen=True)
class AlignerFile:
    """The keys of ``aligner.json`` and their types (see the module docstring)."""

    format: str
    ehrqa_version: str = ""
    components: dict[str, dict[str, Any]] = field(default_factory=dict)
    subtasks: dict[str, dict[str, Any]] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    extractive: dict[str, Any] | None = None
    cross_encoder: dict[str, Any] | None = None


@dataclass(frozen=True)
class ExtractiveSettings:
    """The ``extractive`` section of ``aligner.json``: fill the answer with the next best sentences,
    and rank by the ST2 score blended with relative BM25 (its weight; None: the ST2 score alone)."""

    fill: bool = True
    bm25_blend: float | None = None
    chosen_on: list[str] = field(default_factory=list)  # the sources the two were chosen on


def check_config(config: dict, where: str) -> None:
    """Refuse, in one :class:`DataError` line naming the key, an ``aligner.json`` that is not one:
    an unknown or misspelt key, a value of the wrong type, a section of an unknown kind."""
    from ehrqa.config import from_dict
    from ehrqa.retrieval.relevance import RULES, LearnedRelevance

    if config.get("format") not in READABLE_FORMATS:
        raise DataError(f"{where}: not an ehrqa aligner model (format {config.get('format')!r})")
    from_dict(AlignerFile, config, where)
    if config.get("extractive") is not None:
        from_dict(ExtractiveSettings, config["extractive"], f"{where}.extractive")
    for subtask, section in config.get("subtasks", {}).items():
        at = f"{where}.subtasks.{subtask}"
        if subtask not in ("2", "4"):
            raise DataError(f"{at}: the aligner serves subtasks 2 and 4")
        kind, query = section.get("kind", "ensemble"), section.get("query", QUERY_MODES[int(subtask)][0])
        if query not in QUERY_MODES[int(subtask)]:
            raise DataError(f"{at}.query: expected one of {', '.join(QUERY_MODES[int(subtask)])}, got {query!r}")
        rest = {k: v for k, v in section.items() if k not in ("kind", "query", "cv")}
        if kind == "ensemble":
            from_dict(EnsembleConfig, rest, at)
        elif kind == "learned":
            model = from_dict(LearnedRelevance, rest, at)
            if model.rule not in RULES:
                raise DataError(f"{at}.rule: expected one of {', '.join(RULES)}, got {model.rule!r}")
            sizes = {len(model.features), len(model.mean), len(model.scale), len(model.coef)}
            if len(sizes) != 1:
                raise DataError(f"{at}: features, mean, scale and coef differ in length")
        else:
            raise DataError(f"{at}.kind: expected ensemble or learned, got {kind!r}")


class AlignerModel:
    """A loaded aligner: ``aligner.json`` as a dict plus the directory it came from, and the score
    arrays it computed last (its ``config`` is not to be edited in place once it has scored)."""

    def __init__(self, config: dict, path: Path | None = None) -> None:
        check_config(config, f"{path / CONFIG_NAME}: aligner" if path else "aligner config")
        self.config, self.path = config, path
        # (subtask, query mode, the case's official input) -> its score array, oldest first
        self._scores: OrderedDict[tuple[int, str, Case], np.ndarray] = OrderedDict()

    @classmethod
    def load(cls, path: str | Path | None = None) -> AlignerModel:
        """A model directory; None is the shipped default, and a bare name such as ``aligner-lexical``
        is a shipped model (``src/ehrqa/models/NAME``) when no such directory exists here."""
        directory = Path(path) if path else DEFAULT_MODEL_DIR
        shipped = DEFAULT_MODEL_DIR.parent / str(path)
        if path and not directory.exists() and Path(path).name == str(path) and shipped.is_dir():
            directory = shipped
        config_file = directory / CONFIG_NAME
        if not config_file.is_file():
            raise DataError(f"{directory}: no {CONFIG_NAME}; train one with `ehrqa train aligner`")
        return cls(load_json(config_file, "aligner model settings file"), directory)

    def save(self, path: str | Path) -> Path:
        from ehrqa import __version__

        directory = Path(path)
        directory.mkdir(parents=True, exist_ok=True)
        tuned = self.tuned_weights() if self.path is not None else None
        if tuned is not None and tuned.resolve() != (directory / tuned.name).resolve():
            shutil.copyfile(tuned, directory / tuned.name)  # a model directory carries its encoder
        self.config = {
            "format": FORMAT,
            "ehrqa_version": __version__,
            **{k: v for k, v in self.config.items() if k not in ("format", "ehrqa_version")},
        }
        atomic_write_json(directory / CONFIG_NAME, self.config)
        self.path = directory
        return directory

    def section(self, subtask: int) -> dict:
        section = self.config.get("subtasks", {}).get(str(subtask))
        if section is None:
            raise ValueError(f"{self.path}: this aligner model has nothing for subtask {subtask}")
        return section

    def kind(self, subtask: int) -> str:
        """``ensemble`` (weighted scorers, threshold) or ``learned`` (logistic combiner over features)."""
        return self.section(subtask).get("kind", "ensemble")

    def ensemble(self, subtask: int) -> EnsembleConfig:
        return EnsembleConfig.from_dict({k: v for k, v in self.section(subtask).items() if k != "kind"})

    def learned(self, subtask: int):
        from ehrqa.retrieval.relevance import LearnedRelevance

        return LearnedRelevance.from_dict(self.section(subtask))

    def combiner(self, subtask: int):
        """The section's combiner (an :class:`EnsembleConfig` or a ``LearnedRelevance``); both carry
        the section's ``decision_rule``."""
        return self.ensemble(subtask) if self.kind(subtask) == "ensemble" else self.learned(subtask)

    def query_mode(self, subtask: int) -> str:
        return self.section(subtask).get("query", QUERY_MODES[subtask][0])

    def sentence_scores(self, subtask: int, cases: Sequence[Case]) -> list[np.ndarray]:
        """Per case, a (queries x note sentences) array of evidence scores, higher = better: the
        section's features (:func:`~ehrqa.retrieval.features.feature_tensors`), then its combiner.

        A case this model scored before (same subtask, query mode and official input) is not scored
        again: the model remembers the last :data:`REMEMBERED_SCORES` cases' arrays. Every call
        returns copies, so a caller may change them."""
        combiner, query = self.combiner(subtask), self.query_mode(subtask)
        keys = [(subtask, query, case.input_for(subtask)) for case in cases]  # what the features read
        found = {key: self._scores[key] for key in keys if key in self._scores}
        missing = [key for key in dict.fromkeys(keys) if key not in found]
        if missing:
            tensors = feature_tensors(
                subtask,
                [case for _, _, case in missing],
                self.encoder(),
                combiner.features,
                query=query,
                components=self.config.get("components", {}),
                model_dir=self.path,
                rerank=combiner.rerank,
            )
            found.update(zip(missing, [combiner.scores(t) for t in tensors], strict=True))
        for key in dict.fromkeys(keys):  # remember them as the most recent, forgetting the oldest
            self._scores[key] = found[key]
            self._scores.move_to_end(key)
        while len(self._scores) > REMEMBERED_SCORES:
            self._scores.popitem(last=False)
        return [found[key].copy() for key in keys]

    def encoder(self):
        """The sentence encoder of the dense features (``components.dense.model``: MiniLM unless it
        names another), with the top layers of a taught encoder (``components.dense.tuned``, a file
        beside ``aligner.json``) where the model has them."""
        if not hasattr(self, "_encoder"):
            from ehrqa.retrieval.features import Encoder

            dense = self.config.get("components", {}).get("dense", {})
            self._encoder = Encoder(dense.get("model"), batch_size=dense.get("batch_size"), tuned=self.tuned_weights())
        return self._encoder

    def tuned_weights(self) -> Path | None:
        """The taught encoder's weights file, or None for MiniLM as shipped."""
        name = self.config.get("components", {}).get("dense", {}).get("tuned")
        if not name:
            return None
        if self.path is None or not (self.path / name).is_file():
            raise DataError(f"{self.path}: aligner.json names a taught encoder, {name}, that is not there")
        return self.path / name

    def select(
        self, subtask: int, cases: Sequence[Case], scores: Sequence[np.ndarray] | None = None
    ) -> list[list[list[str]]]:
        """Per case, per query, the selected note sentence ids (in note order); ``scores``: the
        :meth:`sentence_scores` of these cases when already computed."""
        scores = self.sentence_scores(subtask, cases) if scores is None else scores
        rule = self.combiner(subtask).decision_rule
        picked = [rule.select(m) for m in scores]
        return [
            [[case.sentences[j].id for j in sorted(row)] for row in per_query]
            for case, per_query in zip(cases, picked, strict=True)
        ]


def load_model(model: AlignerModel | str | Path | None = None) -> AlignerModel:
    """``model`` itself, the model directory at that path, or (None) the shipped default."""
    return model if isinstance(model, AlignerModel) else AlignerModel.load(model)
