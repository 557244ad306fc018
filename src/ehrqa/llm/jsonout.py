"""Reads JSON out of a model's reply and turns it into ST2 evidence or ST4 alignments, never raising.

A model asked for JSON answers with whatever it likes: code fences, prose before and after, a draft
and then a final version, a trailing comma, single quotes, Python's ``True``/``None``, unquoted
keys, a ``<think>...</think>`` block first, or a reply cut off by the token limit. :func:`extract_json`
finds every bracketed span, repairs what is safe to repair, and returns the last complete one that
the caller's shape test accepts (a span that stands on its own lines beats one inside a sentence).

On top of it, the two reply contracts of the LLM pipelines:

- :func:`parse_alignment` (ST4): ``{"1": [3, 5], "2": []}``, the official
  ``[{"answer_id": "1", "evidence_id": ["3"]}]`` list, either inside a wrapper such as
  ``{"alignments": ...}``; ids as ints or strings, ``"S3"``, ``"[3]"``, ``"sentence 3"``, ranges
  ``"3-5"`` and comma strings ``"2,5"``.
- :func:`parse_evidence` (ST2): ``[3, 5]``, ``{"evidence": [3, 5]}``, or per-sentence labels
  (``{"3": "essential"}``, ``[{"id": 3, "label": "essential"}]``, ``{"essential": [3], ...}``).

Both return a :class:`Parsed`: the value (only ids that exist in the case, in note order), the
problems found, how many named ids were unknown and dropped, and ``ok``: whether the reply could be
used at all. An unusable reply gets :func:`correction_message` as one more user turn; the message
names ids and shapes only, never text from the reply or the note.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ehrqa.llm.reply import strip_thinking

MAX_REPLY_CHARS = 100_000  # longer replies are cut (a runaway generation, not an answer)
SCAN_BUDGET = 2_000_000  # characters the bracket matcher may scan per reply


# ---------------------------------------------------------------- finding and repairing JSON


@dataclass
class Extracted:
    """What :func:`extract_json` found: the value, and which repairs it needed."""

    value: Any
    repairs: list[str] = field(default_factory=list)


def _match(text: str, start: int, single_quotes: bool, budget: list[int]) -> tuple[int | None, list[tuple[int, str]]]:
    """Where the bracket opened at ``start`` closes, honouring strings. ``(None, cuts)`` when the
    text ends first; ``cuts`` are (comma position, closers needed there), for repairing a cut-off reply.
    ``(None, [])`` for a mismatched closer. ``budget[0]`` (characters left to scan, shared by all
    calls for one reply) keeps a pathological reply from costing quadratic time."""
    pairs = {"{": "}", "[": "]"}
    stack: list[str] = []
    cuts: list[tuple[int, str]] = []
    quote = None
    i = start
    n = len(text)
    while i < n:
        budget[0] -= 1
        if budget[0] < 0:
            return None, []
        c = text[i]
        if quote:
            if c == "\\":
                i += 2
                continue
            if c == quote:
                quote = None
        elif c == '"' or (c == "'" and single_quotes):
            quote = c
        elif c in pairs:
            stack.append(pairs[c])
        elif c in "}]":
            if not stack or stack.pop() != c:
                return None, []
            if not stack:
                return i, []
        elif c == ",":
            cuts.append((i, "".join(reversed(stack))))
        i += 1
    return None, cuts


_BARE_STOP = set('{}[]:,"\n')
_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?")
_LITERALS = {"true": "true", "false": "false", "null": "null", "True": "true", "False": "false", "None": "null"}


def _read_string(text: str, i: int) -> tuple[str, int]:
    """The decoded string whose opening quote is at ``i``, and the index after its closing quote."""
    quote = text[i]
    j = i + 1
    parts: list[str] = []
    while j < len(text):
        c = text[j]
        if c == "\\" and j + 1 < len(text):
            parts.append(text[j : j + 2])
            j += 2
            continue
        if c == quote:
            break
        parts.append(c)
        j += 1
    raw = "".join(parts)
    if quote == "'":
        raw = raw.replace("\\'", "'")
        raw = re.sub(r'(?<!\\)"', '\\"', raw)
    try:
        value = json.loads(f'"{raw}"')
    except (json.JSONDecodeError, RecursionError):
        value = raw.replace("\\", "")
    return value, j + 1


def _relaxed(text: str) -> tuple[str, list[str]]:
    """Rewrite near-JSON as JSON: single-quoted strings, Python literals, bare keys and values,
    ``//`` comments, trailing and doubled commas. Returns the JSON text and the repairs made."""
    tokens: list[str] = []
    repairs: set[str] = set()
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c in "{}[]:,":
            tokens.append(c)
            i += 1
        elif c.isspace():
            i += 1
        elif c == "/" and text.startswith("//", i):
            end = text.find("\n", i)
            i = n if end < 0 else end
            repairs.add("comments")
        elif c in "\"'":
            value, i = _read_string(text, i)
            if c == "'":
                repairs.add("single quotes")
            tokens.append(json.dumps(value, ensure_ascii=False))
        else:
            j = i
            while j < n and text[j] not in _BARE_STOP:
                j += 1
            word = text[i:j].strip()
            i = max(j, i + 1)
            if _NUMBER.fullmatch(word):
                tokens.append(word)
            elif word in _LITERALS:
                tokens.append(_LITERALS[word])
                if word[0].isupper():
                    repairs.add("Python literals")
            else:
                tokens.append(json.dumps(word, ensure_ascii=False))
                repairs.add("unquoted words")
    cleaned: list[str] = []
    for k, tok in enumerate(tokens):
        if k + 1 < len(tokens) and tokens[k + 1] == ":" and not tok.startswith('"') and tok not in "{}[]:,":
            tok = json.dumps(tok)  # a bare number or literal used as a key
            repairs.add("unquoted words")
        if tok == ",":
            following = tokens[k + 1] if k + 1 < len(tokens) else "]"
            if following in ("]", "}", ",") or (cleaned and cleaned[-1] in ("[", "{")):
                repairs.add("trailing comma")
                continue
        cleaned.append(tok)
    return "".join(cleaned), sorted(repairs)


def _loads(text: str) -> tuple[Any, list[str]] | None:
    """Parse JSON, or near-JSON after :func:`_relaxed`; None when neither works."""
    try:
        return json.loads(text), []
    except (json.JSONDecodeError, RecursionError):
        pass
    try:
        fixed, repairs = _relaxed(text)
        return json.loads(fixed), repairs
    except (json.JSONDecodeError, RecursionError):
        return None


@dataclass
class _Candidate:
    value: Any
    repairs: list[str]
    start: int
    complete: bool
    block: bool  # the span stands on its own line(s), not inside a sentence


def _stands_alone(text: str, start: int, end: int) -> bool:
    line_start = text.rfind("\n", 0, start) + 1
    line_end = text.find("\n", end)
    line_end = len(text) if line_end < 0 else line_end
    return not text[line_start:start].strip(" \t`") and not text[end:line_end].strip(" \t`.;")


def _candidates(
    text: str, accept: Callable[[Any], bool], budget: list[int], offset: int = 0, depth: int = 0
) -> list[_Candidate]:
    """Every bracketed span of ``text`` that parses and that ``accept`` takes; spans inside an
    accepted span are not looked at, spans inside a rejected one are."""
    found: list[_Candidate] = []
    i, n = 0, len(text)
    truncated_seen = False
    while i < n and budget[0] > 0:
        if text[i] not in "{[":
            i += 1
            continue
        end, cuts = _match(text, i, True, budget)
        if end is None:  # an apostrophe in a bare word may have opened a "string"
            end, plain_cuts = _match(text, i, False, budget)
            cuts = cuts or plain_cuts
        if end is not None:
            parsed = _loads(text[i : end + 1])
            if parsed is not None and accept(parsed[0]):
                block = _stands_alone(text, i, end + 1)
                found.append(_Candidate(parsed[0], parsed[1], offset + i, True, block))
                i = end + 1
                continue
            if depth < 3:
                found.extend(_candidates(text[i + 1 : end], accept, budget, offset + i + 1, depth + 1))
            i = end + 1
            continue
        if cuts and not truncated_seen:  # the reply ends inside this span: keep its complete part
            truncated_seen = True
            for comma, closers in reversed(cuts[-3:]):
                parsed = _loads(text[i:comma] + closers)
                if parsed is not None and accept(parsed[0]):
                    found.append(_Candidate(parsed[0], [*parsed[1], "cut off"], offset + i, False, True))
                    return found  # everything after this point is inside the cut-off span
        i += 1
    return found


def extract_json(reply: str, accept: Callable[[Any], bool] | None = None) -> Extracted | None:
    """The JSON value in a model's reply that ``accept`` takes (default: any object or list).

    Think blocks are removed first. Among the spans found, a complete one beats a repaired cut-off
    one, one standing on its own line beats one inside a sentence, and a later one beats an earlier
    one (a model's final answer comes after its drafts). None when nothing fits.
    """
    if not isinstance(reply, str):
        return None
    text = strip_thinking(reply[:MAX_REPLY_CHARS])
    test = accept or (lambda value: isinstance(value, (dict, list)))

    def safe(value: Any) -> bool:
        try:
            return bool(test(value))
        except Exception:  # noqa: BLE001 - a shape test must not turn a bad reply into a crash
            return False

    found = _candidates(text, safe, [SCAN_BUDGET])
    if not found:
        return None
    best = max(found, key=lambda c: (c.complete, c.block, c.start))
    return Extracted(best.value, list(best.repairs))


# ---------------------------------------------------------------- ids


_PREFIX = r"(?:(?:note|answer)\s*)?(?:sentences?|sent\.?|ids?|no\.?|s|a|#)?\s*[#:]?\s*"
_ONE = re.compile(rf"[\[(]?\s*{_PREFIX}(\d+)\s*[\])]?", re.I)
_RANGE = re.compile(rf"[\[(]?\s*{_PREFIX}(\d+)\s*(?:-|–|—|to|\.\.)\s*{_PREFIX}(\d+)\s*[\])]?", re.I)
_SEPARATORS = re.compile(r"\s*(?:,|;|&|\band\b|\+)\s*", re.I)
_EMPTY = {"", "none", "null", "n/a", "na", "-", "nil", "[]", "no evidence", "unsupported", "not supported"}
_MAX_RANGE = 1000


@dataclass
class _Ids:
    """Ids named by one value: single ids and ranges as written, and how many pieces were unreadable."""

    single: list[str] = field(default_factory=list)
    ranges: list[tuple[int, int]] = field(default_factory=list)
    unreadable: int = 0

    def add(self, other: _Ids) -> None:
        self.single += other.single
        self.ranges += other.ranges
        self.unreadable += other.unreadable


def _id_piece(piece: str, ids: _Ids) -> bool:
    """Add one id or range written as text; False when it is neither."""
    if m := _ONE.fullmatch(piece):
        ids.single.append(m.group(1))
        return True
    if (m := _RANGE.fullmatch(piece)) is not None:
        lo, hi = sorted((int(m.group(1)), int(m.group(2))))
        if hi - lo <= _MAX_RANGE:
            ids.ranges.append((lo, hi))
            return True
    return False


def _ids_in_string(text: str) -> _Ids:
    ids = _Ids()
    text = text.strip()
    if text.lower().strip(" .") in _EMPTY:
        return ids
    if text.startswith("[") and text.endswith("]") and "," in text:
        text = text[1:-1]
    for piece in _SEPARATORS.split(text):
        if not piece or _id_piece(piece, ids):
            continue
        words = piece.split()
        if len(words) > 1 and all(_id_piece(w, ids) for w in words):
            continue
        ids.unreadable += 1
    return ids


def _id_scalar(value: Any) -> str | None:
    """An id written as a single scalar (``3``, ``"3"``, ``"S3"``, ``"[3]"``), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, str) and (m := _ONE.fullmatch(value.strip())):
        return m.group(1)
    return None


_SENTENCE_ID_KEYS = ("id", "sentence_id", "evidence_id", "note_id", "note_sentence_id", "sid", "sentence")


def _ids_in(value: Any, depth: int = 0) -> _Ids | None:
    """The ids an evidence value names, or None if it is not one (a bool, prose, an odd object)."""
    if value is None:
        return _Ids()
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        one = _id_scalar(value)
        return _Ids(single=[one]) if one is not None else None
    if isinstance(value, str):
        ids = _ids_in_string(value)
        return None if ids.unreadable and not ids.single and not ids.ranges else ids
    if depth > 3:
        return None
    if isinstance(value, list):
        ids = _Ids()
        for item in value:
            part = _ids_in(item, depth + 1)
            if part is None:
                ids.unreadable += 1
            else:
                ids.add(part)
        return None if value and ids.unreadable == len(value) else ids
    if isinstance(value, dict):
        key = _find_key(value, _EVIDENCE_KEYS) or _find_key(value, _SENTENCE_ID_KEYS)
        return _ids_in(value[key], depth + 1) if key is not None else None
    return None


class _Resolver:
    """Turns ids as written into the case's own ids (in the case's order), counting unknown ones."""

    def __init__(self, known: Sequence[str]) -> None:
        self.known = [str(k) for k in known]
        self.position = {k: i for i, k in enumerate(self.known)}
        self.by_number = {}
        for k in self.known:
            if k.isdigit():
                self.by_number.setdefault(int(k), k)
        self.unknown: list[str] = []

    def one(self, written: str) -> str | None:
        if written in self.position:
            return written
        if written.isdigit() and int(written) in self.by_number:
            return self.by_number[int(written)]
        return None

    def resolve(self, ids: _Ids) -> list[str]:
        out: set[str] = set()
        for written in ids.single:
            found = self.one(written)
            if found is None:
                self.unknown.append(written)
            else:
                out.add(found)
        for lo, hi in ids.ranges:
            for number in range(lo, hi + 1):
                if number in self.by_number:
                    out.add(self.by_number[number])
                else:
                    self.unknown.append(str(number))
        return sorted(out, key=self.position.__getitem__)


def _find_key(obj: dict, names: Iterable[str]) -> str | None:
    """The first key of ``obj`` that matches one of ``names`` (case, spaces and dashes ignored)."""
    normal = {re.sub(r"[\s\-]+", "_", str(k).strip().lower()): k for k in obj}
    for name in names:
        if name in normal:
            return normal[name]
    return None


def _compact(ids: Sequence[str]) -> str:
    """``["1", "2", "3", "5"]`` -> ``"1-3, 5"`` (ids only; used in messages)."""
    parts: list[str] = []
    run: list[int] = []
    numbers = [int(i) for i in ids if str(i).isdigit()]
    others = [str(i) for i in ids if not str(i).isdigit()]
    for number in numbers:
        if run and number == run[-1] + 1:
            run.append(number)
            continue
        if run:
            parts.append(f"{run[0]}-{run[-1]}" if len(run) > 2 else ", ".join(map(str, run)))
        run = [number]
    if run:
        parts.append(f"{run[0]}-{run[-1]}" if len(run) > 2 else ", ".join(map(str, run)))
    return ", ".join(parts + others) or "none"


def _listed(ids: Sequence[str], limit: int = 12) -> str:
    """Short ids (digits, at most 8 characters) for a message; longer strings are not ids and are never quoted."""
    safe = [i for i in dict.fromkeys(ids) if len(i) <= 8 and i.isdigit()]
    text = ", ".join(safe[:limit])
    return text + (f" and {len(safe) - limit} more" if len(safe) > limit else "")


# ---------------------------------------------------------------- results


@dataclass
class Parsed:
    """A reply read against a contract.

    ``value`` holds only ids of the case, in note order (all-empty when nothing could be read);
    ``problems`` are short sentences naming ids and shapes, never reply or note text; ``dropped``
    counts the ids the reply named that the case does not have; ``ok`` says whether the reply could
    be used (a JSON value of the expected shape naming at least one real id, or naming none at all).
    """

    value: Any
    problems: list[str] = field(default_factory=list)
    dropped: int = 0
    ok: bool = True
    kind: str = ""  # "alignment" or "evidence"
    repairs: list[str] = field(default_factory=list)  # syntax the parser had to fix
    hint: str = ""  # the valid ids, for the correction turn

    def to_dict(self) -> dict:
        """For run records."""
        return {"ok": self.ok, "problems": list(self.problems), "dropped": self.dropped, "repairs": list(self.repairs)}


# ---------------------------------------------------------------- ST4 alignment


_ANSWER_KEYS = ("answer_id", "answer_sentence_id", "answer_sentence", "answer", "answer_index", "aid", "id")
_EVIDENCE_KEYS = (
    "evidence_id",
    "evidence_ids",
    "evidence",
    "citations",
    "citation",
    "cited",
    "note_sentence_ids",
    "note_ids",
    "note_sentences",
    "supporting_sentences",
    "supporting_ids",
    "support",
    "sentences",
    "sentence_ids",
    "ids",
    "links",
)
_WRAPPER_KEYS = (
    "alignments",
    "alignment",
    "links",
    "answers",
    "answer_sentences",
    "citations",
    "prediction",
    "predictions",
    "result",
    "results",
    "output",
    "data",
)


def _links(obj: Any, depth: int = 0) -> dict[str, _Ids] | None:
    """Answer id as written -> the evidence it names, or None when ``obj`` has no alignment shape."""
    if depth > 4:
        return None
    if isinstance(obj, dict):
        answer_key = _find_key(obj, _ANSWER_KEYS)
        evidence_key = _find_key(obj, _EVIDENCE_KEYS)
        if answer_key is not None and evidence_key is not None and answer_key != evidence_key:
            aid, ids = _id_scalar(obj[answer_key]), _ids_in(obj[evidence_key])
            if aid is None:
                return None
            return {aid: ids if ids is not None else _Ids(unreadable=1)}
        mapping: dict[str, _Ids] = {}
        usable = False
        for key, value in obj.items():
            aid = _id_scalar(key)
            if aid is None:
                continue
            ids = _ids_in(value)
            usable = usable or ids is not None
            mapping.setdefault(aid, _Ids()).add(ids if ids is not None else _Ids(unreadable=1))
        if usable:
            return mapping
        wrappers = [k for k in (_find_key(obj, [w]) for w in _WRAPPER_KEYS) if k is not None]
        for key in wrappers + [k for k in obj if k not in wrappers]:
            if isinstance(obj[key], (dict, list)) and (inner := _links(obj[key], depth + 1)) is not None:
                return inner
        return None
    if isinstance(obj, list):
        merged: dict[str, _Ids] = {}
        fitted = 0
        for item in obj:
            part = None
            if isinstance(item, list) and len(item) == 2 and _id_scalar(item[0]) is not None:
                ids = _ids_in(item[1])
                part = {_id_scalar(item[0]): ids if ids is not None else _Ids(unreadable=1)}
            elif isinstance(item, dict):
                part = _links(item, depth + 1)
            if part is None:
                continue
            fitted += 1
            for aid, ids in part.items():
                merged.setdefault(aid, _Ids()).add(ids)
        return merged if fitted else None
    return None


def _alignment_shape(obj: Any) -> bool:
    return _links(obj) is not None


def parse_alignment(reply: str | None, answer_ids: Sequence[str], note_ids: Sequence[str]) -> Parsed:
    """Read a ST4 reply: ``{answer id: [note ids in note order]}`` for every answer id of the case.

    Unknown answer or note ids are dropped and counted; an answer id the reply leaves out gets an
    empty list (unsupported) and a problem line. ``ok`` is False when no JSON of an alignment shape
    is found, or when every id it names is unknown; the value is then all-empty.
    """
    answer_ids = [str(a) for a in answer_ids]
    hint = f"answer sentence ids: {_compact(answer_ids)}; note sentence ids: {_compact([str(n) for n in note_ids])}"
    empty = {aid: [] for aid in answer_ids}
    found = extract_json(reply, _alignment_shape) if isinstance(reply, str) else None
    if found is None:
        problem = "the reply was empty" if not (reply or "").strip() else "no JSON alignment object was found"
        return Parsed(empty, [problem], 0, False, "alignment", [], hint)
    links = _links(found.value) or {}
    answers, notes = _Resolver(answer_ids), _Resolver(note_ids)
    value = dict(empty)
    unreadable = 0
    named_notes = 0
    for written, ids in links.items():
        aid = answers.one(written)
        unreadable += ids.unreadable
        if aid is None:
            answers.unknown.append(written)
            continue
        resolved = notes.resolve(ids)
        named_notes += len(ids.single) + len(ids.ranges)
        value[aid] = sorted(set(value[aid]) | set(resolved), key=notes.position.__getitem__)
    problems: list[str] = []
    if answers.unknown:
        problems.append(f"unknown answer sentence ids dropped: {_listed(answers.unknown) or 'non-numeric ids'}")
    if notes.unknown:
        problems.append(f"unknown note sentence ids dropped: {_listed(notes.unknown) or 'non-numeric ids'}")
    if unreadable:
        problems.append(f"{unreadable} evidence value(s) were not sentence ids")
    answered = {answers.one(w) for w in links} - {None}
    missing = [a for a in answer_ids if a not in answered]
    if missing:
        problems.append(f"answer sentence(s) {_compact(missing)} not in the reply (taken as unsupported)")
    if "cut off" in found.repairs:
        problems.append("the reply was cut off; only its complete part was read")
    dropped = len(answers.unknown) + len(notes.unknown) + unreadable
    ok = True
    if not answered or (named_notes and not any(value.values()) and notes.unknown):
        ok = False
        problems.append("none of the ids in the reply belong to this case")
        value = dict(empty)
    return Parsed(value, problems, dropped, ok, "alignment", found.repairs, hint)


# ---------------------------------------------------------------- ST2 evidence


_LABEL_KEYS = ("label", "relevance", "class", "category", "classification", "judgement", "judgment", "decision")
_LIST_KEYS = (
    "evidence",
    "essential",
    "essential_ids",
    "evidence_ids",
    "essential_sentences",
    "relevant",
    "relevant_ids",
    "ids",
    "sentence_ids",
    "sentences",
    "selected",
    "answer",
    "result",
    "output",
)
_LABEL_WORDS = {
    "essential": "essential",
    "supplementary": "supplementary",
    "supplemental": "supplementary",
    "supporting": "supplementary",
    "not-relevant": "not-relevant",
    "not_relevant": "not-relevant",
    "notrelevant": "not-relevant",
    "non-relevant": "not-relevant",
    "irrelevant": "not-relevant",
    "none": "not-relevant",
}


def _label(value: Any) -> str | None:
    """``"Essential"``, ``"not relevant"``, ``True`` ... -> one of the three relevance labels, else None."""
    if isinstance(value, bool):
        return "essential" if value else "not-relevant"
    if not isinstance(value, str):
        return None
    word = re.sub(r"[\s_]+", "-", value.strip().strip(".").lower())
    return _LABEL_WORDS.get(word)


@dataclass
class _Evidence:
    ids: _Ids = field(default_factory=_Ids)
    unlabelled: int = 0  # per-sentence labels that were none of the three


def _evidence(obj: Any, keep: tuple[str, ...], depth: int = 0) -> _Evidence | None:
    """The ids a ST2 reply keeps, or None when ``obj`` has no evidence shape."""
    if depth > 4:
        return None
    if isinstance(obj, list):
        if all(not isinstance(item, (dict, list)) for item in obj):
            ids = _ids_in(obj)
            return _Evidence(ids) if ids is not None else None
        out = _Evidence()
        fitted = 0
        for item in obj:
            if isinstance(item, dict):
                id_key, label_key = _find_key(item, _SENTENCE_ID_KEYS), _find_key(item, _LABEL_KEYS)
                if id_key is not None and (one := _id_scalar(item[id_key])) is not None:
                    fitted += 1
                    label = _label(item[label_key]) if label_key is not None else "essential"
                    if label is None:
                        out.unlabelled += 1
                    elif label in keep or label_key is None:
                        out.ids.single.append(one)
                    continue
            part = _evidence(item, keep, depth + 1)
            if part is not None:
                fitted += 1
                out.ids.add(part.ids)
                out.unlabelled += part.unlabelled
        return out if fitted else None
    if not isinstance(obj, dict):
        return None
    # {"essential": [...], "supplementary": [...]}
    by_label = {_label(k): v for k, v in obj.items() if _label(k) and isinstance(v, (list, str, int))}
    if by_label:
        out = _Evidence()
        for label, value in by_label.items():
            ids = _ids_in(value)
            if ids is None:
                return None
            if label in keep:
                out.ids.add(ids)
        return out
    # {"3": "essential", "4": {"label": "not-relevant"}}
    labelled = False
    out = _Evidence()
    for key, value in obj.items():
        sid = _id_scalar(key)
        if sid is None:
            continue
        if isinstance(value, dict) and (label_key := _find_key(value, _LABEL_KEYS)) is not None:
            value = value[label_key]
        label = _label(value)
        if label is None:
            if isinstance(value, str):
                out.unlabelled += 1
                labelled = True
            continue
        labelled = True
        if label in keep:
            out.ids.single.append(sid)
    if labelled:
        return out
    # {"evidence": [...]}, {"reasoning": "...", "ids": [...]}, or a wrapper
    key = _find_key(obj, _LIST_KEYS)
    candidates = [key] if key is not None else []
    candidates += [k for k, v in obj.items() if k != key and isinstance(v, (list, dict))]
    for k in candidates:
        if (inner := _evidence(obj[k], keep, depth + 1)) is not None:
            return inner
        if isinstance(obj[k], str) and (ids := _ids_in(obj[k])) is not None:
            return _Evidence(ids)
    return None


def parse_evidence(reply: str | None, note_ids: Sequence[str], keep_labels: Sequence[str] = ("essential",)) -> Parsed:
    """Read a ST2 reply: the kept note sentence ids, in note order.

    A list of ids (or an object holding one) keeps every id in it. Per-sentence labels keep the
    sentences whose label is in ``keep_labels``: by default only ``essential``, because the ST2
    leaderboard is strict F1 against the essential sentences and a ``supplementary`` prediction
    counts as a false positive there; pass ``("essential", "supplementary")`` to keep both.
    A reply of bare ids without brackets (``3, 5``) is read too. ``ok`` is False when nothing of
    an evidence shape is found or every id named is unknown.
    """
    keep = tuple(lab for lab in (_label(k) for k in keep_labels) if lab)
    hint = f"note sentence ids: {_compact([str(n) for n in note_ids])}"
    found = extract_json(reply, lambda obj: _evidence(obj, keep) is not None) if isinstance(reply, str) else None
    repairs: list[str] = []
    if found is not None:
        evidence = _evidence(found.value, keep) or _Evidence()
        repairs = found.repairs
    else:
        text = strip_thinking(reply or "").strip().strip("`").strip().strip("\"'").strip()
        ids = _ids_in_string(text) if text and len(text) < 2000 else None
        if ids is None or ids.unreadable or not (ids.single or ids.ranges or text.lower() in _EMPTY):
            problem = "the reply was empty" if not (reply or "").strip() else "no JSON list of sentence ids was found"
            return Parsed([], [problem], 0, False, "evidence", [], hint)
        evidence = _Evidence(ids)
        repairs = ["no JSON brackets"]
    notes = _Resolver(note_ids)
    value = notes.resolve(evidence.ids)
    problems: list[str] = []
    if notes.unknown:
        problems.append(f"unknown note sentence ids dropped: {_listed(notes.unknown) or 'non-numeric ids'}")
    if evidence.ids.unreadable:
        problems.append(f"{evidence.ids.unreadable} value(s) were not sentence ids")
    if evidence.unlabelled:
        problems.append(f"{evidence.unlabelled} sentence label(s) were not essential, supplementary or not-relevant")
    if "cut off" in repairs:
        problems.append("the reply was cut off; only its complete part was read")
    dropped = len(notes.unknown) + evidence.ids.unreadable
    ok = True
    if notes.unknown and not value:
        ok = False
        problems.append("none of the ids in the reply belong to this case")
    return Parsed(value, problems, dropped, ok, "evidence", repairs, hint)


# ---------------------------------------------------------------- the correction turn


_SHAPES = {
    "alignment": "a JSON object mapping every answer sentence id to a list of note sentence ids, "
    'e.g. {"1": ["3", "5"], "2": []} (an empty list when nothing in the note supports that sentence)',
    "evidence": 'a JSON list of the ids of the essential note sentences, e.g. ["3", "5"]',
}


def correction_message(parsed: Parsed) -> str:
    """One short user turn asking the model to fix its reply: the problems found, the expected
    shape and the valid ids. It quotes nothing but ids, so no note or reply text is repeated."""
    problems = "; ".join(parsed.problems) or "it did not have the expected form"
    shape = _SHAPES.get(parsed.kind, "the JSON value asked for")
    ids = f" Valid {parsed.hint}." if parsed.hint else ""
    return f"Your reply could not be used as it is: {problems}. Reply again with only {shape}, and nothing else.{ids}"
