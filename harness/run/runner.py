"""Plan a suite's grid, run it backend by backend, and record every point as it finishes.

The results file is rewritten atomically after every point, so an interrupted or crashed run keeps
everything that finished. Unavailable backends and unsupported cells are recorded as skipped.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from harness.cells import activation_bytes
from harness.errors import HarnessError
from harness.plugins import get_registry, machine_info, plugin_statuses
from harness.record import provenance, results
from harness.record.results import (INTERRUPTED, OK, SKIPPED, BackendStatus, PointResult,
                                    RunResults)
from harness.report.console import GridProgress
from harness.run.executor import Executor, LocalExecutor, allowed_cpus
from harness.run.grid import PointJob, build_ahead, vet_cell
from harness.suites import Suite


@dataclass
class Run:
    """A finished (or interrupted) run: its results and the file they are in."""

    path: Path
    results: RunResults
    interrupted: bool = False


def select_backends(spec: str) -> list[str]:
    """``all`` or a comma-separated list of installed backend names."""
    registry = get_registry()
    if spec == "all":
        return sorted(registry.backends)
    names = [n.strip() for n in spec.split(",") if n.strip()]
    for name in names:
        registry.backend_class(name)  # an unknown name says which plugins did not load, and why
    return names


def claim_path(folder: Path, stem: str) -> Path:
    """Create ``stem.json`` in ``folder`` exclusively, or ``stem-2.json``, ... when another run (even
    one started in the same second, in another process) has it: no read-then-write race."""
    folder.mkdir(parents=True, exist_ok=True)
    n = 1
    while True:
        path = folder / (f"{stem}.json" if n == 1 else f"{stem}-{n}.json")
        try:
            with open(path, "x"):
                return path
        except FileExistsError:
            n += 1


def claim_output(path: Path, force: bool = False) -> Path:
    """Check, before measuring anything, that ``path`` can be written as a results file: a new path
    (created here, exclusively), or with ``force`` an existing regular file. A symbolic link, a
    folder, a device or a FIFO is refused, as is an existing file without ``force``."""
    import stat

    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        mode = None
    if mode is not None:
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(21, "is a folder, not a file", str(path))
        kind = ("a symbolic link" if stat.S_ISLNK(mode) else "a FIFO" if stat.S_ISFIFO(mode) else
                "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "a socket" if stat.S_ISSOCK(mode) else
                None if stat.S_ISREG(mode) else "not a regular file")
        if kind:
            raise HarnessError(f"cannot write the results file {path}: it is {kind}; --output must name a new "
                               f"path or a regular file")
        if not force:
            raise HarnessError(f"cannot write the results file {path}: it exists; add --force to replace it, or "
                               f"name a new path")
        with open(path, "a"):  # writable (it is replaced as a whole when the first point is recorded)
            return path
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "x"):
        return path


def check_fits_in_memory(suite: Suite, task, mode: str) -> None:
    """Refuse, before anything runs, a point whose stored activations cannot fit in this machine's
    memory: about 4 x the analytic activations (forward's, their gradients, per-step gradients, inputs)."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for hidden, batch in suite.sizes(mode):
        if mode == "train":
            batch = max(suite.train.batch, suite.train.eval_size)
        for T in suite.train.seq_lens if mode == "train" else suite.seq_lens:
            for cell in suite.cells:
                need = 4 * activation_bytes(cell, task.steps(T), batch, hidden, suite.dtype)
                if need > total:
                    raise HarnessError(f"sequence length {T} needs about {need / 2**30:.3g} GiB for {cell} "
                                       f"(B={batch}, H={hidden}, {suite.dtype}); this machine has "
                                       f"{total / 2**30:.3g} GiB")


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat()


def _jobs(suite: Suite, mode: str, backend: str, cell: str, problems: str | None = None) -> list[PointJob]:
    """The points of one backend and cell: every init, (H, B) and T (and, for training, every seed)."""
    if mode == "train":
        return [PointJob(backend, cell, T, suite.at(h, b, init, clip), mode, seed)
                for init in suite.init_axis for clip in suite.train.clip_axis
                for h, b in suite.sizes(mode) for T in suite.train.seq_lens for seed in suite.train.seeds]
    return [PointJob(backend, cell, T, suite.at(h, b, init), problems=problems)
            for init in suite.init_axis for h, b in suite.sizes() for T in suite.seq_lens]


def run_suite(
    suite: Suite,
    backends: list[str],
    results_dir: str | Path = "results",
    output: str | Path | None = None,
    executor: Executor | None = None,
    progress: bool = True,
    mode: str = "run",
    force: bool = False,
) -> Run:
    """Run every point of ``suite`` on ``backends`` (``mode`` run: measure; train: learn the task);
    the results file is up to date after each point."""
    registry = get_registry()
    task = registry.task(suite.task)  # unknown task: a clear error before anything runs
    too_short = [t for t in (suite.train.seq_lens if mode == "train" else suite.seq_lens) if t < task.min_seq_len]
    if too_short:
        raise HarnessError(f"sequence length {too_short[0]} is too short for task {task.name!r} "
                           f"(minimum {task.min_seq_len})")
    check_fits_in_memory(suite, task, mode)
    executor = executor or LocalExecutor()
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    stem = f"{suite.name}-{'train-' if mode == 'train' else ''}{stamp}"
    try:
        path = claim_output(Path(output), force) if output else claim_path(Path(results_dir) / "runs", stem)
    except OSError as exc:  # a read-only results directory, one under a file, an output that is a folder
        raise HarnessError(f"cannot write the results file: {exc.strerror or exc}: "
                           f"{exc.filename or output or results_dir}") from None
    run = Run(path, RunResults(suite=suite, started_at=_now(), mode=mode,
                               provenance={**provenance.collect(suite.threads), "plugins": machine_info(),
                                           "plugin_status": plugin_statuses()}))
    data = run.results
    data.machines = executor.machines  # filled in as points come back from other machines
    per_cell = len(_jobs(suite, mode, "", ""))
    bar = GridProgress(len(backends) * len(suite.cells) * per_cell, enabled=progress,
                       axes=suite.axes(mode))
    timeout = suite.train.timeout if mode == "train" else suite.timing.timeout
    running: dict[PointJob, PointResult] = {}  # the partial records of the points now running
    # the problems of the grid, built once for every backend (grid.build); removed with the run
    problems = tempfile.mkdtemp(prefix="harness-problems-") if mode == "run" else None

    def record(point: PointResult) -> None:
        data.points.append(point)
        results.write(path, data)
        bar.advance(point)

    def on_progress(job: PointJob, partial: PointResult) -> None:
        running[job] = partial
        bar.progress(job, partial)

    try:
        with bar:
            jobs = []
            unfit = {cell: vet_cell(task, cell, suite) for cell in suite.cells}  # a broken cell: its points only
            for name in backends:
                cls = registry.backend_class(name)
                availability = executor.availability(name)
                data.backends[name] = BackendStatus(availability.available, availability.reason, cls.description)
                for cell in suite.cells:
                    support = cls.supports(cell, suite.dtype) if availability else availability
                    status, reason = (SKIPPED, support.reason) if not support else unfit[cell] or (OK, "")
                    for job in _jobs(suite, mode, name, cell, problems):
                        if status == OK:
                            jobs.append(job)
                        else:
                            record(PointResult(name, cell, job.seq_len, suite.dtype, status, reason=reason,
                                               seed=job.seed, hidden=job.suite.hidden, batch=job.suite.batch,
                                               init=job.suite.init, clip=job.suite.clip if mode == "train" else None))
            if jobs and problems and isinstance(executor, LocalExecutor):  # its workers read this folder
                seeds = suite.seeds if "gradient" in suite.metrics else suite.seeds[:1]
                points = [(job.cell, job.seq_len, job.suite, seed) for job in jobs for seed in seeds]
                processes = len(allowed_cpus())
                bar.note(f"building the grid's problems (float64 reference) on {processes} CPUs")
                build_ahead(task, points, problems, processes)
            if jobs:
                bar.start(jobs[0])

                def on_result(job: PointJob, point: PointResult) -> None:
                    running.pop(job, None)
                    record(point)
                    bar.start(_next(jobs, job))

                executor.run(jobs, on_result, threads=suite.threads, timeout=timeout, on_progress=on_progress)
            for name in {job.backend for job in jobs}:
                data.backends[name] = dataclasses.replace(data.backends[name],
                                                          info=executor.backend_info.get(name, {}))
            if mode == "run" and "time" in suite.metrics:
                for name, cell in dict.fromkeys((job.backend, job.cell) for job in jobs):
                    if registry.backend_class(name).compiles:
                        bar.start(PointJob(name, cell, min(suite.seq_lens), suite, "compile"))
                        data.compile.append(executor.measure_compile(name, cell, suite))
                        results.write(path, data)
                for round_ in range(2, suite.timing.passes + 1):
                    _timing_round(executor, data, round_, bar, lambda: results.write(path, data), problems)
            if mode == "run":  # after every timing: this process computes, no worker is timing
                _explain_gradients(data, task, bar, lambda: results.write(path, data), problems)
        data.status = "complete"
    except HarnessError as exc:  # the executor lost its cluster: what finished is kept
        data.status = "interrupted"
        raise HarnessError(f"{exc}; the {len(data.points)} finished points are kept in {path}") from None
    except KeyboardInterrupt:
        for partial in running.values():  # a training point keeps the curve it had when stopped
            data.points.append(dataclasses.replace(partial, status=INTERRUPTED, reason="interrupted (Ctrl-C)"))
        data.status = "interrupted"
        run.interrupted = True
    finally:
        if problems:
            shutil.rmtree(problems, ignore_errors=True)
        data.finished_at = _now()
        results.write(path, data)
    return run


def _explain_gradients(data: RunResults, task, bar: GridProgress, save: Callable[[], None],
                       problems: str | None) -> None:
    """W_hh's spectra and the top Lyapunov exponents beside every gradient profile (measure/dynamics.py).
    They depend on the cell, weights and data, not on the backend: the core computes them once per
    point of the grid, in float64, from the very problems the backends were given, on every CPU (no
    timing runs any more) and one BLAS thread per process."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    from harness.run.grid import _one_blas_thread

    suite, where = data.suite, {}
    for i, p in enumerate(data.points):
        if p.status == OK and p.gradient is not None:
            where.setdefault((p.cell, p.seq_len, p.hidden, p.batch, p.init), []).append(i)
    if not where:
        return
    bar.add(len(where))
    with ProcessPoolExecutor(min(len(where), len(allowed_cpus())), initializer=_one_blas_thread,
                             mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(_explanation, task.name, cell, seq_len, suite.at(hidden, batch, init), problems):
                   (cell, seq_len, hidden, batch, init)
                   for cell, seq_len, hidden, batch, init in sorted(where, key=lambda key: -key[1])}
        for future in as_completed(futures):
            indices = where[futures[future]]
            fields = future.result()
            for i in indices:
                point = data.points[i]
                data.points[i] = dataclasses.replace(point, gradient=dataclasses.replace(point.gradient, **fields))
            bar.advance(dataclasses.replace(data.points[indices[0]], backend="core"),
                        "spectra and Lyapunov exponents")
            save()


def _explanation(task_name: str, cell: str, seq_len: int, at: Suite, problems: str | None) -> dict:
    """One point's spectra and exponents (in a process of the pool of :func:`_explain_gradients`)."""
    from harness.measure import dynamics
    from harness.run.grid import build

    task = get_registry().task(task_name)
    built = [build(task, cell, seq_len, at, seed, problems) for seed in at.seeds]
    return dynamics.explanation(cell, [(b.last_step.params, b.last_step.x) for b in built], at.lyapunov,
                                at.lyapunov_steps, [b.window for b in built])


def _timing_round(executor: Executor, data: RunResults, round_: int, bar: GridProgress,
                  save: Callable[[], None], problems: str | None) -> None:
    """Time every measured point once more, in fresh workers, and pool the samples with the earlier
    rounds' (asv's rounds: the spread then includes what varies between processes and over the run,
    so that ``harness compare`` does not take a drifting machine for a regression). A point whose
    later round fails keeps its earlier samples."""
    suite = data.suite
    where = {p.key: i for i, p in enumerate(data.points) if p.status == OK and p.time is not None}
    jobs = [PointJob(name, cell, seq_len, suite.at(hidden, batch, init), "time", round=round_, problems=problems)
            for name, cell, seq_len, hidden, batch, init in where]
    if not jobs:
        return
    bar.add(len(jobs))
    bar.start(jobs[0])

    def on_result(job: PointJob, later: PointResult) -> None:
        i = where[(job.backend, job.cell, job.seq_len, job.suite.hidden, job.suite.batch, job.suite.init)]
        if later.status == OK:
            data.points[i] = data.points[i].pooled_with(later)
            save()
        bar.advance(later, f"timing round {round_}/{suite.timing.passes}")
        bar.start(_next(jobs, job))

    executor.run(jobs, on_result, threads=suite.threads, timeout=suite.timing.timeout)


def _next(jobs: list[PointJob], done: PointJob) -> PointJob | None:
    """The job after ``done`` in ``jobs``: what the worker runs next, for the progress bar."""
    index = jobs.index(done) + 1
    return jobs[index] if index < len(jobs) else None
