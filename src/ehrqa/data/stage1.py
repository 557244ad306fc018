"""Stage-1 training data for the answer generator: grounded question answering.

Every example has the shape of an ArchEHR-QA case: a question, numbered context sentences (the
source passage mixed with distractor sentences from other documents) and a short answer grounded
in those sentences. Two sources:

* ``medquad`` (the open default): the bundled MedQuAD copy. The answer is the lead of the NIH
  answer passage (whole sentences, at most ``answer_words`` words); the context is the first
  ``context_sentences`` sentences of that passage plus ``distractors`` sentences from other topics.
* ``squad``: SQuAD-format clinical QA such as emrQA-MedSQuAD, as a user has it: a SQuAD JSON file
  (``{"data": [{"paragraphs": [{"context", "qas"}]}]}``), a JSON list / JSONL / parquet file of flat
  records (``question``, ``context``, ``answers`` as ``{"text": [...], "answer_start": [...]}`` or a
  list of ``{"text", "answer_start"}``), or a directory written by ``datasets.save_to_disk``. The
  answer is the context sentence holding the answer span (``target: sentence``) or the span itself
  (``target: span``); the context is a window of sentences around it plus distractors.

Examples are deduplicated on (question, answer) and sampled with the recipe's seed.
"""

from __future__ import annotations

import json
import logging
import os
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ehrqa.errors import DataError
from ehrqa.text import ANSWER_WORD_LIMIT, split_sentences, word_count

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GroundedQA:
    """One stage-1 example: question, numbered context sentences, grounded answer."""

    id: str
    question: str
    sentences: tuple[tuple[str, str], ...]  # (id, text), ids "1".."n"
    answer: str
    source: str


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def _mix(passage: list[str], distractors: list[str], rng: random.Random) -> tuple[tuple[str, str], ...]:
    """Insert distractor sentences at random places (the passage keeps its order); number from 1."""
    mixed = list(passage)
    for sentence in distractors:
        mixed.insert(rng.randint(0, len(mixed)), sentence)
    return tuple((str(i), s) for i, s in enumerate(mixed, 1))


def _usable(sentence: str) -> bool:
    return 3 <= word_count(sentence) <= 80


# ------------------------------------------------------------------ MedQuAD

# Passages that are tables or link lists rather than prose (GARD symptom tables).
_BOILERPLATE = ("Human Phenotype Ontology", "Approximate number of patients")


def medquad_examples(
    n: int,
    seed: int,
    *,
    context_sentences: int = 8,
    distractors: int = 4,
    answer_words: int = 60,
    path: str | os.PathLike | None = None,
) -> list[GroundedQA]:
    """Up to ``n`` grounded examples from MedQuAD (fewer if the corpus runs out, with a warning)."""
    from ehrqa.data.corpora import read_medquad

    records = list(read_medquad(path))
    rng = random.Random(seed)
    rng.shuffle(records)
    seen: set[tuple[str, str]] = set()
    chosen: list[tuple[dict, list[str], str]] = []
    for record in records:  # split sentences lazily: only as many records as needed
        if len(chosen) >= n:
            break
        if any(marker in record["answer"] for marker in _BOILERPLATE):
            continue
        # Only the head of the passage is used, so only the head is split. Questions repeated as
        # headings ("What are the signs of X?") are not answer text.
        head = " ".join(record["answer"].split()[:400])
        sentences = [s for s in split_sentences(head) if _usable(s) and not s.endswith("?")]
        answer = _lead(sentences, answer_words)
        if not answer or len(sentences) < 2 or not record.get("question"):
            continue
        key = (_norm(record["question"]), _norm(answer))
        if key in seen:
            continue
        seen.add(key)
        chosen.append((record, sentences[:context_sentences], answer))
    if len(chosen) < n:
        log.warning("MedQuAD gave %d distinct examples, fewer than the %d asked for", len(chosen), n)
    examples = []
    for record, passage, answer in chosen:
        others = [
            s
            for other, p, _ in rng.sample(chosen, min(len(chosen), distractors + 2))
            for s in p
            if other["focus"] != record["focus"]
        ]
        others = sorted(set(others) - set(passage))
        picked = rng.sample(others, min(distractors, len(others)))
        examples.append(
            GroundedQA(f"medquad-{record['qid']}", record["question"], _mix(passage, picked, rng), answer, "medquad")
        )
    return examples


def _lead(sentences: list[str], limit: int) -> str:
    """The first whole sentences of a passage that fit in ``limit`` words (empty if the first doesn't)."""
    kept: list[str] = []
    for sentence in sentences:
        if word_count(" ".join([*kept, sentence])) > limit:
            break
        kept.append(sentence)
    return " ".join(kept)


# ------------------------------------------------------------------ SQuAD format


def _flat_answers(answers: object) -> list[tuple[str, int | None]]:
    """``{"text": [...], "answer_start": [...]}`` or ``[{"text", "answer_start"}]`` -> [(text, start)]."""
    if isinstance(answers, dict):
        texts = list(answers.get("text") or [])
        starts = list(answers.get("answer_start") or [None] * len(texts))
        return [(str(t), None if s is None else int(s)) for t, s in zip(texts, starts, strict=False)]
    out = []
    for a in answers or []:
        if isinstance(a, dict) and a.get("text"):
            start = a.get("answer_start")
            out.append((str(a["text"]), None if start is None else int(start)))
    return out


def _from_article(article: dict) -> Iterator[dict]:
    for paragraph in article.get("paragraphs", []):
        for qa in paragraph.get("qas", []):
            yield {
                "id": qa.get("id"),
                "question": qa.get("question"),
                "context": paragraph.get("context"),
                "answers": qa.get("answers"),
            }


def _records(items: Iterable[dict]) -> Iterator[dict]:
    """Flat records from flat rows or nested SQuAD articles."""
    for item in items:
        if "paragraphs" in item:
            yield from _from_article(item)
        else:
            yield item


def read_squad(path: str | os.PathLike) -> list[dict]:
    """SQuAD-format QA as flat records ``{id, question, context, answers: [(text, start)]}``."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: not found (stage-1 SQuAD-format data)")
    if path.is_dir():
        from datasets import DatasetDict, load_from_disk

        data = load_from_disk(str(path))
        if isinstance(data, DatasetDict):
            data = data["train"] if "train" in data else next(iter(data.values()))
        rows: Iterable[dict] = iter(data)
    elif path.suffix == ".parquet":
        import pyarrow.parquet as pq

        rows = pq.read_table(path).to_pylist()
    elif path.suffix == ".jsonl":
        with path.open(encoding="utf-8") as f:
            rows = [json.loads(line) for line in f if line.strip()]
    else:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise DataError(f"{path.name}: not valid JSON ({e.msg} at line {e.lineno})") from None
        rows = data["data"] if isinstance(data, dict) and "data" in data else data
        if not isinstance(rows, list):
            raise DataError(f"{path.name}: expected SQuAD JSON ({{'data': [...]}}) or a list of records")
    out = []
    for k, record in enumerate(_records(rows)):
        answers = _flat_answers(record.get("answers"))
        if not record.get("question") or not record.get("context") or not answers:
            continue
        out.append(
            {
                "id": str(record.get("id") or k),
                "question": str(record["question"]),
                "context": str(record["context"]),
                "answers": answers,
            }
        )
    if not out:
        raise DataError(f"{path}: no usable question/context/answer records")
    return out


def _answer_sentence(sentences: list[str], context: str, text: str, start: int | None) -> int | None:
    """Index of the sentence holding the answer span: by character offset, else by text search."""
    offsets, pos = [], 0
    for sentence in sentences:
        found = context.find(sentence, pos)
        offsets.append(found if found >= 0 else pos)
        pos = (found if found >= 0 else pos) + len(sentence)
    if start is not None and 0 <= start < len(context):
        best = None
        for i, off in enumerate(offsets):
            if off <= start:
                best = i
        if best is not None and text.split()[0] in sentences[best]:
            return best
    for i, sentence in enumerate(sentences):
        if text in sentence:
            return i
    return None


def squad_examples(
    path: str | os.PathLike,
    n: int,
    seed: int,
    *,
    context_sentences: int = 10,
    distractors: int = 2,
    target: str = "sentence",
) -> list[GroundedQA]:
    """Up to ``n`` grounded examples from a SQuAD-format file or saved dataset."""
    if target not in ("sentence", "span"):
        raise DataError(f"stage-1 squad target must be 'sentence' or 'span', not {target!r}")
    records = read_squad(path)
    rng = random.Random(seed)
    rng.shuffle(records)
    split_cache: dict[str, list[str]] = {}  # many questions share one context
    seen: set[tuple[str, str]] = set()
    chosen: list[tuple[dict, list[str], str]] = []
    for record in records:
        if len(chosen) >= n:
            break
        context = record["context"]
        if context not in split_cache:
            split_cache[context] = split_sentences(context)
        sentences = split_cache[context]
        text, start = record["answers"][0]
        at = _answer_sentence(sentences, context, text.strip(), start) if text.strip() else None
        if at is None:
            continue
        answer = " ".join((sentences[at] if target == "sentence" else text).split())
        if word_count(answer) > ANSWER_WORD_LIMIT:
            continue
        key = (_norm(record["question"]), _norm(answer))
        if key in seen:
            continue
        seen.add(key)
        lo = max(0, min(at - context_sentences // 2, len(sentences) - context_sentences))
        chosen.append((record, sentences[lo : lo + context_sentences], answer))
    if len(chosen) < n:
        log.warning("%s gave %d distinct examples, fewer than the %d asked for", Path(path).name, len(chosen), n)
    examples = []
    for record, window, answer in chosen:
        pool = [
            s
            for other, w, _ in rng.sample(chosen, min(len(chosen), distractors + 2))
            for s in w
            if other["context"] != record["context"] and _usable(s)
        ]
        pool = sorted(set(pool) - set(window))
        picked = rng.sample(pool, min(distractors, len(pool)))
        examples.append(
            GroundedQA(f"squad-{record['id']}", record["question"], _mix(window, picked, rng), answer, "squad")
        )
    return examples


def stage1_examples(spec: dict, n: int, seed: int) -> list[GroundedQA]:
    """Examples for a recipe's ``stage1.data`` block: ``{source: medquad|squad, path?, ...options}``."""
    options = dict(spec)
    source = options.pop("source", "medquad")
    if source == "medquad":
        return medquad_examples(n, seed, **options)
    if source == "squad":
        if "path" not in options:
            raise DataError("stage-1 source 'squad' needs a path (JSON, JSONL, parquet or a saved dataset dir)")
        return squad_examples(options.pop("path"), n, seed, **options)
    raise DataError(f"unknown stage-1 source {source!r}: expected 'medquad' or 'squad'")
