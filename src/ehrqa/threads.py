"""How many CPU threads torch uses: one by default, because on a shared 2-core machine two
threads competing with other processes ran generation and training up to ten times slower
(measured in benchmarks/bench_threads.py). ``EHRQA_THREADS`` or a recipe's ``threads`` overrides."""

from __future__ import annotations

import os

DEFAULT_THREADS = 1


def torch_threads(requested: int | None = None) -> int:
    """The thread count to use: the recipe's, else ``EHRQA_THREADS``, else :data:`DEFAULT_THREADS`."""
    if requested:
        return int(requested)
    env = os.environ.get("EHRQA_THREADS", "")
    return int(env) if env.isdigit() and int(env) > 0 else DEFAULT_THREADS


def set_torch_threads(requested: int | None = None) -> int:
    """Apply :func:`torch_threads` to torch if it is installed (importing it only then); return the count."""
    n = torch_threads(requested)
    os.environ.setdefault("OMP_NUM_THREADS", str(n))
    try:
        import torch
    except ImportError:
        return n
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n
