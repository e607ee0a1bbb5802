"""Synthetic runs with exact values, recorded into an asv database without measuring anything."""
from __future__ import annotations

import dataclasses
from pathlib import Path

from harness import suites
from harness.measure.timing import Measurement
from harness.record import asvdb, files
from harness.record.results import (OK, CompileResult, GradientProfile, LossAtInit, Memory, PointResult, RunResults,
                                    Times)
from tests.support.suites import write_suite

PROVENANCE = {"machine": "testbox", "os": "Linux", "arch": "x86_64", "cpu": "cpu", "cpu_count": 2, "gpu": None,
              "python": "3.11", "libraries": {"numpy": "2.0"}, "threads": 1,
              "git": {"commit": "a" * 40, "commit_date_ms": 1_700_000_000_000, "dirty": False}}


def synthetic_point(backend: str, seq_len: int, median: float, status: str = OK, horizon: int | None = 5,
                    steps: int | None = None, spread: float = 0.01, probe: float | None = None) -> PointResult:
    """An lstm point (H=4, B=2, as tests.support.suites.write_suite's suite) whose timings are 11 samples
    spread evenly over ``median`` * (1 +- ``spread``), with a machine probe of median ``probe`` if given
    (its samples as tight), or a failed/skipped one."""
    if status != OK:
        return PointResult(backend, "lstm", seq_len, "float32", status, reason="why", hidden=4, batch=2, init="default")
    samples = [median * (1 + spread * f) for f in (-1.0, -0.8, -0.6, -0.4, -0.2, 0.0, 0.2, 0.4, 0.6, 0.8, 1.0)]
    times = Times(Measurement(samples, 4), Measurement(samples, 4))
    if probe is not None:
        probes = Measurement([probe * (1 + f / 100) for f in (-1.0, 0.0, 1.0)], 10)
        times = Times.probed(times.forward, times.forward_backward, probes, probes, probes)
    gradient = GradientProfile(decay_rate=0.1, log10_ratio=1.0, horizon=horizon, exploded=horizon is None,
                        first_nonfinite_lag=None, vanished=False, g=(1.0,), gc=None)
    return PointResult(backend, "lstm", seq_len, "float32", OK, steps=steps or seq_len, loss=LossAtInit(1.0, 1.0),
                       time=times, memory=Memory(1000, "tracemalloc", 500), gradient=gradient, hidden=4, batch=2,
                       init="default")


def record_synthetic(tmp_path: Path, label: str, points: list[PointResult], suite_name: str = "tiny",
                     results_dir: Path | None = None, compile: list[CompileResult] = (), rounds: int = 8,
                     status: str = "complete", isolate: bool = True):
    """Record ``points`` (and compile times) as one run (``status``) of suite ``suite_name`` timed in
    ``rounds`` rounds (``isolate``: nothing beside the timings, as harness run --regression) under
    ``label`` in ``results_dir`` (tmp_path/results by default)."""
    suite = suites.load(write_suite(tmp_path / "suite")).with_overrides(rounds=rounds, repeat=4 * rounds,
                                                                         isolate=isolate)
    suite = dataclasses.replace(suite, name=suite_name)
    run = RunResults(suite=suite, started_at="2026-11-26T07:00:00+00:00", provenance=PROVENANCE, points=points,
                     compile=list(compile), status=status)
    conf = asvdb.load_config(path=tmp_path / "none.json", results_dir=results_dir or tmp_path / "results")
    return asvdb.record_run(run, conf, label=label), conf


def write_results_file(tmp_path: Path, provenance: dict, name: str = "run.json") -> Path:
    """A results file (suite "suite", as a user's shared file) of one synthetic numpy point with ``provenance``."""
    suite = suites.load(write_suite(tmp_path / "suite"))
    run = RunResults(suite=suite, started_at="2026-11-26T07:00:00+00:00", provenance=provenance,
                     points=[synthetic_point("numpy", 12, 1.0)])
    path = tmp_path / name
    files.write(path, run)
    return path
