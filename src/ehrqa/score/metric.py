"""The text metrics of ST1 and ST3: their one interface, the resources they may need, and their registry.

A metric is an object with a report ``key``, an ``official`` flag, a ``scale`` to the report's
0-100 range and a ``signature()`` built from the fields its computation reads; ``values()`` gives
its per-case values for predictions, references and (for SARI) sources. Each metric module
registers a builder under the name ``--metrics`` uses; the builder turns the user's
:class:`Resources` into metric objects, or raises :class:`MetricUnavailable`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path


class MetricUnavailable(Exception):
    """A metric cannot be computed here (missing resources); the message says what is needed."""


@dataclass(frozen=True)
class Resources:
    """Local paths to the official resources of the model-based metrics (all optional)."""

    bertscore_model: str | None = None  # a distilbert-base-uncased directory
    alignscore_ckpt: str | None = None  # AlignScore-base.ckpt
    alignscore_model: str | None = None  # a roberta-base directory
    quickumls_index: str | None = None  # a QuickUMLS index built from a UMLS release
    proxies: bool = True  # compute stand-ins where an official resource is missing


@dataclass(frozen=True)
class MetricValues:
    """One metric's per-case values (in input order), with the signature of the computation."""

    key: str
    values: list[float]
    signature: str
    official: bool


class TextMetric:
    """A per-case metric of a prediction against its reference (and source).

    Subclasses set ``key`` and implement :meth:`per_case` and :meth:`signature`; the other
    fields have the common defaults. A stand-in reports under ``<official key>_proxy`` with
    ``official = False``, so it never enters ``overall_score``.
    """

    key: str  # the report key, e.g. "bleu", "rougeLsum", "bertscore_proxy"
    label: str = ""  # its name in the signature when several keys share one ("rouge"); else the key
    official: bool = True  # computed with the official configuration and resources
    scale: float = 100.0  # per-case value x scale = the report's 0-100 scale (SARI is already there)
    needs_source: bool = False  # reads the source text (SARI: the patient narrative)

    def per_case(self, predictions: Sequence[str], references: Sequence[str], sources: Sequence[str]) -> list[float]:
        raise NotImplementedError

    def signature(self) -> str:
        raise NotImplementedError

    def values(
        self, predictions: Sequence[str], references: Sequence[str], sources: Sequence[str] | None = None
    ) -> MetricValues:
        """Per-case values (floats, in input order) and the signature."""
        if sources is None:
            sources = [""] * len(predictions)
        per_case = self.per_case(list(predictions), list(references), list(sources))
        return MetricValues(self.key, [float(v) for v in per_case], self.signature(), self.official)


Builder = Callable[[Resources], Sequence[TextMetric]]
REGISTRY: dict[str, Builder] = {}


def register(name: str) -> Callable[[Builder], Builder]:
    """Decorator: make ``builder(resources) -> metrics`` selectable as ``--metrics name``."""

    def add(builder: Builder) -> Builder:
        REGISTRY[name] = builder
        return builder

    return add


def proxy_key(key: str) -> str:
    """Where a stand-in for the official metric ``key`` reports: never under the official name."""
    return f"{key}_proxy"


def package_version(name: str) -> str:
    """The installed version of a distribution, for signatures."""
    from importlib.metadata import version

    return version(name)


def dir_fingerprint(path: str | Path) -> str:
    """A short, cheap id of a model or index directory: hash of file names, sizes and any
    ``config.json``; enough to tell two model directories apart in a signature."""
    path = Path(path)
    h = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for p in files:
        h.update(f"{p.relative_to(path) if p != path else p.name}:{p.stat().st_size}\n".encode())
        if p.name == "config.json":
            h.update(p.read_bytes())
    return h.hexdigest()[:12]
