"""The run directory: writing it (records, done markers, submissions, scores), the rules for
continuing it, and reading it back (:func:`read_run`). Its paths are spelled in :mod:`ehrqa.runs.layout`.

A directory made with another resolved configuration (recipe, prompts, data) is refused unless
``force``; a directory holding records but no ``run.json`` is refused too, never silently resumed.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from ehrqa.errors import DataError
from ehrqa.io import JsonlWriter, atomic_write_json, atomic_write_text, read_json, read_jsonl
from ehrqa.runs.layout import RunLayout
from ehrqa.tasks.base import Records

FORMAT = "ehrqa-run/1"
IDENTITY_KEYS = ("recipe", "prompts", "data")  # what must match for a run to be continued
IDENTITY_WORDS = {"recipe": "a different recipe", "prompts": "different prompts", "data": "a different dataset"}
# Backend settings that change how replies are fetched, never what they say: a rerun with a longer
# timeout or more retries (the fix for the cases that failed), or against the same model served at
# another address, continues the run instead of being refused.
TRANSPORT_KEYS = ("timeout", "retries", "concurrency", "api_key_env", "base_url", "proxy")


class Step(Records):
    """The records of one step on disk. The last record of a case wins; failed ones are redone."""

    def __init__(self, layout: RunLayout, name: str) -> None:
        super().__init__()
        self.path, self.done_file = layout.records(name), layout.done(name)
        self.by_case = read_records(self.path)
        self._writer: JsonlWriter | None = None

    def write(self, record: dict) -> None:
        super().write(record)
        if self._writer is None:
            self._writer = JsonlWriter(self.path)  # cuts a torn last line before appending
        self._writer.write(record)

    @property
    def done(self) -> bool:
        return self.done_file.exists()

    def mark_done(self) -> None:
        atomic_write_text(self.done_file, "")

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


class RunDir:
    def __init__(self, path: Path, meta: dict) -> None:
        self.path, self.meta, self.layout = path, meta, RunLayout(path)

    @classmethod
    def open(cls, path: str | Path, meta: dict, *, force: bool = False) -> RunDir:
        """Create ``path`` or continue it; refuse a directory made with another configuration."""
        path = Path(path)
        if path.exists() and not path.is_dir():
            raise DataError(f"{path}: is a file, not a run directory")
        layout = RunLayout(path)
        run_file = layout.run_file
        if run_file.exists():
            previous = read_json(run_file, "run config")
            if not isinstance(previous, dict) or previous.get("format") != FORMAT:
                raise DataError(f"{run_file}: not an ehrqa run config; use out=ANOTHER_DIR or force=True")
            changed = [k for k in IDENTITY_KEYS if _identity(previous, k) != _identity(meta, k)]
            if changed and not force:
                what = " and ".join(IDENTITY_WORDS[k] for k in changed)
                raise DataError(f"{path}: made with {what}; use out=ANOTHER_DIR, or force=True to start over")
            if changed:
                shutil.rmtree(path)
        elif layout.step_names():
            if not force:
                raise DataError(f"{path}: has step records but no {run_file.name}; refusing to guess; use force=True")
            shutil.rmtree(path)
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise DataError(f"{path}: cannot create the run directory ({e.strerror})") from None
        if not run_file.exists():
            atomic_write_json(run_file, {"format": FORMAT, **meta})
        return cls(path, meta)

    def step(self, name: str) -> Step:
        return Step(self.layout, name)

    def write_submission(self, step, entries: list[dict]) -> Path:
        """The step's submission, and the subtask's official copy when the step is the one submitted;
        returns the zip a user would upload (the official one, else the step's)."""
        from ehrqa.data.submission import write_submission

        path = write_submission(entries, self.layout.submission(step.name))
        if step.submit:
            path = write_submission(entries, self.layout.official(step.subtask))
        return path.with_suffix(".zip")

    def write_scores(self, step: str, scores: dict, per_case: dict) -> None:
        atomic_write_json(self.layout.scores(step), {"scores": scores, "per_case": per_case})

    def write_summary(self, rows: list[dict]) -> None:
        atomic_write_json(self.layout.summary, rows)


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


def read_records(path: Path) -> dict[str, dict]:
    """The last record of each case in a ``records.jsonl``; a torn line is skipped."""
    return {str(r["case_id"]): r for r in read_jsonl(path) if "case_id" in r}


@dataclass
class StepRun:
    """One step of a run as written: its records, and its submission and scores once finished."""

    name: str
    subtask: int | None
    submit: bool  # its submission is the run's official one for its subtask
    records: dict[str, dict]  # case id -> the last record
    done: bool
    submission: list[dict] | None  # the step's submission entries
    scores: dict | None  # {"scores": {...}, "per_case": {case id: {...}}}


@dataclass
class Run:
    path: Path
    meta: dict  # run.json
    steps: dict[str, StepRun]

    def submitted(self, subtask: int) -> StepRun | None:
        """The step whose submission is the official one for ``subtask`` (else its first step)."""
        steps = [s for s in self.steps.values() if s.subtask == subtask]
        return next((s for s in steps if s.submit), steps[0] if steps else None)

    @property
    def layout(self) -> RunLayout:
        return RunLayout(self.path)


def read_run(path: str | Path) -> Run:
    """A finished or partial run as written; a missing or broken ``run.json`` is a one-line DataError."""
    from ehrqa.data.submission import read_submission

    layout = RunLayout(path)
    if not layout.run_file.exists():
        raise DataError(f"{layout.path}: no {layout.run_file.name} (is this a run directory from ehrqa run?)")
    meta = read_json(layout.run_file, "run config")
    if not isinstance(meta, dict):
        raise DataError(f"{layout.run_file}: not an ehrqa run config")
    recipe_steps = (meta.get("recipe") or {}).get("steps")
    recipe_steps = recipe_steps if isinstance(recipe_steps, list) else []
    declared = {str(s.get("name")): s for s in recipe_steps if isinstance(s, dict)}
    steps = {}
    for name in layout.step_names():
        spec = declared.get(name) or {}
        numbered = re.fullmatch(r"st([1-4])", name)
        subtask = spec.get("subtask") or (int(numbered.group(1)) if numbered else None)
        submission, scores = layout.submission(name), layout.scores(name)
        steps[name] = StepRun(
            name=name,
            subtask=subtask,
            submit=spec.get("submit", True) is not False,
            records=read_records(layout.records(name)),
            done=layout.done(name).exists(),
            submission=read_submission(submission) if submission.exists() else None,
            scores=read_json(scores, "step scores") if scores.exists() else None,
        )
    return Run(layout.path, meta, steps)
