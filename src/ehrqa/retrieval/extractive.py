"""The grounded extractive ST3 answer: note sentences chosen by the ST2 model, grounded by construction.

Contract::

    extractive_answer(case, ranked_or_selected_ids, word_limit=75)
        -> (answer_text, [(answer_sentence_text, [note sentence ids]), ...])
    extractive_predict(cases, model=None) -> {case_id: (answer_text, cited_sentences)}

:func:`extractive_answer` walks the given ids best first, drops headers and fragments (fewer than
four words), trims frames that carry nothing ("The patient reports that ...", "She states that
..."), keeps a sentence only while the answer stays within ``word_limit`` words (so it ends on a
sentence boundary), and writes the kept sentences in note order, each citing the note sentence
it came from. :func:`extractive_predict` ranks every case's sentences with the aligner's ST2 model
(:mod:`ehrqa.retrieval.aligner`): the selected sentences first, then the rest by score, so a
sparse selection is filled up to the word limit with the next best evidence. The model's
optional ``extractive`` section (:class:`ExtractiveSettings`, chosen on the training sources by
:func:`ehrqa.train.aligner.choose_extractive` in ``ehrqa train aligner --learned``) can switch the
filling off and rank by the ST2 score blended with relative BM25. Only the official ST3 input is
read (question, narrative, note).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from ehrqa.data.case import Case
from ehrqa.retrieval.features import is_fragment
from ehrqa.text import ANSWER_WORD_LIMIT

_SUBJECT = r"(?:the patient|patient|pt|he|she|they|the mother|the father|mom|dad|his (?:mother|wife)|her husband)"
_VERB = (
    r"(?:reports?|reported|states?|stated|notes?|noted|says?|said|endorses?|endorsed|describes?|described|mentions?)"
)
_FRAMES = [
    re.compile(rf"^{_SUBJECT} {_VERB} (?:that )?", re.IGNORECASE),
    re.compile(r"^(?:it (?:is|was) (?:noted|reported) that|of note,|per (?:the )?patient,|per report,)\s*", re.I),
]


@dataclass(frozen=True)
class ExtractiveSettings:
    """The ``extractive`` section of ``aligner.json``: fill the answer with the next best sentences,
    and rank by the ST2 score blended with relative BM25 (its weight; None: the ST2 score alone)."""

    fill: bool = True
    bm25_blend: float | None = None
    chosen_on: list[str] = field(default_factory=list)  # the sources the two were chosen on


def trim_frame(text: str) -> str:
    """The sentence without a leading reporting frame, re-capitalised; unchanged if none applies."""
    text = " ".join(text.split())
    for frame in _FRAMES:
        trimmed = frame.sub("", text, count=1)
        if trimmed != text and len(trimmed.split()) >= 3:
            return trimmed[0].upper() + trimmed[1:]
    return text


def extractive_answer(
    case: Case, ranked_or_selected_ids: Sequence[str], *, word_limit: int = ANSWER_WORD_LIMIT
) -> tuple[str, list[tuple[str, list[str]]]]:
    """The answer text and its sentences with their citations (see the module docstring)."""
    position = {s.id: j for j, s in enumerate(case.sentences)}
    kept: list[tuple[int, str, str]] = []  # (note position, text, sentence id)
    words = 0
    for sid in dict.fromkeys(ranked_or_selected_ids):
        if sid not in position:
            continue
        original = case.sentences[position[sid]].text
        if is_fragment(original):
            continue
        text = trim_frame(original)
        n = len(text.split())
        if words + n > word_limit:
            continue
        kept.append((position[sid], text, sid))
        words += n
        if words >= word_limit - 3:
            break
    if not kept:  # every candidate was a fragment or too long: the best one, cut to the limit
        for sid in ranked_or_selected_ids:
            if sid in position and case.sentences[position[sid]].text.strip():
                text = " ".join(trim_frame(case.sentences[position[sid]].text).split()[:word_limit])
                kept = [(position[sid], text, sid)]
                break
    kept.sort()
    sentences = [(text, [sid]) for _, text, sid in kept]
    return " ".join(text for text, _ in sentences), sentences


def ranked_ids(scores, selected: Sequence[str], case: Case) -> list[str]:
    """The selected ids best first, then every other sentence by descending score."""
    order = sorted(range(len(case.sentences)), key=lambda j: -float(scores[j]))
    chosen = set(selected)
    first = [case.sentences[j].id for j in order if case.sentences[j].id in chosen]
    return first + [case.sentences[j].id for j in order if case.sentences[j].id not in chosen]


def extractive_predict(
    cases: Sequence[Case], model=None, *, word_limit: int = ANSWER_WORD_LIMIT
) -> dict[str, tuple[str, list[tuple[str, list[str]]]]]:
    """Case id -> (answer text, cited answer sentences), ranked by the ST2 model (``model``: an
    AlignerModel, a model directory, or None for the shipped default)."""
    from ehrqa.retrieval.aligner import load_model

    aligner = load_model(model)
    settings = aligner.config.get("extractive") or {}
    fill, weight = bool(settings.get("fill", True)), settings.get("bm25_blend")
    cases = [c.input_for(3) for c in cases]
    scores = aligner.sentence_scores(2, cases)
    selected = aligner.select(2, cases, scores)
    if weight is not None:
        from ehrqa.retrieval.features import feature_tensors
        from ehrqa.retrieval.relevance import blend_scores

        bm25 = feature_tensors(2, cases, names=("bm25",))
        scores = [blend_scores(s, b[..., 0], float(weight)) for s, b in zip(scores, bm25, strict=True)]
    out = {}
    for case, s, sel in zip(cases, scores, selected, strict=True):
        order = ranked_ids(s[0], sel[0], case)  # the selected sentences first
        out[case.id] = extractive_answer(case, order if fill else order[: len(sel[0])], word_limit=word_limit)
    return out
