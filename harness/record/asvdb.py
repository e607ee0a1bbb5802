"""Record runs into an asv results database through asv's own Python API (asv 0.6.*).

asv is the storage and presentation layer only: the harness never runs ``asv run``. Each suite
metric is one asv benchmark ``<suite>.<metric>`` with params backend x cell x seq_len x hidden x batch
x init; a run at a commit is one asv ``Results`` (machine, commit, environment). Values: NaN = skipped, null = failed.
Every metric is oriented so that larger is worse, because asv flags upward steps as regressions;
the exceptions, GFLOP/s and the fraction of peak, are derived from the time and never marked by compare.

Runs from a dirty tree (or with ``--label``) are stored under ``results/labels/<label>/``, which
has no ``machine.json`` and is therefore invisible to ``asv publish``: they never enter the
history graphs, but ``harness compare`` can read them.

asv's API, internals included (see docs/references.md, "asv"), is called through
:mod:`harness.record.asvapi`, the one module that imports asv; tests/test_asvdb.py fails loudly if a
new asv version changes what it uses.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import html
import itertools
import json
import math
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import HarnessError, check_name
from harness.measure.probe import PROBE_VERSION
from harness.record import asvapi, outcomes
from harness.record.provenance import PEAK_VERSION, git
from harness.record.files import write_json_atomic
from harness.record.results import FAILED, OK, CompileResult, PointResult, RunResults, RunStatus
from harness.suites import Mode, Suite

CONFIG_FILE = "asv.conf.json"
METRIC_DEFINITIONS_VERSION = 3  # bump when a metric's meaning changes: asv then starts a new series
ASV_PARAMS = ["backend", "cell", "seq_len", "hidden", "batch", "init"]
TRAIN_ASV_PARAMS = (*ASV_PARAMS, "clip")  # training points: the clipping threshold is an axis too
LABELS_DIR = "labels"
PROBE_METRIC = "machine_probe"  # the machine probe's own benchmark (measure/probe.py)
VS_PROBE = "_vs_probe"  # the suffix of a timing's benchmark in units of the probe: what compare judges


Points = list  # the records of one asv point: one PointResult for `harness run`, one per seed for training,
              # one CompileResult for a compile time


@dataclass(frozen=True)
class Metric:
    """One asv benchmark per suite: how to read its value (and samples) from the records of a point."""

    name: str
    family: str  # what it needs: the suite's measurement family (time, memory, gradient) or "train"
    type: str  # asv benchmark type: "time", "memory" or "track"
    unit: str
    value: Callable[[Points], float | None]
    samples: Callable[[Points], list[float] | None] = lambda points: None
    number: Callable[[Points], int | None] = lambda points: None  # calls per sample; None: tracked value
    description: str = ""
    param_names: tuple[str, ...] = tuple(ASV_PARAMS)
    derived_from: str = ""  # a metric computed from another (GFLOP/s from the time): compare marks only that one
    definition: str = ""  # what else defines it (the probe's version): part of its asv version where set

    def groups(self, run: RunResults) -> dict[tuple[str, ...], Points]:
        """The run's records per asv point, keyed by the repr()-encoded params."""
        found: dict[tuple[str, ...], Points] = {}
        if self.family == "compile":
            for c in run.compile:
                found.setdefault((repr(c.backend), repr(c.cell), repr(c.dtype)), []).append(c)
        else:
            for p in run.points:  # a training point's clip is an axis of its own
                found.setdefault(tuple(map(repr, p.key + ((p.clip,) if self.family == "train" else ()))), []).append(p)
        return found


def _first(read: Callable[[PointResult], Any]) -> Callable[[Points], Any]:
    """A benchmark point of `harness run` has exactly one record."""
    return lambda points: read(points[0])


def _timing(kind: str) -> dict[str, Callable[[Points], Any]]:
    """A Measurement of ``Times`` as asv stores a timing; NaN (not measured) where a file from before
    the machine probe lacks it."""
    read = _first(lambda p: getattr(p.time, kind))
    return {"value": lambda points: read(points).median if read(points) else math.nan,
            "samples": lambda points: list(read(points).samples) if read(points) else None,
            "number": lambda points: read(points).number if read(points) else None}


def _compile_times(cache: str) -> dict[str, Callable[[Points], Any]]:
    """A compile time's value and, where recorded, its samples (one call each), as asv stores a timing's."""
    samples = _first(lambda c: list(getattr(c, f"{cache}_samples")) or None)
    return {"value": _first(lambda c: getattr(c, f"{cache}_s")), "samples": samples,
            "number": lambda points: 1 if samples(points) else None}


def _finite_or_nan(value: float) -> float:
    return float(value) if math.isfinite(value) else math.nan


def horizon_shortfall(point: PointResult) -> int:
    """steps - reach: how many steps short of the sequence start the gradient stays within
    [1e-6, 1e6] x g_T (measure/gradients.DecayMetrics.reach): positive for vanishing and for growth,
    all of them when g_T is 0 or not finite. 0 only for a profile that neither vanishes nor grows."""
    reach = point.gradient.reach
    return point.steps - (0 if reach is None else reach)


METRICS = (
    Metric("time_forward", "time", "time", "seconds", **_timing("forward"),
           description="median time of the recurrent layer's forward pass"),
    Metric("time_forward_backward", "time", "time", "seconds", **_timing("forward_backward"),
           description="median time of forward plus backpropagation through time"),
    Metric(PROBE_METRIC, "time", "time", "seconds", **_timing("probe"),
           description="a fixed NumPy workload timed before, between and after the point's timings "
                       "(measure/probe.py): how fast the machine was then", definition=f"probe {PROBE_VERSION}"),
    *(Metric(f"time_{kind}{VS_PROBE}", "time", "track", "probes", **_timing(f"{kind}{VS_PROBE}"),
             description=f"time_{kind} in units of the machine probes timed on either side of it: what harness "
                         "compare judges", definition=f"probe {PROBE_VERSION}")
      for kind in ("forward", "forward_backward")),
    Metric("peak_memory", "memory", "memory", "bytes", _first(lambda p: p.memory.peak_bytes),
           description="peak bytes allocated from prepare to the end of backward"),
    Metric("compile_time_cold", "compile", "track", "seconds", **_compile_times("cold"),
           description="a fresh process's first call minus the median call, with an empty compilation cache",
           param_names=("backend", "cell", "dtype")),
    Metric("compile_time_warm", "compile", "track", "seconds", **_compile_times("warm"),
           description="a fresh process's first call minus the median call, with the cache a first process left",
           param_names=("backend", "cell", "dtype")),
    Metric("grad_abs_decay_rate", "gradient", "track", "decades/step",
           _first(lambda p: abs(_finite_or_nan(p.gradient.decay_rate))),
           description="|least-squares slope of log10 g_t against the lag|: 0 is a flat profile"),
    Metric("grad_abs_log10_ratio", "gradient", "track", "decades",
           _first(lambda p: abs(_finite_or_nan(p.gradient.log10_ratio))),
           description="|log10(g_T / g_1)|; NaN when the profile overflowed"),
    Metric("grad_horizon_shortfall", "gradient", "track", "steps", _first(horizon_shortfall),
           description="steps - reach (the lags within [1e-6, 1e6] x g_T): how far short of the sequence start "
                       "gradients reach, by vanishing or by growing"),
)


TRAIN_METRICS = (
    Metric("train_final_loss_ratio", "train", "track", "ratio",
           lambda points: float(np.mean([p.training.final_ratio for p in points])),
           description="last eval loss / the task's memoryless baseline, mean over the seeds (below 1 learns)",
           param_names=TRAIN_ASV_PARAMS),
    Metric("train_iterations_to_solve", "train", "track", "iterations",
           lambda points: _finite_or_nan(outcomes.median_iterations(points)),
           description="Kaplan-Meier median over the seeds of the first eval iteration meeting the task's solved "
                       "criterion, unsolved runs right-censored; NaN (not drawn) when fewer than half solved",
           param_names=TRAIN_ASV_PARAMS),
    Metric("train_unsolved_fraction", "train", "track", "ratio",
           lambda points: sum(p.training.solved_at is None for p in points) / len(points),
           description="the share of the seeds that did not meet the task's solved criterion within the budget",
           param_names=TRAIN_ASV_PARAMS),
    Metric("train_time_per_iteration", "train", "track", "seconds",
           lambda points: float(np.median([p.training.times.iteration_s for p in points])),
           description="median seconds per training iteration (backend forward + backward and the core's share)",
           param_names=TRAIN_ASV_PARAMS),
)


def load_config(path: str | os.PathLike = CONFIG_FILE, results_dir: str | None = None):
    """asv's Config from ``asv.conf.json``, or asv's defaults for this layout if there is none."""
    if Path(path).is_file():
        conf = asvapi.load_config(path)
    else:
        conf = asvapi.config_from_dict({"version": 1, "project": "rnn-grad-harness", "repo": ".", "dvcs": "git",
                                        "branches": ["main"], "results_dir": "results", "html_dir": "results/html"})
    if results_dir is not None:
        conf.results_dir = str(results_dir)
        conf.html_dir = str(Path(results_dir) / "html")
    conf.branches = followed_branches(conf.repo, list(conf.branches or []))
    return conf


def followed_branches(repo: str, configured: list[str]) -> list[str]:
    """The branches whose commits the history graphs follow: the configured ones the repository has,
    else its current branch (a repository whose branch is ``master``, or a fork without ``main``),
    else the configured ones as they are (not a git checkout: asv says so when it publishes)."""
    existing = [b for b in configured if git(repo, "rev-parse", "--verify", "--quiet", f"refs/heads/{b}")]
    current = git(repo, "symbolic-ref", "--quiet", "--short", "HEAD")
    return existing or ([current] if current else configured)


def on_followed_branch(conf, commit: str) -> bool:
    """Whether ``commit`` is on one of the branches the history graphs follow (asv draws no other)."""
    return any(git(conf.repo, "merge-base", "--is-ancestor", commit, branch) is not None for branch in conf.branches)


def benchmark_version(suite: Suite, metric: Metric) -> str:
    """Derived from what defines the measured quantity, never from backend code (asv drops results
    whose version differs from benchmarks.json's)."""
    keys = ("task", "dtype", "seeds")  # H, B and the init are params (axes of the grid)
    defines: dict[str, Any] = {k: getattr(suite, k) for k in keys}
    if metric.family == "train":  # the training settings, less the grid axes and the time limit
        defines["train"] = {k: v for k, v in dataclasses.asdict(suite.train).items()
                            if k not in ("seq_lens", "timeout", "clip", "clips")}
    defined = {"suite": defines, "metric": metric.name, "definitions": METRIC_DEFINITIONS_VERSION}
    if metric.definition:  # only where set: every other metric keeps the version (and history) it had
        defined["definition"] = metric.definition
    blob = json.dumps(defined, sort_keys=True)
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
        "param_names": list(metric.param_names),
        "version": benchmark_version(suite, metric),
        "code": f"# recorded by harness; suite {suite.name} ({suite.task}), metric {metric.name}\n"
                f"# {metric.description}",
        "timeout": suite.timing.timeout,
    }


def _text(value: Any) -> str:
    """Free text (a CPU or GPU model, the OS) as asv shows it: escaped, since asv's machine tooltip
    renders machine.json as HTML (``html.escape`` leaves ordinary model names unchanged)."""
    return html.escape(str(value), quote=True)


def asv_machine(prov: dict) -> dict:
    """asv's machine description (machine.json's fields) from a run's provenance: the machine that measured
    it, one of several for a Dask run, and not the one recording. asv's ``Machine.get_defaults()`` describes
    the recording process's own machine (host name rather than ``$HARNESS_MACHINE``, RAM in bytes), so it
    is not used here; only the RAM is read on this machine (:func:`_ram`)."""
    return {"machine": check_name("machine name", prov["machine"]), "os": _text(prov["os"]),
            "arch": _text(prov["arch"]), "cpu": _text(prov["cpu"]), "num_cpu": str(prov["cpu_count"]),
            "ram": _text(_ram()), "gpu": _text(prov.get("gpu") or "")}


def _ram() -> str:
    try:
        with open("/proc/meminfo") as f:
            return f.readline().split(":")[1].strip()
    except OSError:
        return ""


def env_name(prov: dict) -> str:
    """The asv environment: part of a results file's name, so every version in it is checked."""
    libs = prov["libraries"]
    check_name("python version", prov["python"], version=True)
    for n in ("numpy", "torch", "numba"):
        if libs.get(n):
            check_name(f"{n} version", libs[n], version=True)
    parts = [f"py{prov['python']}"] + [f"{n}{libs[n]}" for n in ("numpy", "torch", "numba") if libs.get(n)]
    return "harness-" + "-".join(parts) + f"-threads{int(prov['threads'])}"


class MalformedRun(HarnessError):
    """A results file whose provenance cannot be recorded (a field missing, of the wrong type, or a
    name that would become an unsafe path): nothing of the asv database is touched."""


_PROVENANCE_TEXT = ("os", "arch", "cpu")


def check_provenance(prov: Any) -> None:
    """What :func:`_record` reads of a run's provenance, checked before the database is opened:
    a :class:`MalformedRun` names the field and the problem."""
    def bad(field: str, problem: str) -> MalformedRun:
        return MalformedRun(f"provenance.{field} {problem}")

    if not isinstance(prov, dict):
        raise MalformedRun(f"provenance is not an object ({type(prov).__name__})")
    for key in ("machine", *_PROVENANCE_TEXT, "python", "cpu_count", "libraries", "threads", "git"):
        if key not in prov:
            raise bad(key, "is missing")
    for key in ("machine", *_PROVENANCE_TEXT, "python"):
        if not isinstance(prov[key], str):
            raise bad(key, f"must be text, got {prov[key]!r:.80}")
    if prov.get("gpu") is not None and not isinstance(prov["gpu"], str):
        raise bad("gpu", f"must be text or null, got {prov['gpu']!r:.80}")
    for key in ("cpu_count", "threads"):  # os.cpu_count() may not know
        if (prov[key] is not None or key == "threads") and (
                isinstance(prov[key], bool) or not isinstance(prov[key], int) or prov[key] < 1):
            raise bad(key, f"must be a positive integer, got {prov[key]!r:.80}")
    libs = prov["libraries"]
    if not isinstance(libs, dict) or not all(isinstance(v, str) or v is None for v in libs.values()):
        raise bad("libraries", "must map library names to version text or null")
    git = prov["git"]
    if not isinstance(git, dict) or not {"commit", "commit_date_ms", "dirty"} <= set(git):
        raise bad("git", "must be an object with commit, commit_date_ms and dirty")
    if git["commit"] is not None and not (isinstance(git["commit"], str) and _COMMIT.fullmatch(git["commit"])):
        raise bad("git.commit", f"must be a hexadecimal commit hash or null, got {git['commit']!r:.80}")
    date = git["commit_date_ms"]
    if date is not None and (isinstance(date, bool) or not isinstance(date, int)):
        raise bad("git.commit_date_ms", f"must be an integer or null, got {date!r:.80}")
    try:
        check_name("machine name", prov["machine"])
        env_name(prov)
    except HarnessError as exc:
        raise MalformedRun(f"provenance: {exc}") from None


_COMMIT = re.compile(r"[0-9a-f]{7,64}")


def _run_params(prov: dict) -> dict:
    libs = prov["libraries"]
    params = {**asv_machine(prov), "python": prov["python"], "threads": str(prov["threads"])}
    params.update({n: libs[n] for n in ("numpy", "torch", "numba") if libs.get(n)})
    return params


def label_for(prov: dict, label: str | None) -> str | None:
    """The label a run is stored under, or None for a history point (a clean, committed tree)."""
    git = prov["git"]
    if label:
        return check_name("label", label)
    if git["commit"] is None:
        return "no-git"
    if git["dirty"]:
        return f"dirty-{git['commit'][:8]}"
    return None


def _failed(record: PointResult | CompileResult) -> bool:
    gradient = getattr(record, "gradient", None)  # a CompileResult has none
    return record.status == FAILED or (gradient is not None and gradient.broken)


def _point_value(metric: Metric, records: Points,
                 complete: bool = True) -> tuple[float | None, list | None, int | None]:
    """asv's encoding of one point: None if a record failed, NaN if none was measured (skipped or
    interrupted), else value, samples, number. A point whose gradients are broken (non-finite with no
    explosion to explain them: GradientProfile.broken) counts as failed: a backend that computes NaN
    may be fast, and its timings must not sit in the history beside healthy ones.

    In a complete run a record that is ok has every family its suite measured; a missing one is a
    bug (schema drift) and raises, rather than becoming a silent NaN in the history. An interrupted
    run may have stopped between a point's timings and its gradient profile and memory peak
    (runner._profile): those are NaN."""
    if any(_failed(p) for p in records):
        return None, None, None
    ok = [p for p in records if p.status == OK]
    if not complete and metric.family in ("time", "memory", "gradient"):
        ok = [p for p in ok if getattr(p, metric.family) is not None]
    if not ok:
        return math.nan, None, None
    return metric.value(ok), metric.samples(ok), metric.number(ok)


def roofline_metrics(run: RunResults | None = None) -> tuple[Metric, ...]:
    """Achieved GFLOP/s and the fraction of the peak (which needs the run: its machines' roofs)."""
    return (
        Metric("gflops_forward_backward", "time", "track", "GFLOP/s", _first(lambda p: p.gflops()),
               description="analytic GEMM FLOPs of forward + backward over the median time",
               derived_from="time_forward_backward"),
        Metric("peak_fraction_forward_backward", "time", "track", "fraction",
               _first(lambda p: run.peak_fraction(p) if run is not None else None),
               description="achieved GFLOP/s over the peak of the device that ran it: a CPU's FMA roof "
                           "(measure/roof.py), a GPU's GEMM peak",
               derived_from="time_forward_backward", definition=PEAK_VERSION),
    )


def metric_named(name: str) -> Metric | None:
    """The metric of an asv benchmark name (``suite.metric``), for what its values mean."""
    short = name.split(".", 1)[-1]
    return next((m for m in (*METRICS, *TRAIN_METRICS, *roofline_metrics()) if m.name == short), None)


def metrics_for(run: RunResults) -> list[Metric]:
    """The asv benchmarks a run records: training metrics, or the run metrics of its suite's families."""
    if run.mode == Mode.TRAIN:
        return list(TRAIN_METRICS)
    return [m for m in (*METRICS, *roofline_metrics(run))
            if m.family in run.suite.metrics or (m.family == "compile" and run.compile)]


#: The asv results file's env_vars keys that hold how the run recorded was timed: its number of timing
#: rounds, and "1" where nothing ran beside the timings (``[timing] isolate``), else "0".
TIMING_ROUNDS = "HARNESS_TIMING_ROUNDS"
TIMING_ISOLATED = "HARNESS_TIMING_ISOLATED"


def database_lock(results_dir: str | os.PathLike):
    """The inter-process lock every reader-modifier-writer of the asv database holds (recording,
    publishing): concurrent runs and a concurrent publish lose nothing."""
    from filelock import FileLock

    Path(results_dir).mkdir(parents=True, exist_ok=True)
    return FileLock(str(Path(results_dir) / ".harness-asv.lock"))


def record_run(run: RunResults, conf, label: str | None = None) -> list[Path]:
    """Add one finished run to the asv database, under :func:`database_lock`, one asv machine per
    machine that measured it (a Dask cluster's records come from several); returns the files written.

    Re-recording at the same commit, machine and environment merges: the points of this run
    replace their old values, every other point keeps its value, samples and statistics (asv's
    own ``selected_idx`` merge). Each file is replaced atomically.
    """
    check_provenance(run.provenance)  # a malformed results file is not a damaged database
    for name, prov in run.machines.items():
        where = f"machines[{name!r}]"
        if not isinstance(prov, dict):
            raise MalformedRun(f"{where} is not an object")
        try:
            check_provenance({**run.provenance, **prov})
        except MalformedRun as exc:
            raise MalformedRun(f"{where}: {exc}") from None
    try:
        dt.datetime.fromisoformat(run.started_at)
    except (TypeError, ValueError):
        raise MalformedRun(f"started_at {run.started_at!r:.80} is not an ISO date and time") from None
    parts = run.by_machine().values()
    for part in parts:
        check_provenance(part.provenance)
    with database_lock(conf.results_dir):
        try:
            return [_record(part, conf, label) for part in parts]
        except (ValueError, KeyError, TypeError) as exc:  # a truncated or hand-edited database file
            raise HarnessError(f"the asv database in {conf.results_dir} is damaged ({type(exc).__name__}: {exc}); "
                               f"repair or remove the file, then `harness record RUN.json`") from None


def _record(run: RunResults, conf, label: str | None) -> Path:
    suite, prov = run.suite, run.provenance
    label = label_for(prov, label)
    results_dir = Path(conf.results_dir)
    target_dir = results_dir / LABELS_DIR / label if label else results_dir
    metrics = metrics_for(run)
    groups = {metric.name: metric.groups(run) for metric in metrics}

    # benchmarks.json: the union of every run's params, so that older points stay addressable.
    bench_file = results_dir / "benchmarks.json"
    existing = json.loads(bench_file.read_text()) if bench_file.is_file() else {"version": 2}
    benchmarks = {k: v for k, v in existing.items() if k != "version"}
    for metric in metrics:
        name = f"{suite.name}.{metric.name}"
        run_params = [_union([], [key[axis] for key in groups[metric.name]]) for axis in range(len(metric.param_names))]
        old = benchmarks.get(name, {}).get("params", [[] for _ in metric.param_names])
        benchmarks[name] = _benchmark(suite, metric, [_union(o, n) for o, n in zip(old, run_params)])

    git = prov["git"]
    commit = git["commit"] or "0" * 40
    date = git["commit_date_ms"] or int(dt.datetime.now(dt.timezone.utc).timestamp() * 1000)
    machine = asv_machine(prov)
    env = env_name(prov)
    libs = prov["libraries"]
    # How many timing rounds stand behind the timings (harness compare warns below REGRESSION_TIMING's):
    # asv keeps env_vars with the results file and uses them for nothing else.
    rounds = ({TIMING_ROUNDS: str(suite.timing.passes), TIMING_ISOLATED: str(int(suite.timing.isolate))}
              if run.mode == Mode.RUN else {})
    results = asvapi.new_results(_run_params(prov), {n: libs[n] for n in ("numpy", "torch", "numba") if libs.get(n)},
                                 commit, date, prov["python"], env, rounds)
    asvapi.load_existing(results, target_dir)
    started = dt.datetime.fromisoformat(run.started_at)
    for metric in metrics:
        bench, points = benchmarks[f"{suite.name}.{metric.name}"], groups[metric.name]
        combos = list(itertools.product(*bench["params"]))
        values, samples, numbers = [], [], []
        for combo in combos:
            value, sample, number = (_point_value(metric, points[combo], run.status == RunStatus.COMPLETE)
                                     if combo in points else (math.nan, None, None))
            values.append(value)
            samples.append(sample)
            numbers.append(number)
        this_run = {i for i, combo in enumerate(combos) if combo in points}
        asvapi.add_benchmark_result(results, bench, values, samples, numbers, started_at=started,
                                    selected_idx=this_run)

    # Write everything into a scratch folder, then move each file into place atomically.
    results_dir.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".harness-asv-", dir=results_dir))
    try:
        asvapi.save_results(results, scratch)
        filename = asvapi.results_filename(machine["machine"], commit, env)
        final = target_dir / filename
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(scratch / filename, final)
        if not label:
            write_json_atomic(results_dir / machine["machine"] / "machine.json", {**machine, "version": 1})
        asvapi.save_benchmarks(conf, list(benchmarks.values()), scratch)
        os.replace(scratch / "benchmarks.json", bench_file)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return final


def unrepr(text: str) -> str:
    """The value behind asv's repr()-encoded string parameter."""
    return text[1:-1] if len(text) >= 2 and text[0] == text[-1] == "'" else text
