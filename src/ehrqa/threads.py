"""How many CPU threads torch uses: one by default, because on a shared 2-core machine two
threads competing with other processes ran generation and training up to ten times slower
(measured in benchmarks/bench_threads.py). A recipe's ``threads``, ``EHRQA_THREADS`` or
``OMP_NUM_THREADS`` overrides it."""

from __future__ import annotations

import os
import sys

DEFAULT_THREADS = 1


def torch_threads(requested: int | None = None) -> int:
    """The thread count to use: the recipe's, else ``EHRQA_THREADS``, else ``OMP_NUM_THREADS``,
    else :data:`DEFAULT_THREADS`."""
    if requested:
        return int(requested)
    for name in ("EHRQA_THREADS", "OMP_NUM_THREADS"):
        value = os.environ.get(name, "")
        if value.isdigit() and int(value) > 0:
            return int(value)
    return DEFAULT_THREADS


def set_torch_threads(requested: int | None = None) -> int:
    """Apply :func:`torch_threads`: through ``OMP_NUM_THREADS`` for a torch imported later, and to
    torch directly when it is already imported (never importing it: a run on a server needs none)."""
    n = torch_threads(requested)
    os.environ["OMP_NUM_THREADS"] = str(n)
    torch = sys.modules.get("torch")
    if torch is not None and torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n
