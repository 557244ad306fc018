"""Progress bars that respect ``--quiet`` (``EHRQA_NO_PROGRESS=1``) and never show note text."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TypeVar

T = TypeVar("T")


def _hidden() -> bool:
    return bool(os.environ.get("EHRQA_NO_PROGRESS"))


def progress(items: Iterable[T], desc: str, total: int | None = None) -> Iterator[T]:
    from tqdm.auto import tqdm

    yield from tqdm(items, desc=desc, total=total, disable=_hidden(), unit="case", leave=False)


@contextmanager
def progress_bar(total: int, desc: str, unit: str = "case") -> Iterator[Callable[[], None]]:
    """A bar advanced by hand, for work that reports through callbacks: ``with ... as advance: advance()``.

    ``desc`` names the work (a step, a prompt id), never its text."""
    from tqdm.auto import tqdm

    bar = tqdm(total=total, desc=desc, unit=unit, leave=False, disable=_hidden())
    try:
        yield lambda: bar.update(1)
    finally:
        bar.close()


@contextmanager
def model_loading() -> Iterator[None]:
    """Hide transformers' per-load "Loading weights" bar while ehrqa loads a model (the aligner's
    encoder, a chat model); the previous setting is restored afterwards."""
    from transformers.utils import logging as hf_logging

    enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            hf_logging.enable_progress_bar()
