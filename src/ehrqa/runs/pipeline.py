"""``ehrqa run``: read -> input_for -> steps -> submissions -> scores -> summary, into a run directory.

:func:`run` is the whole pipeline on one screen; :func:`run_step` is the one engine for a step,
used by ``ehrqa run``, the one-subtask commands and ``ehrqa answer``. Each step gives its subtask's
``predict`` only that subtask's official input (:meth:`Case.input_for`, applied here and nowhere
else), records every finished case in ``steps/<step>/records.jsonl``, writes the step's submission
when every case has a prediction (and the official ``subtaskN/`` copy when it is the step submitted),
and scores it when the dataset has gold. A finished step is not redone; an interrupted one continues
with the cases it lacks (and the reply cache answers any model call already made). Cases whose model
calls failed are named in the summary, and a rerun retries them.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from ehrqa.data.case import Case
from ehrqa.data.submission import build_submission
from ehrqa.io import atomic_write_bytes
from ehrqa.llm.backend import ChatBackend
from ehrqa.runs.config import RunRecipe, StepSpec
from ehrqa.runs.layout import RunLayout
from ehrqa.runs.rundir import RunDir
from ehrqa.tasks import aligner_use, task_module
from ehrqa.tasks.base import Context, Records

log = logging.getLogger(__name__)

TITLES = {1: "question interpretation", 2: "evidence identification", 3: "answer generation", 4: "evidence alignment"}
VERSIONED = ("torch", "transformers", "peft", "sentence-transformers", "scikit-learn", "numpy", "rank-bm25")


def has_gold(subtask: int, cases: Sequence[Case]) -> bool:
    return all(c.has_gold(subtask) for c in cases)


def has_input(subtask: int, cases: Sequence[Case]) -> bool:
    """ST4 needs the answer sentences to align; ST2/ST3 need the note."""
    if subtask == 4:
        return all(c.answer_sentences for c in cases)
    if subtask in (2, 3):
        return all(c.sentences for c in cases)
    return True


def file_sha256(path: str | Path | None) -> str | None:
    if not path:
        return None
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def dataset_copy(cases: Sequence[Case], out: Path, name: str = "cases") -> tuple[dict, dict[Path, bytes]]:
    """The cases as files for ``out/data/`` (XML, and the key where they have gold): the run's data
    description (paths and hashes) and the bytes to write there once the run directory is open."""
    import tempfile

    from ehrqa.data.archehr import KEY_NAME, XML_NAME, write_key, write_xml

    target = RunLayout(out).data
    files: dict[Path, bytes] = {}
    with tempfile.TemporaryDirectory() as tmp:
        write_xml(cases, Path(tmp) / XML_NAME)
        files[target / XML_NAME] = (Path(tmp) / XML_NAME).read_bytes()
        if any(c.has_key for c in cases):
            write_key(cases, Path(tmp) / KEY_NAME)
            files[target / KEY_NAME] = (Path(tmp) / KEY_NAME).read_bytes()
    digest = {p.name: hashlib.sha256(b).hexdigest() for p, b in files.items()}
    key = target / KEY_NAME
    data = {
        "name": name,
        "xml": str((target / XML_NAME).resolve()),
        "key": str(key.resolve()) if key in files else None,
        "xml_sha256": digest[XML_NAME],
        "key_sha256": digest.get(KEY_NAME),
    }
    return data, files


def run_meta(recipe: RunRecipe, data: dict) -> dict:
    """What ``run.json`` records: the identity of the run (recipe, prompts, data) and its setting."""
    from ehrqa import __version__
    from ehrqa.io import package_versions
    from ehrqa.llm.prompt import load_prompt
    from ehrqa.threads import torch_threads

    prompts = {}
    for step in recipe.steps:
        for ref in _prompt_refs(step):
            prompt = load_prompt(ref)
            prompts[prompt.name] = prompt.sha256
    return {
        "recipe": recipe.to_dict(),
        "prompts": prompts,
        "data": {"name": data.get("name"), "xml_sha256": data.get("xml_sha256"), "key_sha256": data.get("key_sha256")},
        "data_files": {"xml": data.get("xml"), "key": data.get("key")},
        "versions": {"ehrqa": __version__, **package_versions(VERSIONED)},
        "seed": recipe.seed,
        "threads": torch_threads(recipe.threads),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def _prompt_refs(step: StepSpec) -> list[str]:
    config = step.config
    if getattr(config, "method", "") != "llm":
        return []
    voters = getattr(config, "all_voters", None)
    refs = [v.prompt for v in voters if v.kind == "llm"] if voters is not None else [config.prompt]
    if getattr(config, "rewrite_prompt", None):
        refs.append(config.rewrite_prompt)
    return refs


def run(
    recipe: RunRecipe,
    cases: Sequence[Case],
    out: str | Path,
    *,
    data: dict | None = None,
    subtasks: Sequence[int] | None = None,
    force: bool = False,
    backends: Mapping[str, ChatBackend] | None = None,
) -> list[dict]:
    """Run the recipe's steps (those of ``subtasks``, plus the steps they read) on ``cases``.
    ``backends``: ready backends used instead of building the recipe's of those names (the batch
    export's stand-ins); the run's identity is still the recipe's."""
    from ehrqa.threads import set_torch_threads

    set_torch_threads(recipe.threads)
    rundir = open_run(recipe, cases, out, data=data, force=force)
    wanted = _selected_steps(recipe, subtasks)
    outputs: dict[str, dict] = {}
    rows = []
    try:
        for step in recipe.steps:
            if step.name in wanted:
                rows.append(run_step(step, cases, recipe, outputs, rundir, backends=backends))
    finally:
        rundir.write_summary(rows)
    return rows


def open_run(
    recipe: RunRecipe, cases: Sequence[Case], out: str | Path, *, data: dict | None = None, force: bool = False
) -> RunDir:
    """Create or continue the run directory ``out`` (see :meth:`RunDir.open`)."""
    copies: dict[Path, bytes] = {}
    if not (data or {}).get("xml"):  # cases from code, not a file: the run keeps a copy for ehrqa view
        data, copies = dataset_copy(cases, Path(out), name=(data or {}).get("name", "cases"))
    rundir = RunDir.open(out, run_meta(recipe, data), force=force)
    for path, content in copies.items():
        atomic_write_bytes(path, content)
    return rundir


def _selected_steps(recipe: RunRecipe, subtasks: Sequence[int] | None) -> dict[str, bool]:
    """Names of the steps to run: those of ``subtasks`` and, before them, the steps they read."""
    chosen = [s for s in recipe.steps if subtasks is None or s.subtask in subtasks]
    names = {s.name for s in chosen}
    for step in reversed(recipe.steps):
        evidence = getattr(step.config, "evidence", None)
        if step.name in names and evidence:
            names.add(evidence)
    return {s.name: True for s in recipe.steps if s.name in names}


def run_step(
    step: StepSpec,
    cases: Sequence[Case],
    recipe: RunRecipe,
    outputs: dict,
    rundir: RunDir | None = None,
    records: Records | None = None,
    backends: Mapping[str, ChatBackend] | None = None,
) -> dict:
    """One step: predict what is missing (into ``outputs[step.name]``), then write the submission and
    scores. Without ``rundir`` it runs in memory (``records``, when given, receive the records).
    ``backends``: ready backends used instead of the recipe's of those names."""
    subtask = step.subtask
    row: dict = {"subtask": subtask, "step": step.name, "title": TITLES[subtask], "method": step.config.method}
    if aligner_use(step.config):
        row["citations_by_aligner"] = aligner_use(step.config)  # an LLM ST3 step's hidden ST4 aligner
    if not has_input(subtask, cases):
        row["status"] = "input missing from this dataset"
        return row
    evidence = getattr(step.config, "evidence", None)
    if evidence and evidence not in outputs:
        row["status"] = f"skipped: step {evidence} did not finish"
        return row
    task = task_module(subtask)
    if records is None:
        records = rundir.step(step.name) if rundir is not None else Records()
    cache = rundir.layout.reply_cache if rundir is not None else None
    ctx = Context(
        backends={**recipe.backends, **(backends or {})}, seed=recipe.seed, records=records, reply_cache=cache
    )
    inputs = [c.input_for(subtask) for c in cases]
    done = rundir is not None and records.done
    started = time.perf_counter()
    try:
        if done:
            predictions = ctx.predictions(inputs)
        else:
            kwargs = {"evidence": outputs[evidence]} if evidence else {}
            ctx.examples = example_pool(step, inputs, rundir.meta.get("data", {}) if rundir is not None else {})
            predictions = task.predict(inputs, step.config, ctx, **kwargs)
    finally:
        ctx.close()
        if rundir is not None:
            records.close()
    row.update({k: int(v) for k, v in ctx.counts.items()}, seconds=round(time.perf_counter() - started, 1))
    fallbacks = [c.id for c in cases if records.by_case.get(c.id, {}).get("status") == "fallback"]
    if fallbacks:  # predictions that are not the method's own (e.g. an unparsable reply, the aligner's)
        row.update(fallbacks=len(fallbacks), fallback_cases=fallbacks)
    failed = [c.id for c in cases if c.id not in predictions]
    if failed:
        reasons = {records.by_case.get(cid, {}).get("reason") for cid in failed} - {None}
        row.update(status="failed", failed=failed, reasons=sorted(reasons))
        return row
    outputs[step.name] = predictions
    row["status"] = "ok"
    if rundir is None:
        return row
    if not done:
        records.mark_done()
    entries = build_submission(subtask, predictions, cases)
    row["submission"] = str(rundir.write_submission(step, entries))
    if has_gold(subtask, cases):
        row["scores"] = _score(step, entries, cases, rundir)
    return row


def example_pool(step: StepSpec, inputs: Sequence[Case], data: dict):
    """The few-shot pool a step asks for (``examples: DIR`` with ``shots`` > 0), never holding a case
    being predicted. When DIR is the dataset being run (tuning on training cases), each case is shown
    the others only: leave-one-out, as :meth:`ExamplePool.nearest` never offers the case itself."""
    config = step.config
    directory = getattr(config, "examples", None)
    if not getattr(config, "shots", 0) or not directory or directory == "meqsum":
        return None
    from ehrqa.data.archehr import XML_NAME
    from ehrqa.retrieval.examples import case_pool, question_pool

    pool = question_pool(directory) if step.subtask == 1 else case_pool(directory)
    if file_sha256(Path(directory) / XML_NAME) == data.get("xml_sha256"):
        log.info("step %s: examples from the dataset being run, leave-one-out", step.name)
        return pool
    return pool.without(inputs)


def _score(step: StepSpec, entries: list, cases: Sequence[Case], rundir: RunDir) -> dict:
    from ehrqa.score import score

    result = score(step.subtask, entries, cases)
    per_case = {r["case_id"]: {k: v for k, v in r.items() if k != "case_id"} for r in result.per_case}
    rundir.write_scores(step.name, result.to_dict(), per_case)
    return result.to_dict()
