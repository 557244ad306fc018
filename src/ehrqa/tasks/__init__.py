"""One module per subtask, each with ``predict(inputs, config, ctx) -> {case_id: prediction}``.

interpret (ST1) · identify (ST2) · generate (ST3) · align (ST4); :mod:`ehrqa.tasks.base` holds what
they share (the context, voters, records).
"""

import importlib

SUBTASK_MODULES = {1: "interpret", 2: "identify", 3: "generate", 4: "align"}


def task_module(subtask: int):
    """The module of a subtask (imported on first use: some need heavy libraries)."""
    return importlib.import_module(f"ehrqa.tasks.{SUBTASK_MODULES[subtask]}")


def aligner_use(config) -> str | None:
    """The aligner model a step loads besides its method, named for the run's summary row: an LLM
    ST3 step cites its answer sentences with the ST4 aligner (None: no such hidden use)."""
    if getattr(config, "method", "") == "llm" and getattr(config, "cite", False):
        return str(config.aligner) if config.aligner else "shipped"
    return None
