"""Plan a suite's grid, run it backend by backend, and record every point as it finishes.

The results file is rewritten atomically after every point, so an interrupted or crashed run keeps
everything that finished. Unavailable backends and unsupported cells are recorded as skipped.
"""
from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import datetime as dt
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from harness.cells import activation_bytes
from harness.errors import HarnessError
from harness.plugins import get_registry, machine_info, plugin_statuses
from harness.record import files, provenance
from harness.record.results import (INTERRUPTED, OK, SKIPPED, BackendStatus, Point, PointResult, RunResults,
                                    RunStatus)
from harness.run.executor import Executor, LocalExecutor, allowed_cpus, beside_cpus
from harness.run.grid import JobMode, PointJob, build_ahead, plan, submit_builds, untimed_pool, vet_cell
from harness.run.observer import RunObserver, Silent
from harness.suites import Mode, Suite


@dataclass
class Run:
    """A finished (or interrupted) run: its results and the file they are in."""

    path: Path
    results: RunResults
    interrupted: bool = False


def select_backends(spec: str) -> list[str]:
    """``all`` (every installed backend whose ``in_all`` is set) or a comma-separated list of
    installed backend names."""
    registry = get_registry()
    if spec == "all":
        return sorted(name for name, cls in registry.backends.items() if cls.in_all)
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


def check_fits_in_memory(suite: Suite, task, mode: Mode) -> None:
    """Refuse, before anything runs, a point whose stored activations cannot fit in this machine's
    memory: about 4 x the analytic activations (forward's, their gradients, per-step gradients, inputs)."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for hidden, batch in suite.sizes(mode):
        if mode == Mode.TRAIN:
            batch = max(suite.train.batch, suite.train.eval_size)
        for T in suite.train.seq_lens if mode == Mode.TRAIN else suite.seq_lens:
            for cell in suite.cells:
                need = 4 * activation_bytes(cell, task.steps(T), batch, hidden, suite.dtype)
                if need > total:
                    raise HarnessError(f"sequence length {T} needs about {need / 2**30:.3g} GiB for {cell} "
                                       f"(B={batch}, H={hidden}, {suite.dtype}); this machine has "
                                       f"{total / 2**30:.3g} GiB")


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat()

@contextlib.contextmanager
def opened(name: str, scheduler: str | None = None, workers: int | None = None, memory_limit: int | None = None,
           share_cpus: bool = False) -> Iterator[Executor]:
    """The executor ``name`` ("local" or "dask") names, closed (a local Dask cluster shut down)
    afterwards; a Dask cluster's ``scheduler`` address, or the number of ``workers`` of a local one."""
    if name == "local":
        if scheduler or workers:
            raise HarnessError(f"--{'scheduler' if scheduler else 'workers'} needs --executor dask")
        yield LocalExecutor(memory_limit)
        return
    if scheduler and workers:
        raise HarnessError("--workers sizes a local cluster; with --scheduler the cluster has its own workers")
    try:
        from harness.run.dask_executor import DaskExecutor
    except ImportError as exc:
        raise HarnessError(f"--executor dask needs dask and distributed ({exc}); "
                           "install them with: pip install dask distributed") from None
    with DaskExecutor(scheduler, workers, memory_limit, share_cpus=share_cpus) as executor:
        yield executor



def run_suite(
    suite: Suite,
    backends: list[str],
    results_dir: str | Path = "results",
    output: str | Path | None = None,
    executor: Executor | None = None,
    observer: RunObserver | None = None,
    mode: Mode = Mode.RUN,
    force: bool = False,
) -> Run:
    """Run every point of ``suite`` on ``backends`` (``mode`` run: measure; train: learn the task);
    the results file is up to date after each point. ``observer`` hears how the run goes (the CLI's
    progress bar; default: nothing)."""
    registry = get_registry()
    task = registry.task(suite.task, suite.task_options)  # an unknown task or option: an error before anything runs
    too_short = [t for t in (suite.train.seq_lens if mode == Mode.TRAIN else suite.seq_lens) if t < task.min_seq_len]
    if too_short:
        raise HarnessError(f"sequence length {too_short[0]} is too short for task {task.name!r} "
                           f"(minimum {task.min_seq_len})")
    check_fits_in_memory(suite, task, mode)
    executor = executor or LocalExecutor()
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    stem = f"{suite.name}-{'train-' if mode == 'train' else ''}{stamp}"
    try:
        path = files.claim(Path(output), force) if output else claim_path(Path(results_dir) / "runs", stem)
    except OSError as exc:  # a read-only results directory, one under a file, an output that is a folder
        raise HarnessError(f"cannot write the results file: {exc.strerror or exc}: "
                           f"{exc.filename or output or results_dir}") from None
    run = Run(path, RunResults(suite=suite, started_at=_now(), mode=mode,
                               provenance={**provenance.collect(suite.threads), "plugins": machine_info(),
                                           "plugin_status": plugin_statuses()}))
    data = run.results
    data.machines = executor.machines  # filled in as points come back from other machines
    per_cell = len(plan(suite, mode, "", ""))
    bar = observer or Silent()
    timeout = suite.train.timeout if mode == Mode.TRAIN else suite.timing.timeout
    running: dict[PointJob, PointResult] = {}  # the partial records of the points now running
    # the problems of the grid, built once for every backend (grid.build); removed with the run
    problems = tempfile.mkdtemp(prefix="harness-problems-") if mode == Mode.RUN else None
    # the code compiled while its compile time was measured, loaded by the run's workers (_compile_times)
    local = isinstance(executor, LocalExecutor)
    compiled = tempfile.mkdtemp(prefix="harness-compiled-") if mode == Mode.RUN and local else None

    kept: list[int] = [0]  # the points in the file as last written
    unwritable: list[str] = []  # why the file cannot be written any more (a full disk): nothing more is

    def save() -> None:
        try:
            files.write(path, data)
        except OSError as exc:
            unwritable.append(exc.strerror or str(exc))
            raise HarnessError(f"cannot write the results file {path}: {unwritable[0]}; it keeps the "
                               f"{kept[0]} point(s) written before") from None
        kept[0] = len(data.points)

    def record(point: PointResult, what: str = "") -> None:
        data.points.append(point)
        save()
        bar.advance(point, what)

    def on_progress(job: PointJob, partial: PointResult) -> None:
        running[job] = partial
        bar.progress(job, partial)

    spectra = None
    bar.begin(len(backends) * len(suite.cells) * per_cell, suite.axes(mode))
    try:
        try:
            jobs = []
            unfit = {cell: vet_cell(task, cell, suite) for cell in suite.cells}  # a broken cell: its points only
            for name in backends:
                cls = registry.backend_class(name)
                availability = executor.availability(name)
                data.backends[name] = BackendStatus(availability.available, availability.reason, cls.description)
                for cell in suite.cells:
                    support = cls.supports(cell, suite.dtype) if availability else availability
                    status, reason = (SKIPPED, support.reason) if not support else unfit[cell] or (OK, "")
                    unrun = []
                    for job in plan(suite, mode, name, cell, problems):
                        if status == OK:
                            jobs.append(job)
                        else:
                            unrun.append(job.point.record(status, reason=reason))
                    if unrun:  # recorded together, one progress line for them all
                        data.points.extend(unrun)
                        save()
                        bar.advance_all(unrun)
            timed = mode == Mode.RUN and "time" in suite.metrics
            spectra = _Spectra.planned(task, suite, jobs, problems, executor, bar) if mode == Mode.RUN else None
            if jobs and problems and local:  # its workers read this folder
                seeds = suite.seeds if "gradient" in suite.metrics else suite.seeds[:1]
                points = [(job.cell, job.seq_len, job.suite, seed) for job in jobs for seed in seeds]
                if spectra and spectra.beside:  # on the spare CPUs, while compile times and timings are taken
                    spectra.start(build=points)
                else:
                    processes = len(allowed_cpus())
                    bar.note(f"building the grid's problems (float64 reference) on {processes} CPUs")
                    build_ahead(task, points, problems, processes)
            env = _compile_times(executor, data, jobs, bar, save, compiled) if timed else {}
            profiles = ([dataclasses.replace(job, mode=JobMode.PROFILE) for job in jobs]
                        if timed and set(suite.metrics) - {"time"} else [])
            if jobs:
                bar.start(jobs[0])
                bar.add(len(profiles))
                where: dict[Point, int] = {}  # run: a point's record, to which its other job's result is added

                def on_result(job: PointJob, point: PointResult) -> None:
                    running.pop(job, None)
                    what = "gradient profile and memory peak" if job.mode == JobMode.PROFILE else ""
                    if mode == Mode.RUN and job.point in where:
                        i = where[job.point]
                        data.points[i] = _merged(data.points[i], point, job.mode == JobMode.PROFILE)
                        save()
                        bar.advance(data.points[i], what)
                    else:
                        where[job.point] = len(data.points)
                        record(point, what)
                    if job.mode != JobMode.PROFILE:
                        bar.start(_next(jobs, job))

                executor.run(jobs + profiles, on_result, threads=suite.threads, timeout=timeout,
                             on_progress=on_progress, env=env)
            for name in {job.backend for job in jobs}:
                data.backends[name] = dataclasses.replace(data.backends[name],
                                                          info=executor.backend_info.get(name, {}))
            if timed:
                for round_ in range(2, suite.timing.passes + 1):
                    _timing_round(executor, data, round_, bar, save, problems, env)
            if spectra:
                spectra.attach(data)  # computed beside the timings, or now (no timing runs any more)
        finally:
            bar.end()
        data.status = RunStatus.COMPLETE
    except HarnessError as exc:  # the executor lost its cluster, or the disk is full: what was written is kept
        data.status = RunStatus.INTERRUPTED
        if unwritable:
            raise
        raise HarnessError(f"{exc}; the {len(data.points)} finished points are kept in {path}") from None
    except KeyboardInterrupt:
        for partial in running.values():  # a training point keeps the curve it had when stopped
            data.points.append(dataclasses.replace(partial, status=INTERRUPTED, reason="interrupted (Ctrl-C)"))
        data.status = RunStatus.INTERRUPTED
        run.interrupted = True
    finally:
        if spectra:
            spectra.stop()
        for folder in (problems, compiled):
            if folder:
                shutil.rmtree(folder, ignore_errors=True)
        data.finished_at = _now()
        if not unwritable:
            save()
    return run


class _Spectra:
    """W_hh's spectra and the top Lyapunov exponents beside every gradient profile (measure/dynamics.py).
    They depend on the cell, weights and data, not on the backend: the core computes them once per
    (cell, T, H, B, init) of the grid, in float64, from the very problems the backends are given,
    in a pool of processes with one BLAS thread each: on the spare CPUs while the timings are taken
    (``beside``; executor.spare_cpus), or on every CPU once no timing runs any more."""

    def __init__(self, task, keys: dict[tuple, Suite], problems: str | None, cpus: list[int], beside: bool,
                 bar: RunObserver):
        self.beside, self._cpus, self._bar = beside, cpus, bar
        self._task, self._keys, self._problems = task, keys, problems
        self._found: dict[tuple, dict | Exception] = {}
        self._error: BaseException | None = None
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None
        self._futures: dict[concurrent.futures.Future, tuple] = {}
        self._thread = threading.Thread(target=self._collect, daemon=True)
        bar.add(len(keys))

    @classmethod
    def planned(cls, task, suite: Suite, jobs: list[PointJob], problems: str | None, executor: Executor,
                bar: RunObserver) -> _Spectra | None:
        """The spectra of ``jobs``' points, where the suite measures gradients (None where it does not)."""
        if "gradient" not in suite.metrics or not jobs:
            return None
        keys = {(job.cell, job.seq_len, job.suite.hidden, job.suite.batch, job.suite.init): job.suite for job in jobs}
        spare = beside_cpus(jobs, suite.threads) if isinstance(executor, LocalExecutor) else []
        return cls(task, keys, problems, spare or allowed_cpus(), bool(spare), bar)

    def start(self, build: list[tuple[str, int, Suite, int]] = ()) -> None:
        """Build the problems of ``build`` (grid.submit_builds), then compute the spectra, in the pool;
        a thread collects them meanwhile. Called from the main thread (grid.untimed_pool)."""
        self._pool = untimed_pool(min(len(self._keys), len(self._cpus)), self._cpus)
        if build:
            submit_builds(self._pool, self._task, list(build), self._problems)  # a failed build: the reader builds
        self._futures = {self._pool.submit(_explanation, self._task.name, key[0], key[1], self._keys[key],
                                           self._problems): key
                         for key in sorted(self._keys, key=lambda key: -key[1])}  # the longest first
        self._thread.start()

    def _collect(self) -> None:
        try:
            for future in concurrent.futures.as_completed(self._futures):
                key = self._futures[future]
                try:
                    self._found[key] = future.result()
                except Exception as exc:  # a cell whose backends fail too: raised by attach if one did not
                    self._found[key] = exc
                cell, seq_len, hidden, batch, init = key
                core = Point("core", cell, seq_len, self._keys[key].dtype, hidden, batch, init)
                self._bar.advance(core.record(OK), "spectra and Lyapunov exponents")
        except BaseException as exc:  # re-raised by attach, in the runner's thread
            self._error = exc

    def attach(self, data: RunResults) -> None:
        """Wait for the spectra (compute them now when not started) and add them to every gradient profile."""
        if self._pool is None:
            self.start()
        while self._thread.is_alive():
            self._thread.join(0.2)  # a short wait: Ctrl-C reaches this thread
        self._pool.shutdown()
        if self._error is not None:
            raise self._error
        for i, point in enumerate(data.points):
            key = (point.cell, point.seq_len, point.hidden, point.batch, point.init)
            if point.gradient is not None and key in self._found:
                found = self._found[key]
                if isinstance(found, Exception):
                    raise found
                data.points[i] = dataclasses.replace(point, gradient=dataclasses.replace(point.gradient, **found))

    def stop(self) -> None:
        """End the pool's processes (an interrupted run; nothing left to do otherwise)."""
        pool = self._pool
        if pool is not None:
            processes = list((getattr(pool, "_processes", None) or {}).values())
            pool.shutdown(wait=False, cancel_futures=True)
            for process in processes:
                with contextlib.suppress(Exception):
                    process.kill()


def _explanation(task_name: str, cell: str, seq_len: int, at: Suite, problems: str | None) -> dict:
    """One point's spectra and exponents (in a process of the pool of :func:`_explain_gradients`)."""
    from harness.measure import dynamics
    from harness.run.grid import build

    task = get_registry().task(task_name, at.task_options)
    built = [build(task, cell, seq_len, at, seed, problems) for seed in at.seeds]
    return dynamics.explanation(cell, [(b.last_step.params, b.last_step.x) for b in built], at.lyapunov,
                                at.lyapunov_steps, [b.window for b in built])


def _compile_times(executor: Executor, data: RunResults, jobs: list[PointJob], bar: RunObserver,
                   save: Callable[[], None], compiled: str | None) -> dict[str, str]:
    """The compile time of every compiling backend's cells, before any point, each in fresh workers
    (executor.measure_compile). The code compiled there is kept in ``compiled``, and the environment
    returned points the run's workers at it: no point compiles, the first run on a machine included."""
    registry, suite, env = get_registry(), data.suite, {}
    for name, cell in dict.fromkeys((job.backend, job.cell) for job in jobs):
        cls = registry.backend_class(name)
        if cls.compiles:
            bar.start(PointJob(name, cell, min(suite.seq_lens), suite, JobMode.COMPILE))
            data.compile.append(executor.measure_compile(name, cell, suite, into=compiled))
            save()
            if compiled:
                env.update(cls.compile_cache_env(compiled))
    return env


def _merged(earlier: PointResult, later: PointResult, profile: bool) -> PointResult:
    """One point's record from its two jobs, finished in either order: the timings (and the machine's
    load while they were taken) of the ``time`` job, the memory peak and gradient profile of the
    ``profile`` job (``later`` is the profile when ``profile``). Failed when either failed, with why."""
    timed, profiled = (earlier, later) if profile else (later, earlier)
    point = dataclasses.replace(timed, memory=profiled.memory, gradient=profiled.gradient,
                                duration_s=(timed.duration_s or 0.0) + (profiled.duration_s or 0.0))
    bad = next((p for p in (timed, profiled) if p.status != OK), None)
    return point if bad is None else dataclasses.replace(point, status=bad.status, reason=bad.reason)


def _timing_round(executor: Executor, data: RunResults, round_: int, bar: RunObserver,
                  save: Callable[[], None], problems: str | None, env: dict[str, str]) -> None:
    """Time every measured point once more, in fresh workers, and pool the samples with the earlier
    rounds' (asv's rounds: the spread then includes what varies between processes and over the run,
    so that ``harness compare`` does not take a drifting machine for a regression). A point whose
    later round fails keeps its earlier samples."""
    suite = data.suite
    where = {p.point: i for i, p in enumerate(data.points) if p.status == OK and p.time is not None}
    jobs = [PointJob(p.backend, p.cell, p.seq_len, suite.at(p.hidden, p.batch, p.init), JobMode.TIME, round=round_,
                     problems=problems) for p in where]
    if not jobs:
        return
    bar.add(len(jobs))
    bar.start(jobs[0])

    def on_result(job: PointJob, later: PointResult) -> None:
        i = where[job.point]
        if later.status == OK:
            data.points[i] = data.points[i].pooled_with(later)
            save()
        bar.advance(later, f"timing round {round_}/{suite.timing.passes}")
        bar.start(_next(jobs, job))

    executor.run(jobs, on_result, threads=suite.threads, timeout=suite.timing.timeout, env=env)


def _next(jobs: list[PointJob], done: PointJob) -> PointJob | None:
    """The job after ``done`` in ``jobs``: what the worker runs next, for the progress bar."""
    index = jobs.index(done) + 1
    return jobs[index] if index < len(jobs) else None
