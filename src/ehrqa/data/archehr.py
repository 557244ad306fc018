"""Read and write the official ArchEHR-QA files: ``archehr-qa.xml`` and ``archehr-qa_key.json``.

Validation happens here, once, at the edge. Anything malformed raises
:class:`ehrqa.DataError` with a short message naming file, case and field.
"""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path

from ehrqa.data.case import RELEVANCE_LABELS, AnswerSentence, Case, NoteSentence, QuestionPhrase
from ehrqa.errors import DataError
from ehrqa.io import atomic_write_text

XML_NAME = "archehr-qa.xml"
KEY_NAME = "archehr-qa_key.json"
QUESTION_FROM_USER = "user"  # <clinician_question source="user">: written by ehrqa convert / ehrqa answer


def sample_dir() -> Path:
    """The bundled sample dataset (invented cases, no patient data)."""
    return Path(__file__).parent / "sample"


def _read_text(path: Path) -> str:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a directory, expected a file") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror})") from None
    if not raw.strip():
        raise DataError(f"{path.name}: file is empty")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise DataError(f"{path.name}: not UTF-8 (invalid byte at offset {e.start})") from None


def _text(elem: ET.Element | None) -> str | None:
    if elem is None:
        return None
    return "".join(elem.itertext()).strip()


def _int_attr(elem: ET.Element, name: str, where: str) -> int | None:
    """An optional attribute that must be a non-negative integer when present."""
    value = elem.get(name)
    if value is None:
        return None
    try:
        number = int(value)
    except ValueError:
        raise DataError(f"{where}: {name} is not an integer: {value!r}") from None
    if number < 0:
        raise DataError(f"{where}: {name} is negative: {number}")
    return number


def _squash(text: str) -> str:
    return " ".join(text.split())


def _phrase_is_at(phrase: str, start: int, narratives: Sequence[str]) -> bool:
    """Whether ``phrase`` starts at ``start`` in one of the narrative's renderings (stripped or raw).

    Runs of whitespace compare equal: pretty-printing may have re-wrapped the text.
    """
    for narrative in narratives:
        if narrative.startswith(phrase, start):
            return True
        window = narrative[start : start + 2 * len(phrase) + 8]
        if window[:1] == phrase[:1] and _squash(window).startswith(_squash(phrase)):
            return True
    return False


# ---------------------------------------------------------------- XML


def read_xml(path: str | os.PathLike) -> list[Case]:
    """Read ``archehr-qa.xml``: cases with narrative, questions and note sentences."""
    path = Path(path)
    text = _read_text(path)
    try:
        root = ET.fromstring(text)
    except ET.ParseError as e:
        raise DataError(f"{path.name}: not well-formed XML ({e})") from None
    elements = [root] if root.tag == "case" else root.findall("case")
    if not elements:
        raise DataError(f"{path.name}: no <case> elements under <{root.tag}>")
    cases: list[Case] = []
    seen: set[str] = set()
    for n, elem in enumerate(elements, 1):
        case_id = (elem.get("id") or "").strip()
        if not case_id:
            raise DataError(f"{path.name}: case #{n} has no id attribute")
        if case_id in seen:
            raise DataError(f"{path.name}: case {case_id}: duplicate case id")
        seen.add(case_id)
        cases.append(_parse_case(elem, case_id, path.name))
    return cases


def _parse_case(elem: ET.Element, case_id: str, fname: str) -> Case:
    where = f"{fname}: case {case_id}"
    narrative_elem = elem.find("patient_narrative")
    narrative = _text(narrative_elem)
    if narrative is None:
        raise DataError(f"{where}: missing <patient_narrative>")
    raw_narrative = "".join(narrative_elem.itertext())
    phrases = []
    for p in elem.findall("patient_question/phrase"):
        pid = (p.get("id") or "").strip()
        pwhere = f"{where}: phrase {pid}"
        text, start = _text(p) or "", _int_attr(p, "start_char_index", pwhere)
        if start is not None and text and not _phrase_is_at(text, start, (narrative, raw_narrative)):
            raise DataError(f"{pwhere}: start_char_index {start} does not point at the phrase's text in the narrative")
        phrases.append(QuestionPhrase(pid, text, start))
    sentences: list[NoteSentence] = []
    seen: set[str] = set()
    for k, s in enumerate(elem.findall("note_excerpt_sentences/sentence"), 1):
        sid = (s.get("id") or "").strip()
        if not sid:
            raise DataError(f"{where}: sentence #{k} has no id attribute")
        if sid in seen:
            raise DataError(f"{where}: sentence {sid}: duplicate sentence id")
        seen.add(sid)
        swhere = f"{where}: sentence {sid}"
        text = _text(s)
        if not text:
            raise DataError(f"{swhere}: empty <sentence>")
        sentences.append(
            NoteSentence(
                id=sid,
                text=text,
                paragraph_id=s.get("paragraph_id"),
                start=_int_attr(s, "start_char_index", swhere),
                length=_int_attr(s, "length", swhere),
            )
        )
    return Case(
        id=case_id,
        narrative=narrative,
        sentences=tuple(sentences),
        specialty=_text(elem.find("clinical_specialty")),
        question_phrases=tuple(phrases),
        clinician_question=_text(elem.find("clinician_question")),
        note_excerpt=_text(elem.find("note_excerpt")),
        question_is_input=_question_source(elem, where) == QUESTION_FROM_USER,
    )


def _question_source(elem: ET.Element, where: str) -> str | None:
    """``<clinician_question source="user">``: the user's own question (input), not the ST1 gold."""
    question = elem.find("clinician_question")
    source = question.get("source") if question is not None else None
    if source not in (None, QUESTION_FROM_USER):
        raise DataError(f"{where}: clinician_question source={source!r}: the only source ehrqa knows is 'user'")
    return source


def check_note_sentences(cases: Iterable[Case], fname: str = XML_NAME) -> None:
    """Check each numbered sentence against its case's ``<note_excerpt>``: the text occurs there, and
    ``start_char_index`` / ``length`` point at it within its paragraph. Used by ``ehrqa validate``.

    Paragraphs are the excerpt's blocks between blank lines; when the case has as many paragraph ids
    as paragraphs, the ids name them in order (the official files count from 0 or from 1), otherwise
    any paragraph may hold the sentence. Runs of whitespace compare equal. Cases without an excerpt
    (test releases may omit it) are skipped."""
    import re

    for case in cases:
        if not case.note_excerpt or not case.sentences:
            continue
        paragraphs = re.split(r"\n[ \t]*\n", case.note_excerpt)
        paragraph_ids = list(dict.fromkeys(s.paragraph_id for s in case.sentences))
        excerpt = _squash(case.note_excerpt)
        for s in case.sentences:
            where = f"{fname}: case {case.id}: sentence {s.id}"
            if _squash(s.text) not in excerpt:
                raise DataError(f"{where}: its text is not in <note_excerpt>")
            if s.length is not None and s.length != len(s.text):
                raise DataError(f"{where}: length is {s.length} but the text has {len(s.text)} characters")
            if s.start is None:
                continue
            candidates = paragraphs
            if len(paragraph_ids) == len(paragraphs):
                candidates = [paragraphs[paragraph_ids.index(s.paragraph_id)]]
            if not _phrase_is_at(s.text, s.start, candidates):
                raise DataError(
                    f"{where}: start_char_index {s.start} does not point at the sentence's text in its paragraph "
                    "of <note_excerpt>"
                )


def write_xml(cases: Iterable[Case], path: str | os.PathLike) -> None:
    """Write cases as ``archehr-qa.xml``, pretty-printed like the official release."""
    root = ET.Element("annotations")
    for case in cases:
        c = ET.SubElement(root, "case", id=case.id)
        _leaf(c, "clinical_specialty", case.specialty, 2)
        _leaf(c, "patient_narrative", case.narrative, 2)
        if case.question_phrases:
            q = ET.SubElement(c, "patient_question")
            for p in case.question_phrases:
                attrs = {"id": p.id} | ({} if p.start is None else {"start_char_index": str(p.start)})
                _leaf(q, "phrase", p.text, 3, attrs)
        source = {"source": QUESTION_FROM_USER} if case.question_is_input else None
        _leaf(c, "clinician_question", case.clinician_question, 2, source)
        _leaf(c, "note_excerpt", case.note_excerpt, 2)
        if case.sentences:
            ss = ET.SubElement(c, "note_excerpt_sentences")
            for s in case.sentences:
                attrs = {"id": s.id}
                for name, value in (
                    ("paragraph_id", s.paragraph_id),
                    ("start_char_index", s.start),
                    ("length", s.length),
                ):
                    if value is not None:
                        attrs[name] = str(value)
                _leaf(ss, "sentence", s.text, 3, attrs)
    ET.indent(root, space="    ")
    declaration = "<?xml version='1.0' encoding='UTF-8'?>\n"
    atomic_write_text(Path(path), declaration + ET.tostring(root, encoding="unicode") + "\n")


def _leaf(parent: ET.Element, tag: str, text: str | None, depth: int, attrs: dict | None = None) -> None:
    if text is None:
        return
    e = ET.SubElement(parent, tag, attrs or {})
    e.text = f"\n{text}\n" + "    " * depth


# ---------------------------------------------------------------- key


def normalise_citations(value: object, where: str) -> tuple[str, ...]:
    """Citations as a tuple of id strings: accepts a list or the old comma string ("2,5", "19-25")."""
    if value is None:
        return ()
    if isinstance(value, list):
        items = value
    elif isinstance(value, str):
        items = [part for part in value.split(",") if part.strip()]
    else:
        raise DataError(f"{where}: citations must be a list or a comma string, got {type(value).__name__}")
    out: list[str] = []
    for item in items:
        if isinstance(item, bool) or not isinstance(item, (str, int)):
            raise DataError(f"{where}: citation {item!r} is not an id")
        token = str(item).strip()
        lo, dash, hi = token.partition("-")
        if dash and lo.strip().isdigit() and hi.strip().isdigit():
            out.extend(str(i) for i in range(int(lo), int(hi) + 1))
        elif token:
            out.append(token)
    return tuple(dict.fromkeys(out))


def read_key(path: str | os.PathLike) -> list[Case]:
    """Read ``archehr-qa_key.json`` alone: cases carrying only their gold fields.

    Enough for ST2 and ST4 scoring. Sentence ids are known from the relevance labels.
    """
    path = Path(path)
    text = _read_text(path)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise DataError(f"{path.name}: not valid JSON ({e.msg} at line {e.lineno} column {e.colno})") from None
    if not isinstance(data, list):
        raise DataError(f"{path.name}: expected a JSON list of cases, got {type(data).__name__}")
    cases: list[Case] = []
    seen: set[str] = set()
    for n, entry in enumerate(data, 1):
        if not isinstance(entry, dict):
            raise DataError(f"{path.name}: entry #{n} is not an object")
        raw_id = entry.get("case_id")
        if raw_id is None or isinstance(raw_id, bool) or str(raw_id).strip() == "":
            raise DataError(f"{path.name}: entry #{n} has no case_id")
        case_id = str(raw_id).strip()
        if case_id in seen:
            raise DataError(f"{path.name}: case {case_id}: duplicate case id")
        seen.add(case_id)
        cases.append(_parse_key_entry(entry, case_id, path.name))
    return cases


def _parse_key_entry(entry: dict, case_id: str, fname: str) -> Case:
    where = f"{fname}: case {case_id}"
    relevance = None
    if "answers" in entry:
        answers = entry["answers"]
        if not isinstance(answers, list):
            raise DataError(f"{where}: answers must be a list")
        pairs: dict[str, str] = {}
        for k, a in enumerate(answers, 1):
            if not isinstance(a, dict) or a.get("sentence_id") is None:
                raise DataError(f"{where}: answers entry #{k} has no sentence_id")
            sid = str(a["sentence_id"]).strip()
            label = a.get("relevance")
            if label not in RELEVANCE_LABELS:
                raise DataError(f"{where}: sentence {sid}: unknown relevance label {label!r}")
            if sid in pairs:
                raise DataError(f"{where}: sentence {sid}: labelled twice")
            pairs[sid] = label
        relevance = tuple(pairs.items())
    answer = entry.get("clinician_answer_without_citations")
    if answer is not None:
        if not isinstance(answer, str):
            raise DataError(f"{where}: clinician_answer_without_citations is not a string")
        answer = answer.strip()
    answer_sentences = None
    if "clinician_answer_sentences" in entry:
        raw = entry["clinician_answer_sentences"]
        if not isinstance(raw, list):
            raise DataError(f"{where}: clinician_answer_sentences must be a list")
        out: list[AnswerSentence] = []
        seen: set[str] = set()
        for k, a in enumerate(raw, 1):
            if not isinstance(a, dict) or a.get("id") is None:
                raise DataError(f"{where}: answer sentence #{k} has no id")
            aid = str(a["id"]).strip()
            if aid in seen:
                raise DataError(f"{where}: answer sentence {aid}: duplicate id")
            seen.add(aid)
            citations = None
            if "citations" in a and a["citations"] is not None:
                citations = normalise_citations(a["citations"], f"{where}: answer sentence {aid}")
            out.append(AnswerSentence(aid, str(a.get("text", "")).strip(), citations))
        answer_sentences = tuple(out)
    case = Case(id=case_id, narrative="", relevance=relevance, answer=answer, answer_sentences=answer_sentences)
    if relevance is not None:
        _check_citations(case, {sid for sid, _ in relevance}, fname)
    return case


def _check_citations(case: Case, sentence_ids: set[str], fname: str) -> None:
    for a in case.answer_sentences or ():
        for c in a.citations or ():
            if c not in sentence_ids:
                raise DataError(f"{fname}: case {case.id}: answer sentence {a.id}: cites unknown sentence id {c!r}")


def write_key(cases: Iterable[Case], path: str | os.PathLike) -> None:
    """Write the gold fields of cases as ``archehr-qa_key.json`` (citations as lists)."""
    out = []
    for case in cases:
        entry: dict = {"case_id": case.id}
        if case.relevance is not None:
            entry["answers"] = [{"sentence_id": sid, "relevance": lab} for sid, lab in case.relevance]
        if case.answer is not None:
            entry["clinician_answer_without_citations"] = case.answer
        if case.answer_sentences is not None:
            entry["clinician_answer_sentences"] = [
                {"id": a.id, "text": a.text} | ({} if a.citations is None else {"citations": list(a.citations)})
                for a in case.answer_sentences
            ]
        out.append(entry)
    atomic_write_text(Path(path), json.dumps(out, indent=2, ensure_ascii=False) + "\n")


# ---------------------------------------------------------------- both


def resolve_paths(
    data: str | os.PathLike | None = None,
    xml: str | os.PathLike | None = None,
    key: str | os.PathLike | None = None,
) -> tuple[Path | None, Path | None]:
    """The XML and key paths from a data directory and/or explicit files (key optional in a dir)."""
    xml_path = Path(xml) if xml else None
    key_path = Path(key) if key else None
    if data is not None:
        d = Path(data)
        if not d.is_dir():
            raise DataError(f"{d}: not a directory")
        try:
            names = set(os.listdir(d))
        except OSError as e:
            raise DataError(f"{d}: cannot read the directory ({e.strerror})") from None
        if xml_path is None and XML_NAME in names:
            xml_path = d / XML_NAME
        if key_path is None and KEY_NAME in names:
            key_path = d / KEY_NAME
        if xml_path is None and key_path is None:
            raise DataError(f"{d}: holds neither {XML_NAME} nor {KEY_NAME}")
    return xml_path, key_path


def read_dataset(
    data: str | os.PathLike | None = None,
    *,
    xml: str | os.PathLike | None = None,
    key: str | os.PathLike | None = None,
    require_xml: bool = True,
) -> list[Case]:
    """Read a dataset: a directory holding the official files, or explicit ``xml``/``key`` paths.

    With no arguments, the bundled sample. The key is optional; when present its gold
    is merged into the XML's cases and checked against their sentence ids.
    """
    if data is None and xml is None and key is None:
        data = sample_dir()
    xml_path, key_path = resolve_paths(data, xml, key)
    if xml_path is None:
        if require_xml and data is not None:
            raise DataError(f"{data}: no {XML_NAME} (only the key is there; this needs the XML as well)")
        if require_xml:
            raise DataError(f"{key_path}: the key alone is not enough here: {XML_NAME} is needed too (xml=FILE)")
        return read_key(key_path)
    cases = read_xml(xml_path)
    if key_path is None:
        return cases
    return merge_key(cases, read_key(key_path), xml_path.name, key_path.name)


def merge_key(
    cases: Sequence[Case], keys: Sequence[Case], xml_name: str = XML_NAME, key_name: str = KEY_NAME
) -> list[Case]:
    """Merge key cases into XML cases, checking that every id the key names exists."""
    by_id = {k.id: k for k in keys}
    known = {c.id for c in cases}
    missing = [k.id for k in keys if k.id not in known]
    if missing:
        shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise DataError(f"{key_name}: case(s) {shown} not in {xml_name}")
    merged = []
    for case in cases:
        k = by_id.get(case.id)
        if k is None:
            merged.append(case)
            continue
        sentence_ids = set(case.sentence_ids)
        if not sentence_ids and (k.relevance or k.citation_pairs):
            # The key is fine; the XML lacks what it refers to.
            raise DataError(
                f"{xml_name}: case {case.id}: no <note_excerpt_sentences>, but {key_name} labels sentences of it"
            )
        for sid, _ in k.relevance or ():
            if sid not in sentence_ids:
                raise DataError(
                    f"{key_name}: case {case.id}: relevance names unknown sentence id {sid!r} (not in {xml_name})"
                )
        _check_citations(k, sentence_ids, key_name)
        merged.append(replace(case, relevance=k.relevance, answer=k.answer, answer_sentences=k.answer_sentences))
    return merged
