"""The one error type the CLI shows as a single line, and the one check that produces most of them."""
from __future__ import annotations

import re
from collections.abc import Iterable

#: Names that become file or folder names (suites, labels): letters, digits, '.', '_' and '-', starting
#: with a letter or digit, so that none can climb out of the results directory or be absolute.
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
#: Version strings that become part of a file name (python, numpy, torch: the asv environment name): a
#: safe name that may also hold '+', as PEP 440 local versions do (torch 2.3.0+cpu).
SAFE_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9.+_-]{0,99}")


class HarnessError(Exception):
    """An error caused by the user's input; the CLI prints it as one line, without a traceback."""


class BackendError(RuntimeError):
    """A backend broke its contract (results of the wrong shape or dtype): its point fails with this."""


def unknown_choice(kind: str, value: object, valid: Iterable[object], valid_label: str | None = None) -> HarnessError:
    """The one-line error ``unknown <kind> <value>; <valid_label>: a, b, c``.

    ``valid_label`` defaults to ``valid <kind>s``.
    """
    label = valid_label or f"valid {kind}s"
    return HarnessError(f"unknown {kind} {value!r}; {label}: {', '.join(map(str, valid)) or 'none'}")


def check_choice(kind: str, value: str, valid: Iterable[str], valid_label: str | None = None) -> str:
    """Return ``value`` if it is one of ``valid``, else raise :func:`unknown_choice`'s error."""
    choices = list(valid)
    if value not in choices:
        raise unknown_choice(kind, value, choices, valid_label)
    return value


def check_name(kind: str, value: str, version: bool = False) -> str:
    """Return ``value`` if it is a safe file name (:data:`SAFE_NAME`; :data:`SAFE_VERSION` for a
    ``version``), else a one-line error."""
    pattern, plus = (SAFE_VERSION, "'+', ") if version else (SAFE_NAME, "")
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise HarnessError(f"invalid {kind} {value!r}: use letters, digits, '.', {plus}'_' and '-', starting with a "
                           f"letter or digit (it becomes a file name)")
    return value


def message(exc: BaseException) -> str:
    """``str(exc)``, or a note of its type where its ``__str__`` itself raises (a plugin's exception
    must not take its own reason down with it)."""
    try:
        return str(exc)
    except Exception as inner:  # noqa: BLE001 - any error of a third party's __str__
        return (f"<the message of this {type(exc).__name__} could not be shown: its __str__ raised "
                f"{type(inner).__name__}>")
