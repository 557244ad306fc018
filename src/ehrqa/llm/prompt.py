"""Prompts as versioned files, and the one renderer that turns a prompt and a case into messages.

A prompt lives in ``src/ehrqa/prompts/<id>@<version>.md`` (or any file a user names): a YAML
header between ``---`` lines (``subtask``, ``output``: ``text`` or ``json`` with the shape
expected, ``slots``: the names it fills, and for JSON replies ``schema``: the reply's JSON schema)
and ``## system`` / ``## user`` sections. ``{{name}}``
is replaced by a slot's value; a paragraph whose slots are all empty is left out, so optional
parts (a clinician question equal to the patient's) vanish without template logic.

Retrieved examples become earlier user/assistant turns rendered by the same user section, and
training examples (SFT) are rendered by this module too, so a model is asked at test time what it
learned. A run records ``id@version`` and the file's sha256 (:attr:`Prompt.ref`).

A JSON prompt's ``schema`` declares an object with one required key per id of a list of the case
(``keys: answer_ids`` or ``keys: note_ids``) and the ``values`` each key takes; in ``values`` an
``enum: note_ids`` (or ``answer_ids``) becomes the case's own ids, so a server that honours the
schema can name no other id (:func:`reply_schema`)::

    schema:
      keys: answer_ids
      values: {type: array, items: {type: string, enum: note_ids}}
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from ehrqa.errors import DataError

PROMPT_DIR = Path(__file__).resolve().parent.parent / "prompts"
_SLOT = re.compile(r"\{\{\s*([a-z_][a-z0-9_]*)\s*\}\}")
_SECTION = re.compile(r"^## (system|user)\s*$", re.M)
ID_LISTS = ("note_ids", "answer_ids")  # the case's id lists a schema may use

Message = dict[str, str]
Example = tuple[Mapping[str, str], str]  # (slots of the example, the reply it should get)


@dataclass(frozen=True)
class Prompt:
    id: str
    version: int
    subtask: int
    output: str  # "text" or "json"
    slots: tuple[str, ...]
    system: str
    user: str
    sha256: str
    description: str = ""
    shape: str = ""  # for json output: the shape the reply must have, in words
    schema: Mapping | None = None  # for json output: {"keys": ID list, "values": JSON schema} (see above)

    @property
    def name(self) -> str:
        return f"{self.id}@{self.version}"

    @property
    def ref(self) -> str:
        """``id@version:sha256``: what run directories and reply caches record."""
        return f"{self.name}:{self.sha256}"

    def fill(self, template: str, slots: Mapping[str, str | None]) -> str:
        paragraphs = []
        for paragraph in template.strip().split("\n\n"):
            names = _SLOT.findall(paragraph)
            unknown = [n for n in names if n not in self.slots]
            if unknown:
                raise DataError(f"prompt {self.name}: slot {unknown[0]!r} is not declared in its header")
            values = {n: (slots.get(n) or "").strip() for n in names}
            if names and not any(values.values()):
                continue
            paragraphs.append(_SLOT.sub(lambda m, v=values: v[m.group(1)], paragraph))
        return "\n\n".join(paragraphs)

    def render(self, slots: Mapping[str, str | None], examples: Sequence[Example] = ()) -> list[Message]:
        """System turn, each example as a user turn and its reply, then the user turn for ``slots``."""
        messages = [{"role": "system", "content": self.fill(self.system, slots)}] if self.system.strip() else []
        for example_slots, reply in examples:
            messages.append({"role": "user", "content": self.fill(self.user, example_slots)})
            messages.append({"role": "assistant", "content": reply})
        messages.append({"role": "user", "content": self.fill(self.user, slots)})
        return messages


def parse_prompt(text: str, source: str) -> Prompt:
    """A prompt file's text as a :class:`Prompt`; a malformed file is a one-line :class:`DataError`."""
    import yaml

    if not text.startswith("---\n") or "\n---\n" not in text[4:]:
        raise DataError(f"{source}: a prompt file starts with a '---' header block")
    header_text, body = text[4:].split("\n---\n", 1)
    try:
        header = yaml.safe_load(header_text) or {}
    except yaml.YAMLError:
        raise DataError(f"{source}: the prompt header is not valid YAML") from None
    stem = Path(source).name.removesuffix(".md")
    prompt_id, _, version = stem.partition("@")
    if not version.isdigit():
        raise DataError(f"{source}: prompt files are named <id>@<version>.md, e.g. st3-answer@1.md")
    parts = _SECTION.split(body)
    sections = dict(zip(parts[1::2], parts[2::2], strict=True))
    if "user" not in sections:
        raise DataError(f"{source}: no '## user' section")
    output = str(header.get("output", "text"))
    if output not in ("text", "json"):
        raise DataError(f"{source}: output is 'text' or 'json', not {output!r}")
    return Prompt(
        id=prompt_id,
        version=int(version),
        subtask=int(header.get("subtask", 0)),
        output=output,
        slots=tuple(header.get("slots") or ()),
        system=sections.get("system", "").strip(),
        user=sections["user"].strip(),
        sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(),
        description=str(header.get("description", "")),
        shape=str(header.get("shape", "")),
        schema=_schema_declaration(header.get("schema"), source, output),
    )


def _schema_declaration(value, source: str, output: str) -> Mapping | None:
    """A prompt header's ``schema``, checked; None when it has none."""
    if value is None:
        return None
    if output != "json":
        raise DataError(f"{source}: a schema is for output: json")
    if not isinstance(value, dict) or set(value) != {"keys", "values"}:
        raise DataError(f"{source}: schema has two keys: keys ({' or '.join(ID_LISTS)}) and values (a JSON schema)")
    if value["keys"] not in ID_LISTS or not isinstance(value["values"], dict):
        raise DataError(f"{source}: schema keys is {' or '.join(ID_LISTS)} and values a mapping (a JSON schema)")
    return value


def reply_schema(prompt: Prompt, case) -> dict | None:
    """The JSON schema of ``prompt``'s reply for ``case``: one required key per id of the declared
    list, each taking the declared values, every ``enum: note_ids``/``answer_ids`` filled with this
    case's ids. None for a prompt without a schema or a case without those ids."""
    if prompt.schema is None:
        return None
    ids = {
        "note_ids": [s.id for s in case.sentences],
        "answer_ids": [a.id for a in case.answer_sentences or ()],
    }
    keys = ids[prompt.schema["keys"]]
    if not keys:
        return None

    def fill(node):
        if isinstance(node, dict):
            filled = {k: ids[v] if k == "enum" and v in ID_LISTS else fill(v) for k, v in node.items()}
            items = node.get("items")
            if node.get("type") == "array" and isinstance(items, dict) and items.get("enum") in ID_LISTS:
                # no more entries than there are ids: a small model otherwise repeats one id until the
                # token limit cuts the JSON short (SmolLM2 through llama.cpp did)
                filled.setdefault("maxItems", len(ids[items["enum"]]))
            return filled
        if isinstance(node, list):
            return [fill(v) for v in node]
        return node

    values = fill(prompt.schema["values"])
    return {
        "type": "object",
        "properties": {key: values for key in keys},
        "required": list(keys),
        "additionalProperties": False,
    }


def available_prompts() -> list[str]:
    """Names (``id@version``) of the prompts shipped with ehrqa."""
    return sorted(p.name.removesuffix(".md") for p in PROMPT_DIR.glob("*@*.md"))


@lru_cache(maxsize=64)
def load_prompt(ref: str) -> Prompt:
    """A shipped prompt by ``id@version`` (or bare ``id``: its highest version), or a prompt file by path."""
    path = Path(ref)
    if ref.endswith(".md") and path.is_file():
        return parse_prompt(path.read_text(encoding="utf-8"), str(path))
    name = ref.split(":", 1)[0]
    if "@" not in name:
        versions = [n for n in available_prompts() if n.split("@")[0] == name]
        if not versions:
            raise DataError(f"unknown prompt {ref!r}; shipped prompts: {', '.join(available_prompts())}")
        name = max(versions, key=lambda n: int(n.split("@")[1]))
    file = PROMPT_DIR / f"{name}.md"
    if not file.is_file():
        raise DataError(f"unknown prompt {ref!r}; shipped prompts: {', '.join(available_prompts())}")
    return parse_prompt(file.read_text(encoding="utf-8"), str(file))


def flat(text: str | None) -> str:
    return " ".join((text or "").split())


def numbered(items: Sequence[tuple[str, str]]) -> str:
    """``[id] text`` lines, newlines inside an item flattened."""
    return "\n".join(f"[{item_id}] {flat(text)}" for item_id, text in items)


def case_slots(case, *, evidence_ids: Sequence[str] | None = None) -> dict[str, str]:
    """Every slot a prompt may use, from a case input (whatever its subtask's input holds).

    ``note``: all numbered sentences, or only ``evidence_ids`` (evidence-first answering).
    ``clinician_question`` is left empty when it repeats the narrative.
    """
    sentences = [(s.id, s.text) for s in case.sentences]
    if evidence_ids is not None:
        keep = set(evidence_ids)
        sentences = [(sid, text) for sid, text in sentences if sid in keep]
    narrative = flat(case.narrative)
    clinician = flat(case.clinician_question)
    return {
        "narrative": narrative,
        "patient_question": flat(case.patient_question),
        "clinician_question": clinician if clinician != narrative else "",
        "note": numbered(sentences),
        "note_ids": ", ".join(sid for sid, _ in sentences),
        "answer_sentences": numbered([(a.id, a.text) for a in case.answer_sentences or ()]),
        "answer_ids": ", ".join(a.id for a in case.answer_sentences or ()),
        "answer": flat(" ".join(a.text for a in case.answer_sentences or ())),
    }
