"""Where ehrqa keeps artefacts it derives once (converted models, indexes): ``$EHRQA_CACHE_DIR``
or ``~/.cache/ehrqa``. Everything there can be deleted and is rebuilt on next use."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    return Path(os.environ.get("EHRQA_CACHE_DIR") or Path.home() / ".cache" / "ehrqa")
