"""Results files: one self-describing JSON per run, written atomically, and a pandas loader."""
from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

SCHEMA = 1


def _clean(value: Any) -> Any:
    """JSON has no NaN/inf: store them as strings so files stay standard JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def _restore(value: Any) -> Any:
    if value in ("nan", "inf", "-inf"):
        return float(value)
    if isinstance(value, dict):
        return {k: _restore(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_restore(v) for v in value]
    return value


def write_json_atomic(path: str | os.PathLike, data: Any) -> None:
    """Write to a temporary file in the same folder, fsync, then rename over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(_clean(data), f, indent=1, allow_nan=False)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def read(path: str | os.PathLike) -> dict:
    """A results file as a dict (NaN/inf restored as floats)."""
    with open(path) as f:
        data = json.load(f)
    if data.get("schema") != SCHEMA:
        raise ValueError(f"{path}: results schema {data.get('schema')!r}, this harness reads {SCHEMA}")
    return _restore(data)


def records_frame(data: dict):
    """One row per (backend, cell, seq_len): status, times, memory, gradient metrics; curves as lists."""
    import pandas as pd

    rows = []
    for rec in data["records"]:
        row = {k: rec.get(k) for k in ("backend", "cell", "seq_len", "steps", "dtype", "status", "reason")}
        for kind in ("forward", "forward_backward"):
            m = rec.get("time", {}).get(kind)
            row[f"{kind}_median_s"] = m["median"] if m else math.nan
            row[f"{kind}_iqr_s"] = m["iqr"] if m else math.nan
        row["compile_s"] = rec.get("compile_s", math.nan)
        mem = rec.get("memory") or {}
        row["peak_bytes"] = mem.get("peak_bytes", math.nan)
        row["activation_bytes"] = mem.get("activation_bytes", math.nan)
        grad = rec.get("gradient") or {}
        for key in ("decay_rate", "log10_ratio", "horizon", "exploded"):
            row[key] = grad.get(key, math.nan)
        row["g"] = grad.get("g")
        row["loss_init"] = (rec.get("loss") or {}).get("init", math.nan)
        row["loss_baseline"] = (rec.get("loss") or {}).get("baseline", math.nan)
        rows.append(row)
    frame = pd.DataFrame(rows)
    frame.attrs["suite"] = data["suite"]["name"]
    frame.attrs["provenance"] = data["provenance"]
    return frame


def load(path: str | os.PathLike):
    """Load a results file as a pandas DataFrame, one row per grid cell (see :func:`records_frame`)."""
    return records_frame(read(path))
