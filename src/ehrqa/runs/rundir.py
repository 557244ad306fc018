"""The run directory: what a run wrote, and the rules for continuing it.

Layout (also in ``docs/architecture.md``)::

    RUN_DIR/run.json                   resolved recipe, data, prompt ids + sha256, versions, seed, threads
    RUN_DIR/steps/<step>/records.jsonl one record per case, appended and fsynced as it finishes
    RUN_DIR/steps/<step>/done          written last, when the step finished
    RUN_DIR/cache/replies.jsonl        every model reply, so a resumed or repeated run calls no model twice
    RUN_DIR/subtaskN/submission.json   (+ .zip) the official submission
    RUN_DIR/scores/subtaskN.json       scores with signature and per-case values, when gold exists
    RUN_DIR/summary.json               one row per step: method, headline scores, seconds, model calls

A directory made with another resolved configuration (recipe, prompts, data) is refused unless
``force``; a directory holding records but no ``run.json`` is refused too, never silently resumed.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from ehrqa.errors import DataError
from ehrqa.io import JsonlWriter, atomic_write_json, atomic_write_text, read_json, read_jsonl
from ehrqa.tasks.base import Records

RUN_FILE = "run.json"
FORMAT = "ehrqa-run/1"
IDENTITY_KEYS = ("recipe", "prompts", "data")  # what must match for a run to be continued
# Backend settings that change how replies are fetched, never what they say: a rerun with a longer
# timeout or more retries (the fix for the cases that failed), or against the same model served at
# another address, continues the run instead of being refused.
TRANSPORT_KEYS = ("timeout", "retries", "concurrency", "api_key_env", "base_url", "proxy")


class Step(Records):
    """The records of one step on disk. The last record of a case wins; failed ones are redone."""

    def __init__(self, directory: Path) -> None:
        super().__init__()
        self.directory = directory
        self.path = directory / "records.jsonl"
        for record in read_jsonl(self.path):
            if "case_id" in record:
                self.by_case[str(record["case_id"])] = record
        self._writer: JsonlWriter | None = None

    def write(self, record: dict) -> None:
        super().write(record)
        if self._writer is None:
            self._writer = JsonlWriter(self.path)  # cuts a torn last line before appending
        self._writer.write(record)

    @property
    def done(self) -> bool:
        return (self.directory / "done").exists()

    def mark_done(self) -> None:
        atomic_write_text(self.directory / "done", "")

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


class RunDir:
    def __init__(self, path: Path, meta: dict) -> None:
        self.path, self.meta = path, meta

    @classmethod
    def open(cls, path: str | Path, meta: dict, *, force: bool = False) -> RunDir:
        """Create ``path`` or continue it; refuse a directory made with another configuration."""
        path = Path(path)
        if path.exists() and not path.is_dir():
            raise DataError(f"{path}: is a file, not a run directory")
        run_file = path / RUN_FILE
        if run_file.exists():
            previous = read_json(run_file, "run config")
            if not isinstance(previous, dict) or previous.get("format") != FORMAT:
                raise DataError(f"{run_file}: not an ehrqa run config; use another --out or --force")
            changed = [k for k in IDENTITY_KEYS if _identity(previous, k) != _identity(meta, k)]
            if changed and not force:
                raise DataError(
                    f"{path}: made with a different {' and '.join(changed)}; use a new --out, or --force to start over"
                )
            if changed:
                shutil.rmtree(path)
        elif (path / "steps").exists() and any((path / "steps").iterdir()):
            if not force:
                raise DataError(f"{path}: has step records but no {RUN_FILE}; refusing to guess; use --force")
            shutil.rmtree(path)
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise DataError(f"{path}: cannot create the run directory ({e.strerror})") from None
        if not run_file.exists():
            atomic_write_json(run_file, {"format": FORMAT, **meta})
        return cls(path, meta)

    def step(self, name: str) -> Step:
        return Step(self.path / "steps" / name)

    @property
    def reply_cache(self) -> Path:
        return self.path / "cache" / "replies.jsonl"

    def write_json(self, relative: str, obj) -> Path:
        return atomic_write_json(self.path / relative, obj)


def _identity(meta: dict, key: str):
    """``meta[key]`` as compared between runs: a recipe without its backends' transport settings
    (nor settings at their defaults, see :func:`ehrqa.llm.backend.backend_identity`)."""
    value = meta.get(key)
    if key != "recipe" or not isinstance(value, dict) or not isinstance(value.get("backends"), dict):
        return value
    from ehrqa.llm.backend import backend_identity

    backends = {
        name: backend_identity(spec, TRANSPORT_KEYS) if isinstance(spec, dict) else spec
        for name, spec in value["backends"].items()
    }
    return {**value, "backends": backends}


def load_run(path: str | Path) -> dict:
    """A finished or partial run as data: its config, per-step records, submissions and scores."""
    path = Path(path)
    meta = read_json(path / RUN_FILE, "run config")
    steps = {}
    for step_dir in sorted((path / "steps").glob("*")):
        if step_dir.is_dir():
            steps[step_dir.name] = Step(step_dir).by_case
    scores = {}
    for file in sorted((path / "scores").glob("subtask*.json")):
        scores[int(file.stem.removeprefix("subtask"))] = json.loads(file.read_text(encoding="utf-8"))
    summary = read_json(path / "summary.json", "run summary") if (path / "summary.json").exists() else []
    return {"path": str(path), "meta": meta, "steps": steps, "scores": scores, "summary": summary}
