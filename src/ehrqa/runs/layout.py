"""Where a run keeps its files: the only place a run directory's paths are spelled (the picture,
and the path of a case through a run, are in ``docs/architecture.md``). Each step keeps its own
records, done marker, submission and scores under ``steps/<step>/``; ``subtask<N>/`` holds the
official copy of the step submitted for subtask N."""

from __future__ import annotations

from pathlib import Path


class RunLayout:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.run_file = self.path / "run.json"
        self.summary = self.path / "summary.json"
        self.reply_cache = self.path / "cache" / "replies.jsonl"
        self.data = self.path / "data"
        self.steps = self.path / "steps"
        self.page = self.path / "view" / "index.html"
        self.plots = self.path / "plots"

    def comparison_page(self, other: str | Path) -> Path:
        """The page comparing this run with run ``other``; the run's own page stays as it is."""
        return self.path / f"view-vs-{Path(other).resolve().name}" / "index.html"

    @classmethod
    def for_output(cls, out: str | Path) -> RunLayout:
        """The run directory of a one-subtask command writing ``out``: ``out/st4_n5.json`` -> ``out/st4_n5.run``."""
        out = Path(out)
        return cls(out.with_suffix(".run") if out.suffix != ".run" else out.with_name(out.name + ".run"))

    def records(self, step: str) -> Path:
        return self.steps / step / "records.jsonl"

    def done(self, step: str) -> Path:
        return self.steps / step / "done"

    def submission(self, step: str) -> Path:
        return self.steps / step / "submission.json"

    def scores(self, step: str) -> Path:
        return self.steps / step / "scores.json"

    def official(self, subtask: int) -> Path:
        """The submission of subtask ``subtask`` (a copy of its submitted step's)."""
        return self.path / f"subtask{subtask}" / "submission.json"

    def step_names(self) -> list[str]:
        return sorted(p.name for p in self.steps.glob("*") if p.is_dir())
