"""Progress bars that respect ``--quiet`` (``EHRQA_NO_PROGRESS=1``) and never show note text."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


def progress(items: Iterable[T], desc: str, total: int | None = None) -> Iterator[T]:
    disable = bool(os.environ.get("EHRQA_NO_PROGRESS"))
    try:
        from tqdm.auto import tqdm
    except ImportError:  # tqdm is a dependency; stay usable without it
        yield from items
        return
    yield from tqdm(items, desc=desc, total=total, disable=disable, unit="case", leave=False)
