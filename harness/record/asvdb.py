"""Record runs into an asv results database through asv's own Python API (asv 0.6.*).

asv is the storage and presentation layer only: the harness never runs ``asv run``. Each suite
metric is one asv benchmark ``<suite>.<metric>`` with params backend x cell x seq_len; a run at a
commit is one asv ``Results`` (machine, commit, environment). Values: NaN = skipped, null = failed.
Every metric is oriented so that larger is worse, because asv flags upward steps as regressions.

Runs from a dirty tree (or with ``--label``) are stored under ``results/labels/<label>/``, which
has no ``machine.json`` and is therefore invisible to ``asv publish``: they never enter the
history graphs, but ``harness compare`` can read them.

These are asv internals (see docs/references.md, "asv"); tests/test_asvdb.py fails loudly
if a new asv version changes them.
"""
from __future__ import annotations

import copy
import datetime as dt
import hashlib
import itertools
import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.record.results import OK, SKIPPED, PointResult, RunResults, write_json_atomic
from harness.suites import Suite

CONFIG_FILE = "asv.conf.json"
METRIC_DEFINITIONS_VERSION = 1  # bump when a metric's meaning changes: asv then starts a new series
PARAM_NAMES = ["backend", "cell", "seq_len"]
LABELS_DIR = "labels"


@dataclass(frozen=True)
class Metric:
    """One asv benchmark per suite: how to read its value (and samples) from a point's record."""

    name: str
    family: str  # the suite's measurement family it needs: time, memory or gradient
    type: str  # asv benchmark type: "time", "memory" or "track"
    unit: str
    value: Callable[[PointResult], float | None]
    samples: Callable[[PointResult], list[float] | None] = lambda point: None
    number: Callable[[PointResult], int | None] = lambda point: None  # calls per sample; None: tracked value
    description: str = ""


def _timing(kind: str) -> dict[str, Callable[[PointResult], Any]]:
    return {"value": lambda p: getattr(p.time, kind).median,
            "samples": lambda p: list(getattr(p.time, kind).samples),
            "number": lambda p: getattr(p.time, kind).number}


def _finite_or_nan(value: float) -> float:
    return float(value) if math.isfinite(value) else math.nan


def horizon_shortfall(point: PointResult) -> int:
    """steps - horizon: how many steps short of the sequence start the gradient reaches (all of
    them when the profile overflowed and has no horizon)."""
    horizon = point.gradient.horizon
    return point.steps - (0 if horizon is None else horizon)


METRICS = (
    Metric("time_forward", "time", "time", "seconds", **_timing("forward"),
           description="median time of the recurrent layer's forward pass"),
    Metric("time_forward_backward", "time", "time", "seconds", **_timing("forward_backward"),
           description="median time of forward plus backpropagation through time"),
    Metric("peak_memory", "memory", "memory", "bytes", lambda p: p.memory.peak_bytes,
           description="peak bytes allocated from prepare to the end of backward"),
    Metric("compile_time", "time", "track", "seconds", lambda p: p.time.compile_s,
           description="first call minus the median call: JIT compilation or cache loading"),
    Metric("grad_abs_decay_rate", "gradient", "track", "decades/step",
           lambda p: abs(_finite_or_nan(p.gradient.decay_rate)),
           description="|least-squares slope of log10 g_t against the lag|: 0 is a flat profile"),
    Metric("grad_abs_log10_ratio", "gradient", "track", "decades",
           lambda p: abs(_finite_or_nan(p.gradient.log10_ratio)),
           description="|log10(g_T / g_1)|; NaN when the profile overflowed"),
    Metric("grad_horizon_shortfall", "gradient", "track", "steps", horizon_shortfall,
           description="steps - horizon: how far short of the sequence start gradients reach"),
)


def load_config(path: str | os.PathLike = CONFIG_FILE, results_dir: str | None = None):
    """asv's Config from ``asv.conf.json``, or asv's defaults for this layout if there is none."""
    from asv.config import Config

    if Path(path).is_file():
        conf = Config.load(str(path))
    else:
        conf = Config.from_json({"version": 1, "project": "rnn-grad-harness", "repo": ".", "dvcs": "git",
                                 "branches": ["main"], "results_dir": "results", "html_dir": "results/html"})
    if results_dir is not None:
        conf.results_dir = str(results_dir)
        conf.html_dir = str(Path(results_dir) / "html")
    return conf


def benchmark_version(suite: Suite, metric: Metric) -> str:
    """Derived from what defines the measured quantity, never from backend code (asv drops results
    whose version differs from benchmarks.json's)."""
    keys = ("task", "batch", "hidden", "dtype", "init", "init_gain", "seeds")
    blob = json.dumps({"suite": {k: getattr(suite, k) for k in keys}, "metric": metric.name,
                       "definitions": METRIC_DEFINITIONS_VERSION}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _union(old: list[str], new: list[str]) -> list[str]:
    """``old`` followed by the values of ``new`` it lacks, each once, in order."""
    merged = list(old)
    for value in new:
        if value not in merged:
            merged.append(value)
    return merged


def _benchmark(suite: Suite, metric: Metric, params: list[list[str]]) -> dict:
    return {
        "name": f"{suite.name}.{metric.name}",
        "type": metric.type,
        "unit": metric.unit,
        "params": params,
        "param_names": PARAM_NAMES,
        "version": benchmark_version(suite, metric),
        "code": f"# recorded by harness; suite {suite.name} ({suite.task}), metric {metric.name}\n"
                f"# {metric.description}",
        "timeout": suite.timing.timeout,
    }


def machine_info(prov: dict) -> dict:
    return {"machine": prov["machine"], "os": prov["os"], "arch": prov["arch"], "cpu": prov["cpu"],
            "num_cpu": str(prov["cpu_count"]), "ram": _ram(), "gpu": prov.get("gpu") or ""}


def _ram() -> str:
    try:
        with open("/proc/meminfo") as f:
            return f.readline().split(":")[1].strip()
    except OSError:
        return ""


def env_name(prov: dict) -> str:
    libs = prov["libraries"]
    parts = [f"py{prov['python']}"] + [f"{n}{libs[n]}" for n in ("numpy", "torch", "numba") if libs.get(n)]
    return "harness-" + "-".join(parts) + f"-threads{prov['threads']}"


def _run_params(prov: dict) -> dict:
    libs = prov["libraries"]
    params = {**machine_info(prov), "python": prov["python"], "threads": str(prov["threads"])}
    params.update({n: libs[n] for n in ("numpy", "torch", "numba") if libs.get(n)})
    return params


def label_for(prov: dict, label: str | None) -> str | None:
    """The label a run is stored under, or None for a history point (a clean, committed tree)."""
    git = prov["git"]
    if label:
        return label
    if git["commit"] is None:
        return "no-git"
    if git["dirty"]:
        return f"dirty-{git['commit'][:8]}"
    return None


def _point_value(metric: Metric, point: PointResult) -> tuple[float | None, list | None, int | None]:
    """asv's encoding: NaN skipped, None failed, else value, samples, number.

    A point that is ok has every family its suite measured; a missing one is a bug (schema drift)
    and raises, rather than becoming a silent NaN in the history."""
    if point.status == SKIPPED:
        return math.nan, None, None
    if point.status != OK:
        return None, None, None
    return metric.value(point), metric.samples(point), metric.number(point)


def record_run(run: RunResults, conf, label: str | None = None) -> Path:
    """Add one finished run to the asv database; returns the file written.

    Re-recording at the same commit, machine and environment merges: the points of this run
    replace their old values, every other point keeps its value, samples and statistics (asv's
    own ``selected_idx`` merge). Each file is replaced atomically.
    """
    from asv.benchmarks import Benchmarks
    from asv.results import Results, get_filename
    from asv.runner import BenchmarkResult

    suite, prov = run.suite, run.provenance
    label = label_for(prov, label)
    results_dir = Path(conf.results_dir)
    target_dir = results_dir / LABELS_DIR / label if label else results_dir
    points = {(repr(p.backend), repr(p.cell), repr(p.seq_len)): p for p in run.points}
    run_params = [_union([], [key[axis] for key in points]) for axis in range(len(PARAM_NAMES))]

    # benchmarks.json: the union of every run's params, so that older points stay addressable.
    bench_file = results_dir / "benchmarks.json"
    existing = json.loads(bench_file.read_text()) if bench_file.is_file() else {"version": 2}
    metrics = [m for m in METRICS if m.family in suite.metrics]
    benchmarks = {k: v for k, v in existing.items() if k != "version"}
    for metric in metrics:
        name = f"{suite.name}.{metric.name}"
        old = benchmarks.get(name, {}).get("params", [[] for _ in PARAM_NAMES])
        benchmarks[name] = _benchmark(suite, metric, [_union(o, n) for o, n in zip(old, run_params)])

    git = prov["git"]
    commit = git["commit"] or "0" * 40
    date = git["commit_date_ms"] or int(dt.datetime.now(dt.timezone.utc).timestamp() * 1000)
    machine = machine_info(prov)
    env = env_name(prov)
    libs = prov["libraries"]
    results = Results(_run_params(prov), {n: libs[n] for n in ("numpy", "torch", "numba") if libs.get(n)},
                      commit, date, prov["python"], env, {})
    results.load_data(str(target_dir))
    started = dt.datetime.fromisoformat(run.started_at)
    for metric in metrics:
        bench = benchmarks[f"{suite.name}.{metric.name}"]
        combos = list(itertools.product(*bench["params"]))
        values, samples, numbers = [], [], []
        for combo in combos:
            value, sample, number = _point_value(metric, points[combo]) if combo in points else (math.nan, None, None)
            values.append(value)
            samples.append(sample)
            numbers.append(number)
        this_run = {i for i, combo in enumerate(combos) if combo in points}
        results.add_result(bench, BenchmarkResult(result=values, samples=samples, number=numbers, errcode=0,
                                                  stderr="", profile=None),
                           record_samples=True, started_at=started, selected_idx=this_run)

    # Write everything into a scratch folder, then move each file into place atomically.
    results_dir.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".harness-asv-", dir=results_dir))
    try:
        results.save(str(scratch))
        filename = get_filename(machine["machine"], commit, env)
        final = target_dir / filename
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(scratch / filename, final)
        if not label:
            write_json_atomic(results_dir / machine["machine"] / "machine.json", {**machine, "version": 1})
        scratch_conf = copy.copy(conf)
        scratch_conf.results_dir = str(scratch)
        Benchmarks(scratch_conf, list(benchmarks.values())).save()
        os.replace(scratch / "benchmarks.json", bench_file)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return final


def unrepr(text: str) -> str:
    """The value behind asv's repr()-encoded string parameter."""
    return text[1:-1] if len(text) >= 2 and text[0] == text[-1] == "'" else text
