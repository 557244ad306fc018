"""Chat-format training data for the answer generator, and its tokenisation.

A training example is a conversation whose last turn is the assistant's answer:

* stage 1: a :class:`~ehrqa.data.stage1.GroundedQA` (question + numbered context -> short answer);
* stage 2: an ArchEHR-QA case (narrative + clinician question + numbered note sentences ->
  ``clinician_answer_without_citations``).

Both are rendered by :mod:`ehrqa.llm.prompt` from the inference prompt file (``st3-answer@1`` unless
the recipe names another), so the model learns what it is asked at test time. :func:`tokenize_example` masks every
token before the assistant's reply (label -100), so the loss is computed on the answer only.
"""

from __future__ import annotations

import gzip
import logging
import shutil
from collections.abc import Sequence
from pathlib import Path

from ehrqa.data.case import Case
from ehrqa.data.stage1 import GroundedQA
from ehrqa.errors import DataError
from ehrqa.llm.prompt import case_slots, flat, load_prompt, numbered

Message = dict[str, str]
DEFAULT_PROMPT = "st3-answer@1"

log = logging.getLogger(__name__)

IGNORE_INDEX = -100  # label of tokens that carry no loss


def grounded_qa_conversation(example: GroundedQA, prompt: str = DEFAULT_PROMPT) -> list[Message]:
    slots = {"narrative": flat(example.question), "note": numbered(example.sentences)}
    return [*load_prompt(prompt).render(slots), {"role": "assistant", "content": example.answer}]


def case_conversation(case: Case, *, answer_words: int | None = None, prompt: str = DEFAULT_PROMPT) -> list[Message]:
    """The ST3 prompt of a case with its reference answer as the reply. ``answer_words`` shortens
    references over the limit to whole sentences (as :func:`ehrqa.tasks.postprocess.clean_answer` would)."""
    if not case.answer:
        raise DataError(f"case {case.id}: no clinician_answer_without_citations to train on")
    answer = case.answer
    if answer_words is not None:
        from ehrqa.tasks.postprocess import clean_answer

        answer = clean_answer(answer, answer_words)
    return [*load_prompt(prompt).render(case_slots(case.input_for(3))), {"role": "assistant", "content": answer}]


def tokenize_example(tokenizer, conversation: Sequence[Message], max_length: int) -> dict | None:
    """Token ids and labels for one conversation; labels are -100 outside the assistant reply.

    The prompt is rendered with the generation prompt exactly as at inference time
    (``enable_thinking=False``), so the reply tokens are what the model must produce after it.
    Returns ``None`` when the conversation does not fit in ``max_length`` tokens (cutting it would
    cut the answer).
    """
    prompt = tokenizer.apply_chat_template(
        list(conversation[:-1]), tokenize=False, add_generation_prompt=True, enable_thinking=False
    )
    full = tokenizer.apply_chat_template(list(conversation), tokenize=False, enable_thinking=False)
    if not full.startswith(prompt):
        raise ValueError("the chat template renders the prompt differently inside a full conversation")
    encoded = tokenizer(full, add_special_tokens=False, return_offsets_mapping=True)
    input_ids = encoded["input_ids"]
    if len(input_ids) > max_length:
        return None
    # A token belongs to the reply if it starts at or after the end of the rendered prompt.
    labels = [
        tid if start >= len(prompt) else IGNORE_INDEX
        for tid, (start, _) in zip(input_ids, encoded["offset_mapping"], strict=True)
    ]
    if all(label == IGNORE_INDEX for label in labels):
        return None
    return {"input_ids": input_ids, "labels": labels}


def tokenize_all(tokenizer, conversations: Sequence[Sequence[Message]], max_length: int, what: str) -> list[dict]:
    rows = [tokenize_example(tokenizer, c, max_length) for c in conversations]
    kept = [r for r in rows if r is not None]
    if len(kept) < len(rows):
        log.warning(
            "%s: %d of %d examples are longer than %d tokens and were left out",
            what,
            len(rows) - len(kept),
            len(rows),
            max_length,
        )
    if not kept:
        raise DataError(f"{what}: no training example fits in max_length={max_length} tokens")
    return kept


# ------------------------------------------------------------------ ArchEHR-QA sources

BUNDLED_DIR = Path(__file__).resolve().parent.parent / "resources" / "corpora" / "mediqa_dev"


def mediqa_dev_dir() -> Path:
    """The bundled mediqa_dev cases, decompressed once into the cache dir."""
    from ehrqa.cache import build_once, cache_dir

    def decompress(tmp: Path) -> None:
        for name in ("archehr-qa.xml", "archehr-qa_key.json"):
            with gzip.open(BUNDLED_DIR / f"{name}.gz", "rb") as src, open(tmp / name, "wb") as dst:
                shutil.copyfileobj(src, dst)

    return build_once(cache_dir() / "corpora" / "mediqa_dev", "archehr-qa_key.json", decompress)


def read_cases(path: str, case_ids: str | list[str] | None = None) -> list[Case]:
    """Cases from ``path`` (a dataset dir, ``sample`` or ``mediqa_dev``), optionally only ``case_ids``
    (the official range syntax, e.g. ``"1-20"``)."""
    from ehrqa.data.archehr import read_dataset
    from ehrqa.data.select import parse_case_ids, select_cases

    if path == "sample":
        cases = read_dataset()
    elif path == "mediqa_dev":
        cases = read_dataset(mediqa_dev_dir())
    else:
        cases = read_dataset(path)
    if not case_ids:
        return cases
    specs = [case_ids] if isinstance(case_ids, str) else [str(c) for c in case_ids]
    return select_cases(cases, parse_case_ids(specs, flag=f"{path}: cases"), flag=f"{path}: cases")
