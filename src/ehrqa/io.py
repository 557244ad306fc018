"""Small file utilities used everywhere: atomic writes, JSONL records, package versions.

Atomic writes go to a temporary sibling that is fsynced and renamed into place, so a reader (or a
resumed run) never sees half a file. JSONL files are append-only logs of records; a last line cut
short by a kill is ignored when reading and cut off before the next append.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from ehrqa.errors import DataError


def _describe(path: Path, error: OSError) -> str:
    reason = error.strerror or type(error).__name__
    return f"{path}: cannot write ({reason})"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` all at once: a temporary sibling, fsync, rename. An unwritable
    place or a path that is a directory is a one-line :class:`DataError`; nothing is left behind."""
    path = Path(path)
    if path.is_dir():
        raise DataError(f"{path}: is a directory; give a file name")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise DataError(_describe(path, e)) from None
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; honour the umask as open() would
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        raise DataError(_describe(path, e)) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    """``obj`` as indented UTF-8 JSON with a final newline, written atomically."""
    return atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def read_text(path: str | os.PathLike, what: str = "file") -> str:
    """A UTF-8 text file; a missing, unreadable or undecodable one is a one-line :class:`DataError`."""
    path = Path(path)
    try:
        return path.read_text(encoding="utf-8")
    except OSError as e:
        raise DataError(f"{path}: cannot read {what} ({e.strerror or type(e).__name__})") from None
    except UnicodeDecodeError:
        raise DataError(f"{path}: {what} is not UTF-8 text") from None


def read_json(path: str | os.PathLike, what: str = "file") -> Any:
    """A JSON file; a missing, unreadable, empty or corrupt one is a one-line :class:`DataError`."""
    path = Path(path)
    text = read_text(path, what)
    if not text.strip():
        raise DataError(f"{path}: {what} is empty")
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: {what} is not valid JSON (line {e.lineno})") from None


def read_jsonl(path: str | os.PathLike) -> Iterator[dict]:
    """The records of a JSONL file in order; a missing file has none. A line that is not a JSON
    object (a torn last line after a kill) is skipped."""
    path = Path(path)
    if not path.exists():
        return
    with path.open(encoding="utf-8", errors="replace") as f:
        for line in f:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict):
                yield record


def repair_jsonl(path: str | os.PathLike) -> None:
    """Cut a torn last line (no final newline) off a JSONL file, so the next append starts clean.

    A last line that is a whole record and lacks only its newline is kept (the newline is added):
    :func:`read_jsonl` counted it, so cutting it would lose a record the reader had seen."""
    path = Path(path)
    if not path.exists() or path.stat().st_size == 0:
        return
    with path.open("rb+") as f:
        data = f.read()
        if data.endswith(b"\n"):
            return
        start = data.rfind(b"\n") + 1
        try:
            whole = isinstance(json.loads(data[start:].decode("utf-8", errors="replace")), dict)
        except ValueError:  # not JSON (read_jsonl skipped it too)
            whole = False
        if whole:
            f.write(b"\n")
        else:
            f.truncate(start)


class JsonlWriter:
    """Appends records to a JSONL file, one line each, flushed and fsynced per call."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        repair_jsonl(self.path)
        self._file = self.path.open("a", encoding="utf-8")

    def write(self, records: dict | Iterable[dict]) -> None:
        for record in [records] if isinstance(records, dict) else records:
            self._file.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> JsonlWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def package_versions(names: Iterable[str]) -> dict[str, str]:
    """Installed versions of the named distributions; ``"not installed"`` for missing ones."""
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in names:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found
