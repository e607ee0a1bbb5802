"""Plain-text tables for the terminal: the run summary."""
from __future__ import annotations

import math


def format_table(headers: list[str], rows: list[list[str]], right: tuple[int, ...] = ()) -> str:
    """Columns padded to their widest entry; the columns numbered in ``right`` are right-aligned."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        return "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def _num(value, scale: float = 1.0, fmt: str = "{:.3g}") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return fmt.format(value * scale)


def summary(data: dict) -> str:
    """One row per grid cell: status, median times, peak memory, gradient metrics, loss vs baseline."""
    headers = ["backend", "cell", "T", "status", "fwd ms", "fwd+bwd ms", "IQR %", "peak MiB",
               "decay/step", "horizon", "loss/baseline", "note"]
    rows = []
    for rec in data["records"]:
        t = rec.get("time", {})
        fb = t.get("forward_backward")
        grad = rec.get("gradient") or {}
        loss = rec.get("loss") or {}
        note = rec.get("reason", "").strip().splitlines()[0] if rec.get("status") != "ok" else (
            "exploded" if grad.get("exploded") else "")
        rows.append([
            rec["backend"], rec["cell"], str(rec["seq_len"]), rec["status"],
            _num(t.get("forward", {}).get("median"), 1e3),
            _num(fb["median"] if fb else None, 1e3),
            _num(fb["iqr"] / fb["median"] if fb and fb["median"] else None, 100, "{:.1f}"),
            _num((rec.get("memory") or {}).get("peak_bytes"), 1 / 2**20, "{:.2f}"),
            _num(grad.get("decay_rate"), 1, "{:.2e}"),
            _num(grad.get("horizon"), 1, "{:d}"),
            _num(loss["init"] / loss["baseline"] if loss else None, 1, "{:.2f}"),
            note[:60],
        ])
    return format_table(headers, rows, right=tuple(range(2, 11)))
