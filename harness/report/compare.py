"""``harness compare A B``: the ratio table between two commits or labels, as ``asv compare`` has it.

A and B are commit prefixes (history points) or labels (dirty-tree and ``--label`` runs). Columns:
before, after, ratio = after / before; the mark is ``+`` when the ratio exceeds the factor (worse:
every metric is oriented so that larger is worse), ``-`` when it is below 1/factor (better), ``!``
when the point failed after but not before.
"""
from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from rich.table import Table

from harness.errors import HarnessError
from harness.record.asvdb import LABELS_DIR, unrepr
from harness.report.console import table

#: A benchmark point in asv's database: (benchmark name, backend, cell, seq_len).
PointKey = tuple[str, str, str, int]


@dataclass(frozen=True)
class Change:
    """One benchmark point in both results. ``None`` is a failed point, NaN one not measured."""

    key: PointKey
    before: float | None
    after: float | None
    ratio: float | None  # after / before, where both are positive numbers (or both 0: 1)
    mark: str  # "+" worse, "-" better, "!" newly failed, " " unchanged


def _result_files(results_dir: Path) -> Iterator[tuple[str, Path]]:
    """(kind, path): "commit" for history files (machine folders), "label" for labelled ones."""
    for machine_json in results_dir.glob("*/machine.json"):
        for path in machine_json.parent.glob("*.json"):
            if path.name != "machine.json":
                yield "commit", path
    for path in (results_dir / LABELS_DIR).glob("*/*/*.json"):
        yield "label", path


def resolve(results_dir: Path, spec: str):
    """The asv Results of a label or a commit prefix (the newest file when there are several)."""
    from asv.results import Results

    candidates, known_commits, known_labels = [], set(), set()
    for kind, path in _result_files(results_dir):
        if kind == "label":
            label = path.parent.parent.name
            known_labels.add(label)
            if label == spec:
                candidates.append(path)
        else:
            res = Results.load(str(path))
            known_commits.add(res.commit_hash[:8])
            if res.commit_hash.startswith(spec):
                candidates.append(path)
    if not candidates:
        raise HarnessError(
            f"unknown commit or label {spec!r}; known commits: {', '.join(sorted(known_commits)) or 'none'}; "
            f"known labels: {', '.join(sorted(known_labels)) or 'none'}")
    newest = max(candidates, key=lambda p: p.stat().st_mtime)
    return Results.load(str(newest))


def _values(res) -> dict[PointKey, float | None]:
    """Every benchmark point's value in one asv Results."""
    out = {}
    for name in res.get_all_result_keys():
        params = res.get_result_params(name)
        for combo, value in zip(itertools.product(*params), res.get_result_value(name, params)):
            out[(name, unrepr(combo[0]), unrepr(combo[1]), int(combo[2]))] = value
    return out


def _is_number(value: float | None) -> bool:
    return value is not None and not math.isnan(value)


def change(key: PointKey, before: float | None, after: float | None, factor: float) -> Change:
    """The ratio and mark of one point."""
    if after is None and before is not None:
        return Change(key, before, after, None, "!")
    if _is_number(before) and _is_number(after) and before > 0:
        ratio = after / before
        return Change(key, before, after, ratio, "+" if ratio > factor else "-" if ratio < 1 / factor else " ")
    if before == 0 and after == 0:
        return Change(key, before, after, 1.0, " ")
    return Change(key, before, after, None, " ")


def compare(results_dir: str | Path, before: str, after: str, factor: float = 1.1) -> list[Change]:
    """Every benchmark point present in both ``before`` and ``after``, sorted by benchmark and point."""
    results_dir = Path(results_dir)
    a, b = _values(resolve(results_dir, before)), _values(resolve(results_dir, after))
    return [change(key, a[key], b[key], factor) for key in sorted(set(a) & set(b))]


def _fmt(value: float | None) -> str:
    if value is None:
        return "failed"
    if math.isnan(value):
        return "n/a"
    return f"{value:.4g}"


def compare_table(changes: list[Change]) -> Table:
    """The changes as ``asv compare`` prints them."""
    rows = [[c.mark, _fmt(c.before), _fmt(c.after), "" if c.ratio is None else f"{c.ratio:.2f}",
             c.key[0], c.key[1], c.key[2], str(c.key[3])] for c in changes]
    return table(["", "before", "after", "ratio", "benchmark", "backend", "cell", "T"], rows, right=(1, 2, 3))
