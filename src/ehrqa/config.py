"""YAML recipes and JSON settings files -> typed dataclasses, the one loader for every recipe and
model settings file (``aligner.json``) in the project.

:func:`from_dict` fills a (frozen) dataclass from plain data, recursing into nested dataclasses,
lists/tuples and dicts by the field types. An unknown key or a value of the wrong type is a
one-line :class:`DataError` that names the file and the key path (``recipe.yaml: steps[2].sampels:
unknown key; known: ...``), never a traceback. Numbers written as strings (YAML 1.1 reads ``2e-4``
as text) are accepted for float fields.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from ehrqa.errors import DataError

T = TypeVar("T")


def load_yaml(path: str | Path, what: str = "recipe") -> dict:
    """A YAML file holding a mapping; anything else is a one-line :class:`DataError`."""
    import yaml

    from ehrqa.io import read_text

    path = Path(path)
    text = read_text(path, what)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        raise DataError(f"{path}: not valid YAML{where}") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: a {what} is a YAML mapping of keys to values, not {type(data).__name__}")
    return data


def load_json(path: str | Path, what: str = "config") -> dict:
    """A JSON file holding a mapping (a model's settings file); anything else, a truncated file
    included, is a one-line :class:`DataError`. Check its keys with :func:`from_dict`."""
    from ehrqa.io import read_json

    data = read_json(path, what)
    if not isinstance(data, dict):
        raise DataError(f"{path}: a {what} is a JSON object of keys to values, not {type(data).__name__}")
    return data


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _convert(value: Any, tp: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for option in (a for a in args if a is not type(None)):
            try:
                return _convert(value, option, where)
            except DataError as e:
                errors.append(str(e))
        raise DataError(errors[0] if len(errors) == 1 else f"{where}: expected {_type_name(tp)}, got {value!r}")
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, where)
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise DataError(f"{where}: expected a list, got {type(value).__name__}")
        item = args[0] if args else Any
        items = [_convert(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise DataError(f"{where}: expected a mapping, got {type(value).__name__}")
        key_tp, value_tp = args or (Any, Any)
        return {_convert(k, key_tp, where): _convert(v, value_tp, f"{where}.{k}") for k, v in value.items()}
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise DataError(f"{where}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise DataError(f"{where}: expected a whole number, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise DataError(f"{where}: expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise DataError(f"{where}: expected text, got {value!r}")
    return value


def from_dict(cls: type[T], data: Any, where: str = "recipe") -> T:
    """An instance of dataclass ``cls`` from a mapping; unknown keys and wrong types are refused."""
    if isinstance(data, cls):
        return data
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise DataError(f"{where}: expected a mapping of settings, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = [k for k in data if k not in fields]
    if unknown:
        raise DataError(f"{where}.{unknown[0]}: unknown key; known: {', '.join(fields)}")
    values = {name: _convert(value, hints[name], f"{where}.{name}") for name, value in data.items()}
    try:
        return cls(**values)
    except (TypeError, ValueError) as e:
        raise DataError(f"{where}: {e}") from None


def to_dict(obj: Any) -> Any:
    """A dataclass (nested) as plain data for JSON: tuples become lists."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {str(k): to_dict(v) for k, v in obj.items()}
    return obj


def override(obj: T, **changes: Any) -> T:
    """A copy of a dataclass with the given fields changed (None values are ignored), checked again."""
    changes = {k: v for k, v in changes.items() if v is not None}
    if not changes:
        return obj
    return from_dict(type(obj), {**to_dict(obj), **changes}, type(obj).__name__)
