"""Official submission files: ``submission.json`` (a list of ``{"case_id", "prediction"}``)
and the zip that holds exactly that file.

``check_submission`` applies the official loading rules, so the validator, the
scorer and our own writers agree on what a valid submission is.
"""

from __future__ import annotations

import io
import json
import logging
import os
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from ehrqa.data.case import Case
from ehrqa.errors import DataError
from ehrqa.text import ANSWER_WORD_LIMIT, QUESTION_WORD_LIMIT, truncate_words, word_count

log = logging.getLogger(__name__)

SUBTASKS = (1, 2, 3, 4)
WORD_LIMITS = {1: QUESTION_WORD_LIMIT, 3: ANSWER_WORD_LIMIT}
SUBMISSION_NAME = "submission.json"


def links_from_prediction(prediction: Iterable) -> dict[str, list[str]]:
    """An ST4 prediction (``[{"answer_id", "evidence_id": [...]}]``) as ``{answer id: [note ids]}``, repeated
    answer objects unioned as the official scorer does (anything but such an object is skipped)."""
    links: dict[str, list[str]] = {}
    for item in prediction or ():
        if isinstance(item, Mapping):
            bucket = links.setdefault(str(item.get("answer_id")), [])
            bucket.extend(str(sid) for sid in item.get("evidence_id") or () if str(sid) not in bucket)
    return links


def prediction_from_links(links: Mapping[str, Sequence[str]], answer_ids: Sequence[str] | None = None) -> list[dict]:
    """``{answer id: [note ids]}`` as an ST4 prediction: one object per answer id of ``answer_ids``
    (default: the mapping's), in that order, with no links where the mapping has none."""
    order = links if answer_ids is None else answer_ids
    return [{"answer_id": str(aid), "evidence_id": [str(s) for s in links.get(aid, ())]} for aid in order]


def link_pairs(prediction: Iterable) -> set[tuple[str, str]]:
    """An ST4 prediction as (answer sentence id, note sentence id) pairs, the unit ST4 is scored in."""
    return {(aid, sid) for aid, sids in links_from_prediction(prediction).items() for sid in sids}


def _subtask(subtask: int | str) -> int:
    try:
        n = int(subtask)
    except (TypeError, ValueError):
        n = 0
    if n not in SUBTASKS:
        raise DataError(f"unknown subtask {subtask!r}: expected 1, 2, 3 or 4")
    return n


def build_submission(subtask: int, predictions: Mapping[str, object], cases: Sequence[Case]) -> list[dict]:
    """Entries in case order for every case, validated; ST1/ST3 texts over the
    word limit are truncated with a warning."""
    subtask = _subtask(subtask)
    entries = []
    for case in cases:
        if case.id not in predictions:
            raise DataError(f"submission: no prediction for case {case.id}")
        pred = predictions[case.id]
        if subtask in WORD_LIMITS and isinstance(pred, str):
            limit = WORD_LIMITS[subtask]
            if word_count(pred) > limit:
                log.warning("case %s: prediction has %d words, truncated to %d", case.id, word_count(pred), limit)
            pred = truncate_words(pred, limit)
        entries.append({"case_id": case.id, "prediction": pred})
    check_submission(entries, subtask, cases)
    return entries


def write_submission(entries: list[dict], path: str | os.PathLike, *, zip_too: bool = True) -> Path:
    """Write ``submission.json`` atomically (and ``submission.zip`` beside it). Returns the json path."""
    from ehrqa.io import atomic_write_bytes, atomic_write_json

    path = atomic_write_json(path, entries)
    if zip_too:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
            z.write(path, SUBMISSION_NAME)
        atomic_write_bytes(path.with_suffix(".zip"), buffer.getvalue())
    return path


def read_submission(path: str | os.PathLike) -> list:
    """Load ``submission.json`` or a zip holding exactly one ``submission.json``."""
    path = Path(path)
    if path.suffix == ".zip":
        try:
            with zipfile.ZipFile(path) as z:
                names = [n for n in z.namelist() if not n.endswith("/")]
                if names != [SUBMISSION_NAME]:
                    raise DataError(f"{path.name}: a submission zip must hold exactly {SUBMISSION_NAME}, found {names}")
                raw = z.read(SUBMISSION_NAME)
        except FileNotFoundError:
            raise DataError(f"{path}: file not found") from None
        except zipfile.BadZipFile as e:
            raise DataError(f"{path.name}: not a valid zip file ({e})") from None
        except OSError as e:
            raise DataError(f"{path}: {_os_reason(e)}") from None
    else:
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            raise DataError(f"{path}: file not found") from None
        except OSError as e:
            raise DataError(f"{path}: {_os_reason(e)}") from None
    if not raw.strip():
        raise DataError(f"{path.name}: file is empty")
    try:
        data = json.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise DataError(f"{path.name}: not UTF-8") from None
    except json.JSONDecodeError as e:
        raise DataError(f"{path.name}: not valid JSON ({e.msg} at line {e.lineno} column {e.colno})") from None
    if not isinstance(data, list):
        raise DataError(f"{path.name}: expected a JSON list of {{case_id, prediction}} objects")
    return data


def _os_reason(e: OSError) -> str:
    if isinstance(e, IsADirectoryError):
        return "is a directory, expected a file"
    return f"cannot read ({e.strerror or e})"


def over_word_limit(entries: list, subtask: int) -> list[tuple[str, int]]:
    """``(case_id, words)`` for ST1/ST3 predictions longer than the limit, which the scorer truncates silently.

    Expects entries that :func:`check_submission` accepted; empty for ST2/ST4.
    """
    limit = WORD_LIMITS.get(_subtask(subtask))
    if limit is None:
        return []
    counts = [(e["case_id"], word_count(e["prediction"])) for e in entries]
    return [(case_id, n) for case_id, n in counts if n > limit]


def check_submission(entries: list, subtask: int, cases: Sequence[Case], name: str = "submission") -> dict[str, object]:
    """Validate entries with the official rules; return ``{case_id: normalised prediction}``.

    ST1/ST3 texts are stripped and truncated to the word limit; ST2 ids as a list;
    ST4 links as ``{answer_id: [evidence ids]}`` with repeated answer objects unioned.
    Cases are needed for their ids, sentence ids and answer sentence ids.
    """
    subtask = _subtask(subtask)
    by_id = {c.id: c for c in cases}
    out: dict[str, object] = {}
    for n, entry in enumerate(entries, 1):
        if not isinstance(entry, dict) or "case_id" not in entry or "prediction" not in entry:
            raise DataError(f"{name}: entry #{n} must be an object with case_id and prediction")
        cid = entry["case_id"]
        if not isinstance(cid, str):
            raise DataError(f"{name}: entry #{n}: case_id {cid!r} must be a string")
        if cid in out:
            raise DataError(f"{name}: case {cid}: duplicate entry")
        if cid not in by_id:
            out[cid] = None  # reported below with the other extra ids
            continue
        out[cid] = _check_prediction(entry["prediction"], subtask, by_id[cid], f"{name}: case {cid}")
    missing = [c for c in by_id if c not in out]
    extra = [c for c in out if c not in by_id]
    if missing or extra:
        parts = []
        if missing:
            parts.append("missing case ids " + _short(missing))
        if extra:
            parts.append("unknown case ids " + _short(extra))
        raise DataError(f"{name}: " + "; ".join(parts))
    return out


def _short(ids: list[str]) -> str:
    return ", ".join(ids[:8]) + (f" ... ({len(ids)} in all)" if len(ids) > 8 else "")


def _check_prediction(pred: object, subtask: int, case: Case, where: str) -> object:
    if subtask in WORD_LIMITS:
        if not isinstance(pred, str):
            raise DataError(f"{where}: prediction must be a string")
        if not pred.strip():
            raise DataError(f"{where}: prediction is empty")
        return truncate_words(pred, WORD_LIMITS[subtask])
    sentence_ids = set(case.known_sentence_ids)
    if subtask == 2:
        if not isinstance(pred, list):
            raise DataError(f"{where}: prediction must be a list of sentence ids")
        for sid in pred:
            _check_id(sid, sentence_ids, where, "sentence id")
        return list(dict.fromkeys(pred))
    # subtask 4
    if not isinstance(pred, list):
        raise DataError(f"{where}: prediction must be a list of {{answer_id, evidence_id}} objects")
    if case.answer_sentences is None:
        raise DataError(
            f"{where}: no clinician_answer_sentences for this case: subtask 4 answer ids come from the key "
            "(archehr-qa_key.json v1.5 or later)"
        )
    answer_ids = {a.id for a in case.answer_sentences}
    links: dict[str, list[str]] = {}
    for item in pred:
        if not isinstance(item, dict) or "answer_id" not in item or "evidence_id" not in item:
            raise DataError(f"{where}: each link must be an object with answer_id and evidence_id")
        aid = item["answer_id"]
        _check_id(aid, answer_ids, where, "answer_id")
        evidence = item["evidence_id"]
        if not isinstance(evidence, list):
            raise DataError(f"{where}: answer {aid}: evidence_id must be a list")
        for sid in evidence:
            _check_id(sid, sentence_ids, f"{where}: answer {aid}", "evidence id")
        links.setdefault(aid, [])
        links[aid].extend(s for s in evidence if s not in links[aid])
    return links


def _check_id(value: object, known: set[str], where: str, what: str) -> None:
    if not isinstance(value, str):
        raise DataError(f"{where}: {what} {value!r} must be a string")
    if value not in known:
        raise DataError(f"{where}: unknown {what} {value!r}")
