"""Where ehrqa keeps artefacts it derives once (converted models, indexes): ``$EHRQA_CACHE_DIR``
or ``~/.cache/ehrqa``. Everything there can be deleted and is rebuilt on next use."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path


def cache_dir() -> Path:
    return Path(os.environ.get("EHRQA_CACHE_DIR") or Path.home() / ".cache" / "ehrqa")


def build_once(final: Path, marker: str, build: Callable[[Path], None]) -> Path:
    """``final`` once ``final/marker`` exists; otherwise ``build`` fills a temporary sibling
    directory that is then moved into place, so readers never see a half-built one. A failed
    build leaves nothing behind; if another process finished first, its directory is kept."""
    if (final / marker).exists():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=final.name + ".", dir=final.parent))
    try:
        build(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    try:
        os.replace(tmp, final)
    except OSError:  # another process got there first
        shutil.rmtree(tmp, ignore_errors=True)
    return final
