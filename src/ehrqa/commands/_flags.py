"""Command-line flags built from the config dataclasses, so no default is restated by hand.

Each field of a config (``max_new_tokens: int = 112``) becomes a flag (``--max-new-tokens``), typed
by its annotation, its help ending in the dataclass's own default. A flag left out leaves the
field out of :func:`given`, so the dataclass (or the recipe) decides; a field added to a config is
a flag at once. Fields that are lists or mappings (``voters``) have no flag.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Collection, Mapping, Sequence

# What each field means on the command line; a field missing here gets a flag with its default only.
HELP = {
    "prompt": "prompt id@version or a prompt file",
    "samples": "samples per case (>1 needs --temperature)",
    "temperature": "0 = greedy",
    "top_p": "nucleus sampling mass",
    "max_new_tokens": "most tokens per reply",
    "examples": "annotated cases to retrieve few-shot examples from",
    "shots": "retrieved examples per prompt",
    "aligner": "aligner model directory (default: the shipped model)",
    "vote_threshold": "vote rule: majority, union, intersection, a fraction F of the samples, or a count K",
    "select": "how one answer is chosen from several samples",
    "rewrite_prompt": "a prompt that rewrites each answer in a second pass",
    "cite": "align each answer sentence back to the note",
}


def flag_fields(cls: type, skip: Collection[str] = ()) -> list[tuple[dataclasses.Field, typing.Any]]:
    """The fields of ``cls`` that take a flag, with their types."""
    hints = typing.get_type_hints(cls)
    return [(f, hints[f.name]) for f in dataclasses.fields(cls) if f.name not in skip and _kind(hints[f.name])]


def add_config_flags(
    group,
    cls: type,
    *,
    skip: Collection[str] = (),
    help: dict[str, str] | None = None,
    default: object = None,
    metavar: Mapping[str, str] | None = None,
    choices: Mapping[str, Sequence[str]] | None = None,
) -> None:
    """One flag per field of ``cls`` (but ``skip``); ``help`` overrides :data:`HELP`; ``default``: an
    instance whose values the help shows (default: the class's own); ``metavar`` and ``choices``: per
    field, how its value is shown and the values it takes."""
    for f, tp in flag_fields(cls, skip):
        value = getattr(default, f.name) if default is not None else f.default
        value = value.to_config() if hasattr(value, "to_config") else value
        text = (help or {}).get(f.name) or HELP.get(f.name, "")
        if value is not None and value is not dataclasses.MISSING and "(default" not in text:
            text = f"{text} (default: {value})".strip()
        kind = _kind(tp)
        options = {"action": argparse.BooleanOptionalAction} if kind is bool else {"type": kind}
        if f.name in (metavar or {}):
            options["metavar"] = metavar[f.name]
        if f.name in (choices or {}):
            options["choices"] = choices[f.name]
        group.add_argument("--" + f.name.replace("_", "-"), default=argparse.SUPPRESS, help=text, **options)


def given(args: argparse.Namespace, cls: type, skip: Collection[str] = ()) -> dict:
    """The fields of ``cls`` whose flags were given, as ``{field: value}``."""
    return {f.name: getattr(args, f.name) for f, _ in flag_fields(cls, skip) if hasattr(args, f.name)}


def _kind(tp) -> type | None:
    """The argparse type of a field's annotation (``str | None`` -> ``str``); None: no flag."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(tp) if a is not type(None)]
        tp = options[0] if len(options) == 1 else None
    if tp in (bool, int, float, str):
        return tp
    return str if hasattr(tp, "from_config") else None  # e.g. a vote rule, read by ehrqa.config
