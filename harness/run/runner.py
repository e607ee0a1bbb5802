"""Plan a suite's grid, run it backend by backend, and record every point as it finishes.

The results file is rewritten atomically after every point, so an interrupted or crashed run keeps
everything that finished. Unavailable backends and unsupported cells are recorded as skipped.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from harness.errors import HarnessError, check_choice
from harness.plugins import get_registry, machine_info
from harness.record import provenance, results
from harness.record.results import SKIPPED, BackendStatus, PointResult, RunResults
from harness.report.console import GridProgress
from harness.run.executor import Executor, LocalExecutor
from harness.run.grid import PointJob
from harness.suites import Suite


@dataclass
class Run:
    """A finished (or interrupted) run: its results and the file they are in."""

    path: Path
    results: RunResults
    interrupted: bool = False


def select_backends(spec: str) -> list[str]:
    """``all`` or a comma-separated list of installed backend names."""
    installed = sorted(get_registry().backends)
    if spec == "all":
        return installed
    names = [n.strip() for n in spec.split(",") if n.strip()]
    for name in names:
        check_choice("backend", name, installed, "installed backends")
    return names


def _fresh_path(folder: Path, stem: str) -> Path:
    """``stem.json`` in ``folder``, or ``stem-2.json``, ... when an earlier run took that name."""
    path, n = folder / f"{stem}.json", 1
    while path.exists():
        n += 1
        path = folder / f"{stem}-{n}.json"
    return path


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat()


def run_suite(
    suite: Suite,
    backends: list[str],
    results_dir: str | Path = "results",
    output: str | Path | None = None,
    executor: Executor | None = None,
    progress: bool = True,
) -> Run:
    """Run every point of ``suite`` on ``backends``; the results file is up to date after each point."""
    registry = get_registry()
    task = registry.task(suite.task)  # unknown task: a clear error before anything runs
    too_short = [t for t in suite.seq_lens if t < task.min_seq_len]
    if too_short:
        raise HarnessError(f"sequence length {too_short[0]} is too short for task {task.name!r} "
                           f"(minimum {task.min_seq_len})")
    executor = executor or LocalExecutor()
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    path = Path(output) if output else _fresh_path(Path(results_dir) / "runs", f"{suite.name}-{stamp}")
    run = Run(path, RunResults(suite=suite, started_at=_now(),
                               provenance={**provenance.collect(suite.threads), "plugins": machine_info()}))
    data = run.results
    bar = GridProgress(len(backends) * len(suite.cells) * len(suite.seq_lens), enabled=progress)

    def record(point: PointResult) -> None:
        data.points.append(point)
        results.write(path, data)
        bar.advance(point)

    try:
        with bar:
            for name in backends:
                cls = registry.backend_class(name)
                availability = cls.availability()
                data.backends[name] = BackendStatus(availability.available, availability.reason, cls.description)
                jobs = []
                for cell in suite.cells:
                    support = cls.supports(cell, suite.dtype) if availability else availability
                    for seq_len in suite.seq_lens:
                        if support:
                            jobs.append(PointJob(name, cell, seq_len, suite))
                        else:
                            record(PointResult(name, cell, seq_len, suite.dtype, SKIPPED, reason=support.reason))
                if not jobs:
                    continue
                bar.start(jobs[0])

                def on_result(job: PointJob, point: PointResult, jobs: list[PointJob] = jobs) -> None:
                    record(point)
                    bar.start(_next(jobs, job))

                executor.run(name, jobs, on_result, threads=suite.threads, timeout=suite.timing.timeout)
                data.backends[name] = BackendStatus(availability.available, availability.reason, cls.description,
                                                    info=executor.backend_info.get(name, {}))
        data.status = "complete"
    except KeyboardInterrupt:
        data.status = "interrupted"
        run.interrupted = True
    finally:
        data.finished_at = _now()
        results.write(path, data)
    return run


def _next(jobs: list[PointJob], done: PointJob) -> PointJob | None:
    """The job after ``done`` in ``jobs``: what the worker runs next, for the progress bar."""
    index = jobs.index(done) + 1
    return jobs[index] if index < len(jobs) else None
