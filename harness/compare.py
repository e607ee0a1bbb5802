"""``harness compare A B``: the ratio table between two commits or labels, as ``asv compare`` has it.

A and B are commit prefixes (history points) or labels (dirty-tree and ``--label`` runs). Columns:
before, after, ratio = after / before; the mark is ``+`` when the ratio exceeds the factor (worse:
every metric is oriented so that larger is worse), ``-`` when it is below 1/factor (better), ``!``
when the cell failed after but not before.
"""
from __future__ import annotations

import itertools
import math
from pathlib import Path

from harness import HarnessError
from harness.asvdb import LABELS_DIR, unrepr
from harness.table import format_table


def _result_files(results_dir: Path):
    """(kind, name, path): history files per commit and labelled files per label."""
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


def _cells(res) -> dict[tuple, tuple[str, float | None]]:
    out = {}
    for name in res.get_all_result_keys():
        params = res.get_result_params(name)
        for combo, value in zip(itertools.product(*params), res.get_result_value(name, params)):
            out[(name, unrepr(combo[0]), unrepr(combo[1]), int(combo[2]))] = value
    return out


def _fmt(value) -> str:
    if value is None:
        return "failed"
    if isinstance(value, float) and math.isnan(value):
        return "n/a"
    return f"{value:.4g}"


def compare(results_dir: str | Path, before: str, after: str, factor: float = 1.1) -> str:
    results_dir = Path(results_dir)
    a, b = _cells(resolve(results_dir, before)), _cells(resolve(results_dir, after))
    rows = []
    for key in sorted(set(a) & set(b)):
        x, y = a[key], b[key]
        mark, ratio = " ", ""
        if y is None and x is not None:
            mark = "!"
        elif isinstance(x, float) and isinstance(y, float) and x > 0 and not (math.isnan(x) or math.isnan(y)):
            r = y / x
            ratio = f"{r:.2f}"
            mark = "+" if r > factor else "-" if r < 1 / factor else " "
        elif x == 0 and y == 0:
            ratio = "1.00"
        rows.append([mark, _fmt(x), _fmt(y), ratio, key[0], key[1], key[2], str(key[3])])
    if not rows:
        return "no benchmark cells in common"
    return format_table(["", "before", "after", "ratio", "benchmark", "backend", "cell", "T"], rows, right=(1, 2, 3))
