"""Answer generation (ST3): case -> one grounded answer paragraph of at most 75 words.

The prompt (:mod:`ehrqa.llm.prompts`) gives the model the patient narrative, the clinician
question and the numbered note sentences; the reply is cleaned by :func:`postprocess_answer`.
With no arguments :func:`predict` uses the shipped SmolLM2-135M-Instruct, greedy, so the demo runs
anywhere; pass ``model=``/``adapter=`` for a trained generator or ``backend=`` for a server.

With ``run_dir`` every finished case is appended to ``answers.jsonl`` at once, so an interrupted
run started again with the same directory skips the cases it already has.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Sequence
from pathlib import Path

from ehrqa.data.case import Case
from ehrqa.errors import DataError
from ehrqa.llm.backend import ChatBackend, GenerationConfig
from ehrqa.llm.prompts import SYSTEM_PROMPT, case_messages
from ehrqa.progress import progress
from ehrqa.text import ANSWER_WORD_LIMIT, split_sentences, truncate_words, word_count

log = logging.getLogger(__name__)

DEFAULT_GENERATION = GenerationConfig(max_new_tokens=112)
ANSWERS_FILE = "answers.jsonl"
CONFIG_FILE = "config.json"
# Used only when a reply is empty after cleaning: the submission needs a non-empty answer.
EMPTY_REPLY_FALLBACK = "The provided notes do not contain enough information to answer this question."

_THINK_BLOCK = re.compile(r"<think>.*?</think>", re.S | re.I)
_SPECIAL_TOKEN = re.compile(r"<\|[^|<>]*\|>|</?s>")
# [3]  [3, 5]  [3-5]  [S3]  [sentence 3]  |3|  |3,5|
_CITATION = re.compile(
    r"\s*(?:\[\s*(?:sentences?\s*|s)?\d+(?:\s*(?:,|-|–|and)\s*(?:s)?\d+)*\s*\]|\|\s*\d+(?:\s*[,-]\s*\d+)*\s*\|)",
    re.I,
)
_LABEL = re.compile(r"^\s*(?:final\s+)?(?:answer|response)\s*:\s*", re.I)
_MARKDOWN = re.compile(r"\*\*|__|^\s*(?:[-*•]|\d+[.)])\s+", re.M)


def postprocess_answer(text: str, limit: int = ANSWER_WORD_LIMIT) -> str:
    """A model reply as an ST3 answer: no think blocks, citation markers or special tokens; one
    line; no repeated sentences; at most ``limit`` words, cut after the last whole sentence that
    fits where possible."""
    text = _THINK_BLOCK.sub(" ", text)
    if "</think>" in text:  # the opening tag was part of the prompt
        text = text.rsplit("</think>", 1)[1]
    if "<think>" in text:  # thinking that never finished is not an answer
        text = text.split("<think>", 1)[0]
    text = _SPECIAL_TOKEN.sub(" ", text)
    text = _CITATION.sub("", text)
    text = _MARKDOWN.sub("", text)
    text = _LABEL.sub("", text)
    text = " ".join(text.split())
    text = re.sub(r"\s+([.,;:!?])", r"\1", text)
    # Small models loop under greedy decoding; an answer never needs the same sentence twice.
    sentences = list(dict.fromkeys(split_sentences(text)))
    text = " ".join(sentences)
    if len(sentences) > 1 and not sentences[-1].rstrip("\"')").endswith((".", "!", "?")):
        text = " ".join(sentences[:-1])  # drop a last sentence cut off by the token limit
        sentences = sentences[:-1]
    if word_count(text) <= limit:
        return text
    kept: list[str] = []
    for sentence in sentences:
        if word_count(" ".join([*kept, sentence])) > limit:
            break
        kept.append(sentence)
    return " ".join(kept) if kept else truncate_words(text, limit)


def _read_finished(path: Path) -> dict[str, str]:
    """Answers already in a run directory. A last line cut short by an interruption is ignored."""
    done: dict[str, str] = {}
    if not path.exists():
        return done
    with path.open(encoding="utf-8") as f:
        for line in f:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict) and isinstance(record.get("answer"), str) and "case_id" in record:
                done[str(record["case_id"])] = record["answer"]
    return done


def _start_run_dir(run_dir: Path, config: dict) -> dict[str, str]:
    """Create or reopen a run directory; refuse to mix answers from different configurations."""
    run_dir.mkdir(parents=True, exist_ok=True)
    config_path = run_dir / CONFIG_FILE
    if config_path.exists():
        previous = json.loads(config_path.read_text(encoding="utf-8"))
        if previous != config:
            changed = sorted(k for k in set(previous) | set(config) if previous.get(k) != config.get(k))
            raise DataError(f"{run_dir}: made with a different configuration ({', '.join(changed)}); use a new run dir")
    else:
        tmp = config_path.with_name(CONFIG_FILE + ".tmp")
        tmp.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, config_path)
    return _read_finished(run_dir / ANSWERS_FILE)


def predict(
    cases: Sequence[Case],
    *,
    backend: ChatBackend | None = None,
    model: str | None = None,
    adapter: str | None = None,
    load_in_4bit: bool = False,
    batch_size: int = 4,
    generation: GenerationConfig | None = None,
    run_dir: str | os.PathLike | None = None,
) -> dict[str, str]:
    """ST3 answers for every case: ``{case_id: answer}``.

    ``backend`` (any :class:`~ehrqa.llm.backend.ChatBackend`) wins over ``model``/``adapter``,
    which build a local transformers backend; with neither, the shipped SmolLM2 is used.
    """
    generation = generation or DEFAULT_GENERATION
    own_backend = backend is None
    if backend is None:
        from ehrqa.llm.hf import HFChat

        backend = HFChat(model, adapter=adapter, load_in_4bit=load_in_4bit, batch_size=batch_size)
    try:
        return _predict(cases, backend, generation, Path(run_dir) if run_dir else None, batch_size)
    finally:
        if own_backend:
            backend.close()


def _predict(
    cases: Sequence[Case], backend: ChatBackend, generation: GenerationConfig, run_dir: Path | None, batch_size: int
) -> dict[str, str]:
    answers: dict[str, str] = {}
    out = None
    if run_dir is not None:
        config = {"producer": backend.description, "generation": generation.to_dict(), "system_prompt": SYSTEM_PROMPT}
        answers = _start_run_dir(run_dir, config)
        out = (run_dir / ANSWERS_FILE).open("a", encoding="utf-8")
    todo = [c for c in cases if c.id not in answers]
    if answers:
        log.info("resuming: %d of %d cases already answered", len(cases) - len(todo), len(cases))

    def answer_batch(batch: list[Case]) -> None:
        started = time.perf_counter()
        replies = backend.chat([case_messages(c) for c in batch], generation)
        seconds = (time.perf_counter() - started) / len(batch)
        for case, reply in zip(batch, replies, strict=True):
            answer = postprocess_answer(reply)
            if not answer:
                log.warning("case %s: the reply was empty after cleaning; using a fixed fallback", case.id)
                answer = EMPTY_REPLY_FALLBACK
            answers[case.id] = answer
            if out is not None:
                record = {"case_id": case.id, "answer": answer, "reply": reply, "seconds": round(seconds, 3)}
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
        if out is not None:
            out.flush()
            os.fsync(out.fileno())

    # Results are saved batch by batch; a batch is the unit lost when a run is interrupted.
    try:
        batch: list[Case] = []
        for case in progress(todo, desc="ST3 answers", total=len(todo)):
            batch.append(case)
            if len(batch) == max(1, batch_size) or case is todo[-1]:
                answer_batch(batch)
                batch = []
    finally:
        if out is not None:
            out.close()
    return {c.id: answers[c.id] for c in cases}
