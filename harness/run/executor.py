"""Executors run a backend's grid points. The local one uses one spawned worker process per backend.

A point that raises is recorded as failed with its traceback; a point that exceeds its time limit,
or a worker that dies, is recorded as failed, the worker is restarted, and the remaining points go
on. The interface is small (``run`` and ``backend_info``) so that another executor (a Dask cluster)
can replace it.
"""
from __future__ import annotations

import contextlib
import dataclasses
import multiprocessing as mp
import os
import queue
import signal
import statistics
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from harness.backend import Availability
from harness.errors import message
from harness.measure.blas import THREAD_ENV
from harness.jsonsafe import jsonable
from harness.record.results import FAILED, OK, CompileResult, PointResult
from harness.run.grid import JobMode, PointJob
from harness.run.point import job_families
from harness.run.processes import exit_reason, exit_with_parent, started_by_main_thread
from harness.suites import Suite

START_TIMEOUT = 300.0  # seconds for a worker to import its backend

#: A point's record; a compile job's result is its compile time in seconds (or a failed record).
OnResult = Callable[[PointJob, "PointResult | float"], None]
#: Called with the partial record of a point still running (training: after every evaluation).
OnProgress = Callable[[PointJob, PointResult], None]


@runtime_checkable
class Executor(Protocol):
    """What the runner needs from whatever runs the points (this machine, or a Dask cluster)."""

    #: Per backend, what its worker reported: ``Backend.info()`` plus the BLAS thread pools it saw.
    backend_info: dict[str, dict[str, Any]]
    #: The provenance of each other machine that measured a point, by machine name (records name it).
    machines: dict[str, dict[str, Any]]

    def availability(self, backend: str) -> Availability:
        """Whether ``backend`` can run where this executor runs its points."""

    def run(self, jobs: list[PointJob], on_result: OnResult, threads: int, timeout: float,
            on_progress: OnProgress | None = None, env: dict[str, str] | None = None) -> None:
        """Run ``jobs`` (of any backends), each in a worker process started with ``env`` added to
        the environment, never two timed points on one machine at once; call ``on_result(job,
        result)`` for each, where ``result.status`` is ``"ok"`` or ``"failed"`` (with
        ``result.reason``), and ``on_progress(job, partial)`` whenever a running point reports."""

    def measure_compile(self, backend: str, cell: str, suite: Suite, into: str | None = None) -> CompileResult:
        """The compile time of ``backend``'s ``cell``, cold and warm, on one machine; the code
        compiled is added to the cache folder ``into`` (where this executor's workers run)."""


#: Characters of a failure reason kept in the results file (its start and its end, where the traceback's
#: last frames and the exception are): a backend's exception message may be megabytes long.
REASON_LIMIT = 10_000


def timed(job: PointJob, share_cpus: bool = False) -> bool:
    """Whether ``job`` records a timing, and so must have its machine to itself. A ``profile`` job
    (gradient profile and memory peak) does not: the peak is that of the point's own process
    (tracemalloc, its RSS, torch's allocator), which a process beside it does not change."""
    if job.mode == JobMode.COMPILE:
        return True
    if job.mode == JobMode.TRAIN:
        return not share_cpus
    return "time" in job_families(job)


def cap_reason(reason: str, limit: int = REASON_LIMIT) -> str:
    """``reason``, or its first and last characters (``limit`` in all) with a note of how much was cut."""
    reason = str(reason)
    if len(reason) <= limit:
        return reason
    head, tail = limit * 4 // 5, limit // 5
    return (f"{reason[:head]}\n[... {len(reason) - head - tail} characters cut: the reason was {len(reason)} "
            f"characters long ...]\n{reason[-tail:]}")


def failed(job: PointJob, reason: str) -> PointResult:
    """The record of a point that did not finish (its reason capped: :func:`cap_reason`)."""
    return job.point.record(FAILED, reason=cap_reason(reason))


def blas_threads() -> list[dict[str, Any]]:
    """The thread pools (BLAS, OpenMP) loaded in this process and their sizes, from threadpoolctl."""
    from threadpoolctl import threadpool_info

    return [{k: pool.get(k) for k in ("user_api", "internal_api", "num_threads")} for pool in threadpool_info()]


def allowed_cpus() -> list[int]:
    """The CPUs this process may run on (all of them where Linux's affinity call is missing)."""
    if not hasattr(os, "sched_getaffinity"):
        return list(range(os.cpu_count() or 1))
    return sorted(os.sched_getaffinity(0))


def timing_cpus(threads: int) -> list[int]:
    """The CPUs a timed worker is pinned to: the first ``threads`` this process may use."""
    return allowed_cpus()[: max(1, threads)]


def spare_cpus(threads: int) -> list[int]:
    """The CPUs where untimed work may run while a point is timed: those the timed worker is not
    pinned to that share no core with them (a core's hardware threads slow each other down). None
    where Linux does not say which CPUs are hardware threads of one core.

    Measured on a 2-core VM (docs/performance.md, "Untimed work beside the timings"): a gradient
    profile at T = 2000 running on the other core changed forward + backward medians by -5% to +0.2%,
    within the spread of the timings alone."""
    cpus = allowed_cpus()
    pinned = set(timing_cpus(threads))
    shared: set[int] = set()
    for cpu in pinned:
        try:
            text = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology/thread_siblings_list").read_text()
        except OSError:
            return []
        shared |= _cpu_list(text)
    return [cpu for cpu in cpus if cpu not in pinned | shared]


def beside_cpus(jobs: list[PointJob], threads: int) -> list[int]:
    """Where the untimed jobs of ``jobs`` (and the runner's spectra) run while the timed ones are
    timed: the spare CPUs, unless nothing is timed or a job's suite asks for ``[timing] isolate``
    (then they run after the timings, on every CPU). The one place this is decided."""
    if not any(timed(job) for job in jobs) or any(job.suite.timing.isolate for job in jobs):
        return []
    return spare_cpus(threads)


def _cpu_list(text: str) -> set[int]:
    """Linux's CPU list syntax: ``0-3,8``."""
    cpus: set[int] = set()
    for part in text.strip().split(","):
        first, _, last = part.partition("-")
        cpus.update(range(int(first), int(last or first) + 1))
    return cpus


def _run_job(backend, job: PointJob, task, conn) -> PointResult | float:
    """Measure or train one point, with the machine's load read before and after it."""
    from harness.measure import load
    from harness.run.point import compile_time, measure
    from harness.run.train import train

    if job.mode == JobMode.COMPILE:
        return compile_time(backend, job, task)
    before = load.sample()
    if job.mode == JobMode.TRAIN:
        result = train(backend, job, task, on_progress=lambda partial: conn.send(("progress", partial)))
    else:  # run, time, profile
        result = measure(backend, job, task)
    after = load.sample()
    return dataclasses.replace(result, load_before=before, load_after=after, busy=load.busy(before, after))


def _worker_main(conn, backend_name: str, threads: int, memory_limit: int | None, parent: int,
                 cpus: list[int] | None, kernel: bool = False) -> None:
    """Entry point of a worker process: import the backend once, then run jobs as they come."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides how to stop
    exit_with_parent(parent, kernel)
    if memory_limit:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (memory_limit, memory_limit))
    try:
        from harness.plugins import get_registry

        if cpus and hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(0, cpus)  # as asv's --cpu-affinity: a timing does not migrate between cores
        cpus = allowed_cpus()
        registry = get_registry()
        backend = registry.backend_class(backend_name)(threads=threads)
        try:
            info = backend.info()
        except Exception as exc:  # provenance is not worth losing the backend over
            info = {"error": f"info() raised {type(exc).__name__}: {exc}"}
        conn.send(("ready", jsonable({**info, "thread_pools": blas_threads(), "cpus": cpus})))
    except BaseException:
        conn.send(("error", traceback.format_exc()))
        return
    while True:
        job = conn.recv()
        if job is None:
            return
        try:
            conn.send(("ok", _run_job(backend, job, registry.task(job.suite.task, job.suite.task_options), conn)))
        except BaseException as exc:
            conn.send(("failed", cap_reason(f"{type(exc).__name__}: {message(exc)}\n{_traceback()}")))


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """``values`` in the environment while a worker starts (thread counts must be there before it
    imports NumPy's BLAS; a compilation cache directory before it imports numba)."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _traceback() -> str:
    """The traceback being handled, or what can be said of it where formatting it raises (an
    exception whose ``__str__`` raises)."""
    try:
        return traceback.format_exc()
    except Exception as exc:  # noqa: BLE001
        return f"(the traceback could not be formatted: {type(exc).__name__})"


class _Worker:
    def __init__(self, backend: str, threads: int, env: dict[str, str] | None = None,
                 memory_limit: int | None = None, cpus: list[int] | None = None, kernel: bool = False):
        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker_main, args=(child, backend, threads, memory_limit, os.getpid(), cpus,
                                                           kernel),
                                daemon=True, name=f"harness-{backend}")
        with _environment({**{k: str(threads) for k in THREAD_ENV}, **(env or {})}):
            self.proc.start()
        child.close()
        self.info: dict = {}

    def wait_ready(self, timeout: float) -> str | None:
        """None when ready, else why the worker could not start (within ``timeout`` seconds)."""
        status, payload = self.receive(timeout)
        if status == "ready":
            self.info = payload
            return None
        return payload

    def receive(self, wait: float, timeout: float | None = None) -> tuple[str, object]:
        """The next message, or ("timeout", why) after ``wait`` seconds (of a ``timeout`` in all)."""
        try:
            if not self.conn.poll(wait):
                return "timeout", f"timed out after {timeout if timeout is not None else wait:g} s"
            return self.conn.recv()
        except (EOFError, ConnectionError, OSError):
            self.proc.join(5)
            return "died", f"worker process {exit_reason(self.proc)}"

    def stop(self, kill: bool = False) -> None:
        if not kill:
            with contextlib.suppress(OSError, BrokenPipeError):
                self.conn.send(None)
            self.proc.join(5)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(5)
        self.conn.close()


class LocalExecutor:
    """The points of a run on this machine, in one worker process per backend: timed points one
    after another (timings must not share a core), each worker pinned to the timing CPUs; untimed
    points (:func:`timed`) beside them on the spare CPUs (:func:`spare_cpus`), or after them on
    every CPU. ``memory_limit`` (bytes) caps each worker's address space (Linux resource limits).
    With ``keep_workers`` a backend's worker outlives ``run`` until :meth:`close` (a Dask worker
    reuses it for point after point); ``pin=False`` leaves workers unpinned, ``cpus`` pins them there."""

    def __init__(self, memory_limit: int | None = None, keep_workers: bool = False, pin: bool = True,
                 cpus: list[int] | None = None):
        self.backend_info: dict[str, dict[str, Any]] = {}
        self.machines: dict[str, dict[str, Any]] = {}  # every point is measured here
        self.memory_limit = memory_limit
        self.keep_workers = keep_workers
        self.pin, self.cpus = pin, cpus
        self._workers: dict[tuple, _Worker] = {}

    def availability(self, backend: str) -> Availability:
        from harness.plugins import availability, get_registry

        return availability(get_registry().backend_class(backend))

    def close(self) -> None:
        """Stop the workers kept between runs."""
        for worker in self._workers.values():
            worker.stop()
        self._workers.clear()

    @staticmethod
    def _key(backend: str, threads: int, env: dict[str, str] | None) -> tuple:
        """What makes two workers interchangeable: the backend, its threads and its environment."""
        return backend, threads, tuple(sorted((env or {}).items()))

    def _worker(self, backend: str, threads: int, env: dict[str, str] | None, timeout: float) -> _Worker:
        """The running worker for ``backend`` (started, and waited for, when there is none)."""
        key = self._key(backend, threads, env)
        if key not in self._workers:
            cpus = self.cpus if self.cpus is not None else timing_cpus(threads) if self.pin else None
            # The kernel's parent-death signal follows the thread that starts the worker: fine when that
            # thread stops the worker itself (at the end of run) or is the main thread.
            kernel = not self.keep_workers or started_by_main_thread()
            worker = _Worker(backend, threads, env, self.memory_limit, cpus, kernel)
            error = worker.wait_ready(min(START_TIMEOUT, timeout))
            if error is not None:
                worker.stop(kill=True)
                raise _StartError(f"backend failed to start: {error}")
            self.backend_info[backend] = worker.info
            self._workers[key] = worker
        return self._workers[key]

    def _drop(self, keep: tuple | None = None, kill: bool = False) -> None:
        for key in [k for k in self._workers if k != keep]:
            self._workers.pop(key).stop(kill=kill)

    def run(self, jobs: Iterable[PointJob], on_result: OnResult, threads: int, timeout: float,
            on_progress: OnProgress | None = None, env: dict[str, str] | None = None) -> None:
        """Timed jobs one after another; the untimed jobs of a list beside them on the spare CPUs
        (none when a job's suite asks for ``[timing] isolate``), else after them, side by side on
        every CPU. The callbacks are called one at a time."""
        if not isinstance(jobs, list) or all(timed(job) for job in jobs):
            return self._one_by_one(jobs, on_result, threads, timeout, on_progress, env)
        alone = [job for job in jobs if timed(job)]
        untimed = [job for job in jobs if not timed(job)]
        beside = beside_cpus(jobs, threads)
        lanes = ([[cpu] for cpu in beside] if beside else
                 [None] * min(len(untimed), max(1, len(allowed_cpus()) // max(1, threads))))
        from multiprocessing import resource_tracker

        resource_tracker.ensure_running()  # started here, before the lanes' threads start processes too
        calls, starts = _OneAtATime(on_result, on_progress), _Starts()
        if not beside:
            self._one_by_one(alone, calls.on_result, threads, timeout, calls.on_progress, env, starts)
        with _Lanes(self, untimed, lanes, calls, threads, timeout, env, starts):
            if beside:
                self._one_by_one(alone, calls.on_result, threads, timeout, calls.on_progress, env, starts)

    def _one_by_one(self, jobs: Iterable[PointJob], on_result: OnResult, threads: int, timeout: float,
                    on_progress: OnProgress | None, env: dict[str, str] | None, starts: _Starts | None = None) -> None:
        starts = starts or _Starts()
        try:
            for job in jobs:
                key = self._key(job.backend, threads, env)
                if not self.keep_workers:
                    self._drop(keep=key)  # one backend's worker at a time
                with starts.lock(job.backend):  # a lane beside waits for this start's outcome
                    error = starts.errors.get(job.backend)
                    if error is None:
                        try:
                            worker = self._worker(job.backend, threads, env, timeout)
                        except _StartError as exc:
                            error = starts.errors[job.backend] = str(exc)
                if error is not None:
                    on_result(job, failed(job, error))
                    continue
                status, payload = self._send(worker, job, timeout, on_progress)
                if status == "ok":
                    on_result(job, payload)
                    continue
                if self.memory_limit and "MemoryError" in str(payload):
                    limit = self.memory_limit / 2**30
                    payload = f"{payload}\n(the worker's memory limit, {limit:.3g} GiB, was reached)"
                on_result(job, failed(job, payload))
                if status in ("timeout", "died"):
                    self._workers.pop(key).stop(kill=True)  # a fresh worker for the next point
        finally:
            if not self.keep_workers:
                self._drop(kill=True)

    @staticmethod
    def _send(worker: _Worker, job: PointJob, timeout: float, on_progress: OnProgress | None) -> tuple[str, Any]:
        """Run ``job`` on ``worker``: its final message, with every progress report passed on."""
        worker.conn.send(job)
        deadline = time.monotonic() + timeout
        while True:
            status, payload = worker.receive(max(0.0, deadline - time.monotonic()), timeout)
            if status != "progress":
                return status, payload
            if on_progress is not None:
                on_progress(job, payload)

    def measure_compile(self, backend: str, cell: str, suite: Suite, into: str | None = None) -> CompileResult:
        """``compile_repeat`` times, two fresh workers sharing one new cache directory: cold (the
        directory empty), then warm (what the cold worker left in it). Several samples, so that
        ``harness compare`` can tell a slower compiler from a noisy one. What the first cold worker
        compiled is copied into ``into``, where a file of the same name is kept (the same function
        compiled for another cell: any specialisation missing there is compiled by whoever needs it)."""
        from harness.plugins import get_registry

        cls = get_registry().backend_class(backend)
        job = PointJob(backend, cell, min(suite.seq_lens), suite, JobMode.COMPILE)
        cold: list[float] = []
        warm: list[float] = []
        for _ in range(suite.timing.compile_repeat):
            with tempfile.TemporaryDirectory(prefix="harness-compile-cache-") as cache:
                for seconds in (cold, warm):
                    fresh = LocalExecutor(self.memory_limit)
                    outcome: list = []
                    fresh.run([job], lambda _job, result: outcome.append(result), threads=suite.threads,
                              timeout=suite.timing.timeout, env=cls.compile_cache_env(cache))
                    if not outcome or isinstance(outcome[0], PointResult):  # a failed record: it did not finish
                        reason = outcome[0].reason if outcome else "no result"
                        return CompileResult(backend, cell, suite.dtype, FAILED, reason=cap_reason(reason))
                    seconds.append(outcome[0])
                if into and len(cold) == 1:
                    _merge_tree(cache, into)
        return CompileResult(backend, cell, suite.dtype, OK, cold_s=statistics.median(cold),
                             warm_s=statistics.median(warm), cold_samples=tuple(cold), warm_samples=tuple(warm))


class _Starts:
    """The backends whose worker could not start, shared by a run's lanes: such a backend is tried
    once, not once per lane or per point."""

    def __init__(self):
        self.errors: dict[str, str] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def lock(self, backend: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(backend, threading.Lock())


class _OneAtATime:
    """The run's callbacks, called by one thread at a time; silent once the run stops (a worker
    killed because the run stops is no result)."""

    def __init__(self, on_result: OnResult, on_progress: OnProgress | None):
        self._lock, self.stopped = threading.Lock(), threading.Event()
        self._result, self._progress = on_result, on_progress

    def on_result(self, job: PointJob, result: Any) -> None:
        with self._lock:
            if not self.stopped.is_set():
                self._result(job, result)

    def on_progress(self, job: PointJob, partial: PointResult) -> None:
        with self._lock:
            if self._progress is not None and not self.stopped.is_set():
                self._progress(job, partial)


class _Lanes:
    """Untimed jobs on several executors at once, in threads (their workers are processes): each
    lane takes the next job when its last is done, so it keeps a backend's worker while the jobs
    it takes are that backend's. ``lanes``: each lane's CPUs (None: unpinned). Leaving the block
    waits for them; leaving it with an exception (Ctrl-C) stops them and kills their workers."""

    def __init__(self, parent: LocalExecutor, jobs: list[PointJob], lanes: list[list[int] | None],
                 calls: _OneAtATime, threads: int, timeout: float, env: dict[str, str] | None, starts: _Starts):
        self._parent, self._calls, self._starts, self._errors = parent, calls, starts, []
        self._pending: queue.SimpleQueue = queue.SimpleQueue()
        for job in jobs:
            self._pending.put(job)
        self._executors = [LocalExecutor(parent.memory_limit, pin=False, cpus=cpus) for cpus in lanes]
        self._threads = [threading.Thread(target=self._lane, args=(executor, threads, timeout, env), daemon=True)
                         for executor in self._executors]

    def _taken(self) -> Iterator[PointJob]:
        while True:
            try:
                yield self._pending.get_nowait()
            except queue.Empty:
                return

    def _lane(self, executor: LocalExecutor, threads: int, timeout: float, env: dict[str, str] | None) -> None:
        try:
            executor._one_by_one(self._taken(), self._calls.on_result, threads, timeout, self._calls.on_progress, env,
                                 self._starts)
        except BaseException as exc:  # raised by a callback: the run stops, the caller's thread re-raises it
            self._errors.append(exc)
            list(self._taken())  # no lane takes another job

    def __enter__(self) -> _Lanes:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, kind, *exc) -> None:
        stop = kind is not None
        try:
            if not stop:
                for thread in self._threads:
                    while thread.is_alive():
                        thread.join(0.2)  # a short wait: Ctrl-C reaches the caller's thread
        except BaseException:
            stop = True
            raise
        finally:
            if stop or self._errors:
                self._calls.stopped.set()
                list(self._taken())
                for executor in self._executors:
                    for worker in list(executor._workers.values()):
                        with contextlib.suppress(Exception):
                            worker.proc.kill()
            for executor in self._executors:  # what the timed worker reported comes first
                for backend, info in executor.backend_info.items():
                    self._parent.backend_info.setdefault(backend, info)
        if self._errors and not stop:
            raise self._errors[0]


def _merge_tree(source: str, into: str) -> None:
    """Copy the files of ``source`` into ``into``, keeping those already there."""
    import shutil
    from pathlib import Path

    for path in Path(source).rglob("*"):
        target = Path(into) / path.relative_to(source)
        if path.is_file() and not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)


class _StartError(Exception):
    """A backend's worker could not start (its import failed or timed out)."""

