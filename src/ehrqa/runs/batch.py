"""Batch files: a run's model requests as one file, and the replies put back into its reply cache.

At scale a file of requests (``vllm run-batch``, the OpenAI and other providers' batch APIs, Ray Data
over vLLM) beats thousands of open HTTP calls. :func:`export_requests` runs the pipeline exactly as
``ehrqa run`` would, on a scratch copy of the run directory, with every OpenAI-compatible backend
replaced by a :class:`DeferredBackend`: requests the run's reply cache answers stay answered, the
others are written down (one line each, in the OpenAI batch input format) instead of sent, and their
cases stay unfinished, so a step that reads them (``evidence: st2``) waits for the next export. The
run directory itself is not touched. :func:`import_results` reads a batch output file and stores each
successful reply in the run's reply cache under its ``custom_id`` (the reply-cache key), so the same
``ehrqa run`` afterwards takes those replies from the cache and calls no model for them.

Lines, as OpenAI and vLLM define them::

    request: {"custom_id": KEY, "method": "POST", "url": "/v1/chat/completions", "body": {...}}
    result:  {"custom_id": KEY, "response": {"status_code": 200, "body": {...}}, "error": null}
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ehrqa.errors import DataError
from ehrqa.llm.backend import BackendSpec, ChatBackend, ChatRequest, GenerationConfig, OnReply, Reply
from ehrqa.llm.cache import ReplyCache, request_key

ENDPOINT = "/v1/chat/completions"
AWAITING = "awaiting a batch reply"  # the error of a deferred request: its case stays unfinished


class DeferredBackend(ChatBackend):
    """Stands in for an OpenAI-compatible backend: notes each request's HTTP body under its
    reply-cache key (in ``lines``, shared by the stand-ins of one export) and answers it with no
    reply (``error`` :data:`AWAITING`)."""

    def __init__(self, name: str, spec: BackendSpec, lines: dict[str, dict]) -> None:
        from ehrqa.llm.openai import describe_server

        self.name, self.spec, self.lines = name, spec, lines
        self.description = describe_server(spec) if spec.kind == "openai" else {"backend": spec.kind}
        self.prompts: Counter[str] = Counter()  # prompt id (without its hash) -> requests noted

    def complete(self, requests: Sequence[ChatRequest], on_reply: OnReply | None = None) -> list[Reply]:
        from ehrqa.llm.openai import request_body

        if self.spec.kind != "openai":
            raise DataError(
                f"backend {self.name!r} is kind {self.spec.kind!r}: batch files hold requests for "
                "OpenAI-compatible servers (kind openai)"
            )
        replies = []
        for i, request in enumerate(requests):
            key = request_key(self.description, request)
            if key not in self.lines:
                self.lines[key] = {
                    "custom_id": key,
                    "method": "POST",
                    "url": ENDPOINT,
                    "body": request_body(self.spec, request),
                }
                self.prompts[request.prompt.split(":")[0]] += 1
            replies.append(Reply(None, error=AWAITING))
            if on_reply is not None:
                on_reply(i, replies[-1])
        return replies


@dataclass
class Export:
    """What :func:`export_requests` found: the batch lines, requests per prompt, and the summary
    rows of the scratch run (which steps finished, which wait for replies)."""

    lines: list[dict]
    prompts: Counter
    rows: list[dict]


def export_requests(recipe, cases, run_dir: str | Path, *, data: dict | None = None, subtasks=None) -> Export:
    """The requests ``ehrqa run`` with this recipe and data still needs from its model servers,
    given what ``run_dir``'s reply cache holds (``run_dir`` need not exist yet; it is not changed)."""
    from ehrqa.runs.pipeline import run

    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise DataError(f"{run_dir}: is a file, not a run directory")
    lines: dict[str, dict] = {}
    stand_ins = {name: DeferredBackend(name, spec, lines) for name, spec in recipe.backends.items()}
    with tempfile.TemporaryDirectory(prefix="ehrqa-batch-") as tmp:
        scratch = Path(tmp) / "run"
        if run_dir.exists():
            shutil.copytree(run_dir, scratch, ignore=shutil.ignore_patterns("view"))
        try:
            rows = run(recipe, cases, scratch, data=data, subtasks=subtasks, backends=stand_ins)
        except DataError as e:  # e.g. a directory made with another recipe: name the user's directory
            raise DataError(str(e).replace(str(scratch), str(run_dir))) from None
    prompts = sum((b.prompts for b in stand_ins.values()), Counter())
    return Export(list(lines.values()), prompts, rows)


def write_requests(lines: Sequence[dict], path: str | Path) -> Path:
    """The batch input file, one JSON object a line (written atomically)."""
    from ehrqa.io import atomic_write_text

    return atomic_write_text(path, "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines))


@dataclass
class Imported:
    """What :func:`import_results` did with a batch output file."""

    stored: int = 0  # replies added to the reply cache
    known: int = 0  # replies the cache already held
    failed: list[tuple[str, str]] = field(default_factory=list)  # (custom_id, reason): not stored


def import_results(run_dir: str | Path, results: str | Path) -> Imported:
    """Store each successful reply of a batch output file in ``run_dir``'s reply cache under its
    ``custom_id``; failed lines (an ``error``, a status other than 200, a body without a reply) are
    counted and left out, so the next export asks for them again. A line that is not a batch
    result at all is a one-line :class:`DataError` naming the file and line, before anything is stored."""
    from ehrqa.llm import openai
    from ehrqa.runs.layout import RunLayout

    results = Path(results)
    entries = _read_results(results)
    done = Imported()
    cache = ReplyCache(RunLayout(run_dir).reply_cache)
    try:
        for key, response, error in entries:
            if error is not None or not isinstance(response, dict) or response.get("status_code") != 200:
                status = response.get("status_code") if isinstance(response, dict) else None
                done.failed.append((key, "error" if error is not None else f"HTTP {status}"))
                continue
            try:  # the very reading of a reply the backend does for a live call
                reply = openai._parse_reply(json.dumps(response.get("body")).encode("utf-8"))
            except openai._Retry as e:
                done.failed.append((key, e.reason))
                continue
            if key in cache:
                done.known += 1
                continue
            cache.put(key, ChatRequest((), GenerationConfig(), prompt="batch import"), reply)
            done.stored += 1
    finally:
        cache.close()
    return done


def _read_results(path: Path) -> list[tuple[str, dict | None, object]]:
    """(custom_id, response, error) of each line of a batch output file."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot read ({getattr(e, 'strerror', None) or type(e).__name__})") from None
    entries = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            raise DataError(f"{path}: line {number}: not JSON") from None
        key = record.get("custom_id") if isinstance(record, dict) else None
        if not isinstance(key, str) or not key:
            raise DataError(f"{path}: line {number}: no custom_id; expected a batch output line")
        if "response" not in record and "error" not in record:
            raise DataError(f"{path}: line {number}: neither response nor error; expected a batch output line")
        entries.append((key, record.get("response"), record.get("error")))
    return entries
