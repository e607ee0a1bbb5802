"""Plain JSON data from whatever a plugin reports: a layer-0 utility that imports nothing of the harness.

Plugins' ``info()`` and ``harness_machine_info`` hooks may return sets, bytes or arbitrary objects; the
loader (plugins.py) and the worker (run/executor.py) pass what they return through :func:`jsonable`
before it is recorded, so a plugin cannot break a results file.
"""
from __future__ import annotations

import math
from typing import Any


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON data: what plugins report (info, machine info) may hold sets, bytes or
    objects; they are recorded as sorted lists and ``repr`` text instead of breaking the results file."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted((jsonable(v) for v in value), key=repr)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return repr(value)


def finite_or_none(value: Any) -> Any:
    """``value``, or None for a NaN or infinite float: JSON has no NaN, and a script reads null as "none"."""
    return None if isinstance(value, float) and not math.isfinite(value) else value
