"""The results file's strict JSON codec: dataclasses to standard JSON and back.

NaN and infinities are written as the strings "nan", "inf", "-inf" (JSON has none). Reading is strict:
a missing or unknown key, or a value of the wrong type, is a :class:`ResultsFormatError` naming where,
never a silent NaN. A file of an older schema is first brought up to date by record/migrations.py.
"""
from __future__ import annotations

import dataclasses
import math
import types
import typing
from enum import Enum
from typing import Any

from harness.errors import HarnessError
from harness.record.migrations import migrate
from harness.record.results import ResultsFormatError, RunResults


def encode(value: Any) -> Any:
    """Dataclasses to dicts; NaN/inf as strings (JSON has none), so files stay standard JSON."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {k: encode(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [encode(v) for v in value]
    return value


def _decode(kind: Any, value: Any, where: str) -> Any:
    """``value`` read from JSON as type ``kind``: nested dataclasses, tuples, NaN/inf strings."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _decode(inner, value, where)
    if dataclasses.is_dataclass(kind):
        return _dataclass(kind, value, where)
    if origin in (tuple, list):
        if not isinstance(value, list):
            raise ResultsFormatError(f"{where}: expected a list, got {type(value).__name__}")
        items = [_decode(args[0], v, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise ResultsFormatError(f"{where}: expected an object, got {type(value).__name__}")
        return {k: _decode(args[1], v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(kind, type) and issubclass(kind, Enum):
        try:
            return kind(value)
        except ValueError:
            raise ResultsFormatError(f"{where}: {value!r} is not one of "
                                     f"{', '.join(repr(m.value) for m in kind)}") from None
    if kind is float and value in ("nan", "inf", "-inf"):
        return float(value)
    if kind is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if kind is Any or (isinstance(kind, type) and isinstance(value, kind) and not
                       (isinstance(value, bool) and kind is not bool)):
        return _restore_floats(value) if kind is Any else value
    raise ResultsFormatError(f"{where}: expected {getattr(kind, '__name__', kind)}, got {value!r}")


def _restore_floats(value: Any) -> Any:
    if value in ("nan", "inf", "-inf"):
        return float(value)
    if isinstance(value, dict):
        return {k: _restore_floats(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_restore_floats(v) for v in value]
    return value


def _dataclass(cls: type, data: Any, where: str) -> Any:
    if not isinstance(data, dict):
        raise ResultsFormatError(f"{where}: expected an object for {cls.__name__}, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(data) - set(fields)
    if unknown:
        raise ResultsFormatError(f"{where}: unknown keys {sorted(unknown)} for {cls.__name__}")
    kwargs = {}
    for name, f in fields.items():
        if not f.init:
            continue  # derived (a Measurement's median and IQR): recomputed from the samples
        if name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ResultsFormatError(f"{where}: missing key {name!r} of {cls.__name__}")
            continue
        kwargs[name] = _decode(hints[name], data[name], f"{where}.{name}")
    try:
        return cls(**kwargs)
    except HarnessError as exc:  # a value its dataclass refuses (an unsafe suite name)
        raise ResultsFormatError(f"{where}: {exc}") from None


def to_json(run: RunResults) -> dict:
    """The JSON-ready form of a run (the inverse of :func:`from_json`)."""
    return encode(run)


def from_json(data: Any, where: str = "results") -> RunResults:
    """A run from its JSON form, migrated from an older schema; raises :class:`ResultsFormatError`
    on any schema mismatch."""
    return _dataclass(RunResults, migrate(data, where), where)
