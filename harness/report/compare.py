"""``harness compare A B``: what changed between two commits or labels, decided as ``asv compare`` does.

A and B are commit prefixes (history points) or labels (dirty-tree and ``--label`` runs). ratio =
after / before; every metric is oriented so that larger is worse (GFLOP/s and the fraction of peak,
derived from the time, are shown and never marked). The marks are asv's, from asv's own
decision (``asv.commands.compare._is_result_better``, called through ``harness.record.asvapi``, which
uses the stored samples' confidence intervals where the benchmark has them): ``+`` a significant
regression beyond the factor, ``-`` a significant improvement, ``!`` newly failed, ``*`` newly fixed,
``x`` not comparable (the benchmark's definition changed), ``?`` measured on one side only (a backend,
cell or metric that vanished or appeared: the sides do not measure the same thing), and a ratio shown
as ``~1.25`` is beyond the factor but within the noise. ``+``, ``!`` and ``?`` fail the comparison.

Timings are judged in units of the machine probe timed beside them (measure/probe.py): each timing
round times a fixed workload before, between and after its two timings, and `harness run` records
each timing in units of the probes on either side of it as well (``time_*_vs_probe``). The mark of a
timing is decided on those samples, so that a phase in which the whole machine ran 1.4 x slower is
no change. The table shows the raw ratio, the probe's ("machine") and the ratio judged;
``normalize=False`` judges seconds.
"""
from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from rich.console import Group
from rich.text import Text

from harness.errors import HarnessError
from harness.jsonsafe import finite_or_none
from harness.record import asvapi
from harness.record.provenance import git
from harness.record.asvdb import LABELS_DIR, PROBE_METRIC, TIMING_ISOLATED, TIMING_ROUNDS, VS_PROBE, unrepr
from harness.report.console import table

#: A benchmark point in asv's database: (benchmark name, its parameter values as text).
PointKey = tuple[str, tuple[str, ...]]
REGRESSIONS = ("+", "!", "?")
CHANGED = ("+", "-", "!", "?")


@dataclass(frozen=True)
class Change:
    """One benchmark point in both results. ``None`` is a failed point, NaN one not measured."""

    key: PointKey
    before: float | None
    after: float | None
    ratio: float | None  # after / before, where both are numbers and before is not 0
    mark: str  # "+", "-", "!", "*", "x" or " " (see the module docstring)
    within_noise: bool = False  # the ratio passes the factor but the samples do not differ: "~"
    machine: float | None = None  # the probe's after / before, where the timing was judged in its units
    judged: float | None = None  # after / before in probe units, where the mark was decided on those
    unit: str = ""  # the metric's unit (seconds, bytes, ...)
    before_spread: float | None = None  # half the interquartile range of the samples, where stored
    after_spread: float | None = None

    @property
    def regression(self) -> bool:
        return self.mark in REGRESSIONS

    @property
    def judged_ratio(self) -> float | None:
        """The ratio the mark was decided on: in units of the machine probe where there is one."""
        return self.judged if self.judged is not None else self.ratio


@dataclass(frozen=True)
class _Point:
    value: float | None
    stats: dict | None  # asv's statistics of the samples (confidence interval, quartiles, repeat)
    samples: list[float] | None
    version: str | None


def _result_files(results_dir: Path) -> Iterator[tuple[str, Path]]:
    """(kind, path): "commit" for history files (machine folders), "label" for labelled ones."""
    for machine_json in results_dir.glob("*/machine.json"):
        for path in machine_json.parent.glob("*.json"):
            if path.name != "machine.json":
                yield "commit", path
    for path in (results_dir / LABELS_DIR).glob("*/*/*.json"):
        yield "label", path


def resolve(results_dir: Path, spec: str, repo: str | Path | None = None) -> dict:
    """The asv Results of a label, a commit prefix or a git ref of ``repo`` (``main``, ``HEAD~1``, a
    tag), one per machine that recorded it (the newest file of each machine when there are several).
    A label wins over a ref of the same name."""
    found = _resolve(results_dir, spec)
    if isinstance(found, dict):
        return found
    commit = git(repo, "rev-parse", "--verify", "--quiet", f"{spec}^{{commit}}") if repo is not None else None
    if commit is not None and isinstance(again := _resolve(results_dir, commit), dict):
        return again
    ref = f" (git ref {spec} is commit {commit[:8]}, which has no results here)" if commit else ""
    raise HarnessError(found + ref)


def _resolve(results_dir: Path, spec: str) -> dict | str:
    """:func:`resolve` of a label or commit prefix, or the message saying what is known instead."""
    candidates, known_commits, known_labels = [], set(), set()
    for kind, path in _result_files(results_dir):
        if kind == "label":
            label = path.parent.parent.name
            known_labels.add(label)
            if label == spec:
                candidates.append(path)
        else:
            commit = asvapi.commit_of(asvapi.read_results(path))
            known_commits.add(commit[:8])
            if commit.startswith(spec):
                candidates.append(path)
    if not candidates:
        commits, labels = ", ".join(sorted(known_commits)) or "none", ", ".join(sorted(known_labels)) or "none"
        return f"unknown commit, git ref or label {spec!r}; known commits: {commits}; known labels: {labels}"
    newest: dict[str, Path] = {}
    for path in sorted(candidates, key=lambda p: p.stat().st_mtime):
        newest[path.parent.name] = path  # the machine's folder
    return {machine: asvapi.read_results(path) for machine, path in newest.items()}


def _points(per_machine: dict, name_machines: bool) -> dict[PointKey, _Point]:
    """Every benchmark point of each machine's asv Results, with its statistics and samples where
    stored; with ``name_machines`` (several machines measured), the machine follows the parameters."""
    out = {}
    for machine, res in per_machine.items():
        suffix = (f"@ {machine}",) if name_machines else ()
        for bench in asvapi.stored_benchmarks(res):
            values = bench.values
            stats = bench.stats or [None] * len(values)
            samples = bench.samples or [None] * len(values)
            for combo, value, stat, sample in zip(itertools.product(*bench.params), values, stats, samples):
                out[(bench.name, tuple(unrepr(p) for p in combo) + suffix)] = _Point(value, stat, sample,
                                                                                     bench.version)
    return out


def timing_rounds(results_dir: str | Path, spec: str, repo: str | Path | None = None) -> int | None:
    """The fewest timing rounds behind ``spec``'s timings over its machines (None: recorded before
    the harness kept the count, or a training run)."""
    counts = [asvapi.env_vars_of(res).get(TIMING_ROUNDS) for res in resolve(Path(results_dir), spec, repo).values()]
    return min((int(c) for c in counts if c), default=None)


def timed_beside(results_dir: str | Path, spec: str, repo: str | Path | None = None) -> bool:
    """Whether some of ``spec``'s timings were taken with untimed work allowed beside them (not
    ``[timing] isolate``; unknown for files recorded before the harness kept it: False)."""
    found = resolve(Path(results_dir), spec, repo).values()
    return any(asvapi.env_vars_of(res).get(TIMING_ISOLATED) == "0" for res in found)


def _isna(value: float | None) -> bool:
    return value is None or math.isnan(value)


def _measured(value: float | None) -> bool:
    """Whether a point ran: a number, or None (it failed); NaN is asv's "not run" (skipped, or absent)."""
    return value is None or not math.isnan(value)


def change(key: PointKey, a: _Point, b: _Point, factor: float) -> Change:
    """asv compare's decision for one point (``asv.commands.compare.Compare.print_table``); a metric
    derived from another (GFLOP/s from the time) is shown, never marked: its source row carries the change."""
    from harness.record.asvdb import metric_named

    metric = metric_named(key[0])
    if metric is not None and metric.derived_from and not (_isna(a.value) or _isna(b.value)):
        # its change is its source's (GFLOP/s is FLOPs / time, with a per-run peak probe): never marked twice
        return Change(key, a.value, b.value, b.value / a.value if a.value else None, " ")

    ratio = None if _isna(a.value) or _isna(b.value) or a.value == 0 else b.value / a.value
    if a.version is not None and b.version is not None and a.version != b.version:
        return Change(key, a.value, b.value, ratio, "x")
    if _measured(a.value) != _measured(b.value):  # ran (or failed) on one side, not run on the other
        return Change(key, a.value, b.value, ratio, "?")
    if a.value is not None and b.value is None:
        return Change(key, a.value, b.value, ratio, "!")
    if a.value is None and b.value is not None:
        return Change(key, a.value, b.value, ratio, "*")
    if _isna(a.value) or _isna(b.value):
        return Change(key, a.value, b.value, ratio, " ")
    ss_a, ss_b = (a.stats, a.samples), (b.stats, b.samples)
    if asvapi.is_result_better(b.value, a.value, ss_b, ss_a, factor):
        return Change(key, a.value, b.value, ratio, "-")
    if asvapi.is_result_better(a.value, b.value, ss_a, ss_b, factor):
        return Change(key, a.value, b.value, ratio, "+")
    beyond = asvapi.is_result_better(a.value, b.value, None, None, factor) or asvapi.is_result_better(
        b.value, a.value, None, None, factor)
    return Change(key, a.value, b.value, ratio, " ", within_noise=beyond)


def judged_in_probe_units(key: PointKey, a: dict[PointKey, _Point], b: dict[PointKey, _Point],
                          factor: float) -> Change:
    """A timing's change, its mark decided on its samples in probe units where both sides have them."""
    raw = change(key, a[key], b[key], factor)
    relative = (key[0] + VS_PROBE, key[1])
    if raw.mark in ("x", "!", "*", "?") or relative not in a or relative not in b:
        return raw
    judged = change(relative, a[relative], b[relative], factor)
    if judged.ratio is None:  # a file from before the probe: its relative timings are NaN
        return raw
    probe = (f"{key[0].split('.', 1)[0]}.{PROBE_METRIC}", key[1])
    pa, pb = a.get(probe), b.get(probe)
    machine = pb.value / pa.value if pa and pb and not (_isna(pa.value) or _isna(pb.value)) and pa.value else None
    return dataclasses.replace(raw, mark=judged.mark, within_noise=judged.within_noise, machine=machine,
                               judged=judged.ratio)


def compare(results_dir: str | Path, before: str, after: str, factor: float = 1.1,
            normalize: bool = True, repo: str | Path | None = None, machine: str | None = None) -> list[Change]:
    """Every benchmark point of ``before`` or ``after`` (the probe's own points are the machine column
    of the timings, not rows): one measured on one side only is marked ``?``; timings judged in probe
    units unless not ``normalize``; only ``machine``'s results where given. Sides that share no
    measured point are an error, not a pass."""
    results_dir = Path(results_dir)
    res_a, res_b = resolve(results_dir, before, repo), resolve(results_dir, after, repo)
    if machine is not None:
        known = sorted(set(res_a) | set(res_b))
        if machine not in known:
            raise HarnessError(f"unknown machine {machine!r} for {before} and {after}; their machines: "
                               f"{', '.join(known)}")
        res_a, res_b = ({m: r for m, r in res.items() if m == machine} for res in (res_a, res_b))
    several = len(set(res_a) | set(res_b)) > 1
    a, b = _points(res_a, several), _points(res_b, several)
    keys = sorted(k for k in set(a) | set(b) if not (k[0].endswith(VS_PROBE) or k[0].endswith("." + PROBE_METRIC)))
    if not any(k in a and k in b and _measured(a[k].value) and _measured(b[k].value) for k in keys):
        raise HarnessError(f"compare: {before} and {after} share no measured benchmark point (different suites, "
                           f"grids or machines?); nothing to compare")
    absent = _Point(math.nan, None, None, None)
    a.update({k: absent for k in keys if k not in a})
    b.update({k: absent for k in keys if k not in b})
    changes = [judged_in_probe_units(key, a, b, factor) if normalize else change(key, a[key], b[key], factor)
               for key in keys]
    return [dataclasses.replace(c, unit=_unit(c.key[0]), before_spread=asvapi.spread(a[c.key].stats),
                                after_spread=asvapi.spread(b[c.key].stats)) for c in changes]


def _unit(benchmark: str) -> str:
    from harness.record.asvdb import metric_named

    metric = metric_named(benchmark)
    return metric.unit if metric is not None else ""


#: The measurement families ``harness compare --metrics`` can choose (asvdb's metric table names each).
FAMILIES = ("time", "memory", "gradient", "compile", "train")


def family_of(change: Change) -> str:
    """The measurement family of a change's metric (time, memory, gradient, compile, train)."""
    from harness.record.asvdb import metric_named

    metric = metric_named(change.key[0])
    return metric.family if metric is not None else "other"


def change_records(changes: list[Change]) -> list[dict]:
    """One plain record per change (``harness compare --format json``): NaN as None."""
    numbers = ("before", "after", "before_spread", "after_spread", "ratio", "machine")
    return [{"benchmark": c.key[0], "point": list(c.key[1]), "family": family_of(c), "mark": c.mark.strip(),
             "regression": c.regression, "unit": c.unit, **{n: finite_or_none(getattr(c, n)) for n in numbers},
             "judged": finite_or_none(c.judged_ratio), "within_noise": c.within_noise} for c in changes]


#: The columns of :func:`flat_rows`: one table for every benchmark (``--format markdown``).
FLAT_HEADERS = ("", "benchmark", "point", "before", "after", "ratio", "judged")


def flat_rows(changes: list[Change]) -> list[list[str]]:
    """One row per change under :data:`FLAT_HEADERS`, worst judged ratio first."""
    ordered = sorted(changes, key=lambda c: -(c.judged_ratio if c.judged_ratio is not None else math.inf))
    return [[c.mark.strip(), c.key[0], " ".join(c.key[1]), _fmt(c.before, c.unit, c.before_spread),
             _fmt(c.after, c.unit, c.after_spread), _ratio(c.ratio), _ratio(c.judged_ratio, c.within_noise)]
            for c in ordered]


def _fmt(value: float | None, unit: str = "", spread: float | None = None) -> str:
    """``1.23±0.01ms`` as asv compare prints a value with its unit and spread; "failed", "n/a"."""
    if value is None:
        return "failed"
    if math.isnan(value):
        return "n/a"
    if unit in ("seconds", "bytes"):
        return asvapi.human_value(value, unit, spread)
    text = f"{value:.4g}" + (f"±{spread:.2g}" if spread else "")
    return text


def _ratio(value: float | None, within_noise: bool = False) -> str:
    if value is None:
        return "n/a"
    return f"~{value:.2f}" if within_noise else f"{value:.2f}"


#: How ``harness compare --sort`` orders the rows of each benchmark.
SORTS = ("ratio", "point")


def compare_report(changes: list[Change], only_changed: bool = True, sort: str = "ratio") -> Group | Text:
    """One section per benchmark, rows sorted by ``sort``: the judged ratio (worst first) or the
    point's parameters; with ``only_changed``, only the significant changes (+, -, !) and the points
    measured on one side only (?)."""
    shown = [c for c in changes if c.mark in CHANGED] if only_changed else changes
    if not shown:
        return Text(f"no significant change in {len(changes)} benchmark points" if only_changed else
                    "no benchmark points in common")
    sections = []
    for name, group in itertools.groupby(sorted(shown, key=lambda c: c.key[0]), key=lambda c: c.key[0]):
        rows = sorted(group, key=(lambda c: c.key[1]) if sort == "point" else
                      (lambda c: -(c.judged_ratio if c.judged_ratio is not None else math.inf)))
        sections.append(table(["", "before", "after", "ratio", "machine", "judged", "point"],
                              [[c.mark, _fmt(c.before, c.unit, c.before_spread), _fmt(c.after, c.unit, c.after_spread),
                                _ratio(c.ratio),
                                _ratio(c.machine) if c.machine else "", _ratio(c.judged_ratio, c.within_noise),
                                " ".join(c.key[1])] for c in rows],
                              right=(1, 2, 3, 4, 5), title=name))
        sections.append(Text(""))
    return Group(*sections[:-1])
