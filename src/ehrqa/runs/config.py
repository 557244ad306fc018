"""Run recipes: which data, which named backends, and per step the subtask, method and settings.

A run recipe is YAML (``recipes/runs/*.yaml``)::

    name: default
    seed: 0
    backends:
      default: {kind: hf, model: smollm2}
    steps:
      - {subtask: 1, method: rule}
      - {subtask: 2, method: aligner}
      - {subtask: 3, method: llm, backend: default}
      - {subtask: 4, method: aligner}

Steps run in the order listed, so a later one may use an earlier one's output (``evidence: st2``).
Two steps of one subtask (variants to compare) need their own ``name`` each, and ``submit: true`` on
the one whose submission is the run's official ``subtaskN/submission.json``.
Every step's settings are its subtask's config dataclass (``InterpretConfig``, ``IdentifyConfig``,
``GenerateConfig``, ``AlignConfig``); unknown keys and wrong types are one-line errors.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ehrqa.config import from_dict, load_yaml, to_dict
from ehrqa.errors import DataError
from ehrqa.llm.backend import BackendSpec
from ehrqa.tasks.align import AlignConfig
from ehrqa.tasks.generate import GenerateConfig
from ehrqa.tasks.identify import IdentifyConfig
from ehrqa.tasks.interpret import InterpretConfig

RECIPE_DIR = Path(__file__).resolve().parent.parent / "recipes" / "runs"
STEP_CONFIGS: dict[int, type] = {1: InterpretConfig, 2: IdentifyConfig, 3: GenerateConfig, 4: AlignConfig}


@dataclass(frozen=True)
class StepSpec:
    subtask: int
    name: str
    config: Any  # the subtask's config dataclass
    submit: bool = True  # its submission is the run's official one for its subtask


@dataclass(frozen=True)
class RunRecipe:
    name: str = "run"
    seed: int = 0
    threads: int | None = None  # torch threads (None: ehrqa's default, see ehrqa.threads)
    backends: dict[str, BackendSpec] = field(default_factory=dict)
    steps: tuple[StepSpec, ...] = ()
    source: str = ""  # the file it was read from

    def step(self, name: str) -> StepSpec | None:
        return next((s for s in self.steps if s.name == name), None)

    def to_dict(self) -> dict:
        steps = [
            {"subtask": s.subtask, "name": s.name, **({} if s.submit else {"submit": False}), **to_dict(s.config)}
            for s in self.steps
        ]  # "submit" only when false, so a run made before the key existed still continues
        return {
            "name": self.name,
            "seed": self.seed,
            "threads": self.threads,
            "backends": to_dict(self.backends),
            "steps": steps,
        }


@dataclass(frozen=True)
class _RecipeFile:
    """A run recipe's keys as written; steps are typed by their subtask's config afterwards."""

    name: str = "run"
    description: str = ""
    seed: int = 0
    threads: int | None = None
    backends: dict[str, BackendSpec] = field(default_factory=dict)
    steps: list[dict[str, Any]] = field(default_factory=list)


def parse_recipe(data: dict, source: str = "recipe") -> RunRecipe:
    """A run recipe from plain data; every problem is one line naming ``source`` and the key."""
    raw = from_dict(_RecipeFile, data, f"{source}: recipe")
    if not raw.steps:
        raise DataError(f"{source}: steps: a run recipe lists its steps (a list of {{subtask: N, method: ...}})")
    steps, marks = [], {}
    for i, step in enumerate(raw.steps):
        where = f"{source}: steps[{i}]"
        if step.get("subtask") not in STEP_CONFIGS:
            raise DataError(f"{where}: each step needs 'subtask: 1|2|3|4'")
        settings = {k: v for k, v in step.items() if k not in ("subtask", "name", "submit")}
        name = str(step.get("name") or f"st{step['subtask']}")
        if any(s.name == name for s in steps):
            raise DataError(f"{where}: step name {name!r} is used twice; give each step its own name")
        if not isinstance(step.get("submit", False), bool):
            raise DataError(f"{where}.submit: expected true or false")
        config = from_dict(STEP_CONFIGS[step["subtask"]], settings, where)
        steps.append(StepSpec(step["subtask"], name, config))
        marks[name] = step.get("submit")
    for spec in raw.backends.values():
        spec.check()
    recipe = RunRecipe(
        name=raw.name,
        seed=raw.seed,
        threads=raw.threads,
        backends=raw.backends,
        steps=_submitted(steps, marks, source),
        source=source,
    )
    _check_references(recipe)
    return recipe


def _submitted(steps: list[StepSpec], marks: dict, source: str) -> tuple[StepSpec, ...]:
    """The steps with ``submit`` decided: the only step of a subtask, else the one marked ``submit: true``."""
    for step in steps:
        same = [s.name for s in steps if s.subtask == step.subtask]
        marked = [name for name in same if marks[name]]
        if len(same) > 1 and len(marked) != 1:
            raise DataError(
                f"{source}: steps {', '.join(same)} are all ST{step.subtask}; mark exactly one "
                f"'submit: true' (marked: {', '.join(marked) or 'none'})"
            )
    alone = {s.name: [t.subtask for t in steps].count(s.subtask) == 1 for s in steps}
    return tuple(replace(s, submit=alone[s.name] if marks[s.name] is None else marks[s.name]) for s in steps)


def _check_references(recipe: RunRecipe) -> None:
    names = [s.name for s in recipe.steps]
    for i, step in enumerate(recipe.steps):
        evidence = getattr(step.config, "evidence", None)
        if evidence and evidence not in names[:i]:
            raise DataError(f"{recipe.source}: step {step.name}: evidence {evidence!r} is not an earlier step")
        for voter_backend in _backend_names(step.config):
            if voter_backend not in recipe.backends and _uses_llm(step.config):
                known = ", ".join(recipe.backends) or "none"
                raise DataError(
                    f"{recipe.source}: step {step.name}: backend {voter_backend!r} is not defined ({known})"
                )


def _uses_llm(config) -> bool:
    return getattr(config, "method", "") == "llm"


def _backend_names(config) -> list[str]:
    voters = getattr(config, "all_voters", None)
    if voters is not None:
        return [v.backend for v in voters if v.kind == "llm"]
    return [config.backend]


def find_recipe(name_or_path: str) -> Path:
    """A recipe file by path, or a shipped run recipe by name (``default`` -> recipes/runs/default.yaml)."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    shipped = RECIPE_DIR / f"{name_or_path}.yaml"
    if shipped.is_file():
        return shipped
    known = ", ".join(sorted(p.stem for p in RECIPE_DIR.glob("*.yaml")))
    raise DataError(f"recipe={name_or_path}: no such file or shipped run recipe (shipped: {known})")


def load_recipe(name_or_path: str) -> RunRecipe:
    path = find_recipe(name_or_path)
    return parse_recipe(load_yaml(path, "run recipe"), str(path))
