"""What every subtask's ``predict(inputs, config, ctx)`` shares: the context and its records.

``inputs`` are cases as the subtask's official input holds them (:meth:`Case.input_for`);
``config`` is the subtask's typed settings dataclass; ``ctx`` (:class:`Context`) carries the named
chat backends (built lazily, answered from the run's reply cache first), the run seed, the
retrieved-example pool and the step's records. Each finished case is recorded at once
(:meth:`Context.record`), so a resumed run skips it; :meth:`Context.todo` says what is left.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from functools import lru_cache
from pathlib import Path

from ehrqa.data.case import Case
from ehrqa.errors import DataError
from ehrqa.llm.backend import BackendSpec, ChatBackend, ChatRequest, GenerationConfig, Reply, sample_seed
from ehrqa.llm.vote import Rule, parse_rule


@dataclass(frozen=True)
class Sampling:
    """How one chat model is asked: a named backend, a prompt, and how to sample it. The fields a
    :class:`Voter` and a subtask's :class:`ModelSettings` share, defined once here."""

    backend: str = "default"
    prompt: str = ""
    samples: int = 1
    temperature: float = 0.0
    top_p: float = 1.0
    max_new_tokens: int = 512

    def __post_init__(self) -> None:
        self.generation()  # refuses several greedy samples

    def generation(self, *, json: bool = False) -> GenerationConfig:
        return GenerationConfig(
            max_new_tokens=self.max_new_tokens,
            temperature=self.temperature,
            top_p=self.top_p,
            n=self.samples,
            json=json,
        )


@dataclass(frozen=True)
class Voter(Sampling):
    """One model that answers (and votes). ``kind: aligner`` makes the retrieval aligner one voter
    among the language models."""

    kind: str = "llm"  # llm | aligner
    weight: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in ("llm", "aligner"):
            raise ValueError(f"a voter's kind is 'llm' or 'aligner', not {self.kind!r}")
        super().__post_init__()


@dataclass(frozen=True)
class ModelSettings(Sampling):
    """A subtask config's method and, for ``llm``, how its chat model is asked (one :class:`Voter`)."""

    method: str = ""

    METHODS = ()  # the subtask's methods, set by each config class

    def __post_init__(self) -> None:
        if self.method not in self.METHODS:
            raise ValueError(f"method is one of {', '.join(self.METHODS)}, not {self.method!r}")
        super().__post_init__()

    @property
    def voter(self) -> Voter:
        return Voter(**{f.name: getattr(self, f.name) for f in fields(Sampling)})


@dataclass(frozen=True)
class EvidenceConfig(ModelSettings):
    """ST2 and ST4 settings: the retrieval aligner, or chat models that vote."""

    method: str = "aligner"
    aligner: str | None = None  # aligner model directory (None: the shipped default)
    max_new_tokens: int = 768
    voters: tuple[Voter, ...] = ()  # several voters; empty: one voter from the fields above
    vote_threshold: Rule = Rule("threshold", 0.5)  # majority, union, intersection, a fraction, a count
    shots: int = 0
    examples: str | None = None  # dataset directory of annotated cases for few-shot examples

    METHODS = ("aligner", "llm")

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "vote_threshold", parse_rule(self.vote_threshold))
        self.all_voters  # noqa: B018 - builds (and so checks) the voters

    @property
    def all_voters(self) -> tuple[Voter, ...]:
        """The ``voters`` list (each without a prompt of its own taking the config's), or the one voter."""
        if self.voters:
            return tuple(replace(v, prompt=v.prompt or self.prompt) for v in self.voters)
        return (self.voter,)


def shared_aligner(aligner=None):
    """An aligner model: the one given, or the one at a path (None: the shipped default), loaded once
    per process, so steps and cited answers that use the same directory share it and the scores it
    remembers (:meth:`~ehrqa.retrieval.aligner.AlignerModel.sentence_scores`)."""
    from ehrqa.retrieval.aligner import AlignerModel

    return aligner if isinstance(aligner, AlignerModel) else _load_aligner(None if aligner is None else str(aligner))


@lru_cache(maxsize=4)
def _load_aligner(path: str | None):
    from ehrqa.retrieval.aligner import load_model

    return load_model(path)


class Records:
    """Per-case records of one step, in memory; :class:`ehrqa.runs.rundir.Step` keeps them on disk."""

    def __init__(self) -> None:
        self.by_case: dict[str, dict] = {}

    def finished(self) -> dict[str, dict]:
        return {cid: r for cid, r in self.by_case.items() if r.get("status") != "failed"}

    def write(self, record: dict) -> None:
        self.by_case[record["case_id"]] = record


@dataclass
class Context:
    """What a subtask's ``predict`` may use besides its inputs and config (see the module docstring)."""

    backends: Mapping[str, BackendSpec | ChatBackend] = field(default_factory=dict)  # specs, or ready backends
    seed: int = 0
    records: Records = field(default_factory=Records)
    reply_cache: Path | None = None  # JSONL of replies (the run directory's cache)
    examples: object | None = None  # an ehrqa.retrieval.examples pool, for few-shot prompts
    _built: dict[str, ChatBackend] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    counts: dict[str, float] = field(default_factory=lambda: {"calls": 0, "prompt_tokens": 0, "completion_tokens": 0})

    def backend(self, name: str) -> ChatBackend:
        """The named backend, built on first use (and answered from the reply cache first)."""
        if name not in self._built:
            if name not in self.backends:
                known = ", ".join(self.backends) or "none"
                raise DataError(f"backend {name!r} is not defined in the recipe's backends (defined: {known})")
            from ehrqa.llm import make_backend

            given = self.backends[name]
            backend = given if isinstance(given, ChatBackend) else make_backend(given)
            if self.reply_cache is not None:
                from ehrqa.llm.cache import CachedBackend

                backend = CachedBackend(backend, self.reply_cache)
            self._built[name] = backend
        return self._built[name]

    def close(self) -> None:
        """Close the backends this context built (ready ones passed in stay open for their owner)."""
        for name, backend in self._built.items():
            if not isinstance(self.backends.get(name), ChatBackend):
                backend.close()
            elif backend is not self.backends[name]:
                backend.cache.close()  # the reply-cache wrapper this context added
        self._built.clear()

    # ---- records -------------------------------------------------------------------------
    def todo(self, inputs: Sequence[Case]) -> list[Case]:
        """The inputs without a finished record (failed ones are tried again)."""
        done = self.records.finished()
        return [c for c in inputs if c.id not in done]

    def record(self, case_id: str, prediction, *, status: str = "ok", **fields) -> None:
        with self._lock:
            self.records.write({"case_id": case_id, "prediction": prediction, "status": status, **fields})

    def predictions(self, inputs: Sequence[Case]) -> dict:
        """Predictions of the finished inputs, in input order."""
        done = self.records.finished()
        return {c.id: done[c.id]["prediction"] for c in inputs if c.id in done}

    # ---- model calls ---------------------------------------------------------------------
    def requests(
        self, case: Case, messages: Sequence[dict], config: GenerationConfig, prompt: str, schema=None
    ) -> list:
        """One request per sample of ``config``, each with its own seed derived from the run seed;
        ``schema``: the JSON schema the reply must match (:func:`ehrqa.llm.prompt.reply_schema`)."""
        if config.greedy:
            return [ChatRequest(tuple(messages), config, case.id, 0, prompt, schema)]
        return [
            ChatRequest(
                tuple(messages), config.for_sample(sample_seed(self.seed, case.id, k)), case.id, k, prompt, schema
            )
            for k in range(config.n)
        ]

    def complete(self, backend_name: str, requests: Sequence[ChatRequest], on_reply=None) -> list[Reply]:
        """Send requests to a named backend, counting calls and tokens (cached replies cost none)."""

        from ehrqa.progress import progress_bar

        def counted(i: int, reply: Reply) -> None:
            with self._lock:
                advance()
                if not reply.cached:
                    self.counts["calls"] += 1
                    self.counts["prompt_tokens"] += reply.prompt_tokens or 0
                    self.counts["completion_tokens"] += reply.completion_tokens or 0
            if on_reply is not None:
                on_reply(i, reply)

        ref = requests[0].prompt if requests else ""  # "st3-answer@1:<sha256>[:correction]"
        desc = f"{ref.split(':')[0] or backend_name} {'corrections' if ref.endswith(':correction') else 'replies'}"
        with progress_bar(len(requests), desc, unit="reply") as advance:
            return self.backend(backend_name).complete(list(requests), counted)
