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
import signal
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from typing import Any, Protocol, runtime_checkable

from harness.record.results import FAILED, PointResult, jsonable
from harness.run.grid import PointJob

THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS",
              "VECLIB_MAXIMUM_THREADS")
START_TIMEOUT = 300.0  # seconds for a worker to import its backend

#: A point's record; a compile job's result is its compile time in seconds (or a failed record).
OnResult = Callable[[PointJob, "PointResult | float"], None]
#: Called with the partial record of a point still running (training: after every evaluation).
OnProgress = Callable[[PointJob, PointResult], None]


@runtime_checkable
class Executor(Protocol):
    """What the runner needs from whatever runs the points."""

    #: Per backend, what its worker reported: ``Backend.info()`` plus the BLAS thread pools it saw.
    backend_info: dict[str, dict[str, Any]]

    def run(self, backend: str, jobs: list[PointJob], on_result: OnResult, threads: int, timeout: float,
            on_progress: OnProgress | None = None, env: dict[str, str] | None = None) -> None:
        """Run ``jobs`` of one backend in order, in workers started with ``env`` added to the
        environment; call ``on_result(job, result)`` for each, where ``result.status`` is ``"ok"`` or
        ``"failed"`` (with ``result.reason``), and ``on_progress(job, partial)`` whenever a running
        point reports."""


def failed(job: PointJob, reason: str) -> PointResult:
    """The record of a point that did not finish."""
    return PointResult(job.backend, job.cell, job.seq_len, job.suite.dtype, FAILED, reason=reason)


def blas_threads() -> list[dict[str, Any]]:
    """The thread pools (BLAS, OpenMP) loaded in this process and their sizes, from threadpoolctl."""
    from threadpoolctl import threadpool_info

    return [{k: pool.get(k) for k in ("user_api", "internal_api", "num_threads")} for pool in threadpool_info()]


def pin_to_cpus(threads: int) -> list[int]:
    """Pin this process to the first ``threads`` CPUs it may use (as asv's --cpu-affinity does), so
    that a timing does not migrate between cores; returns the CPUs (all of them where Linux's
    affinity call is missing)."""
    if not hasattr(os, "sched_setaffinity"):
        return list(range(os.cpu_count() or 1))
    cpus = sorted(os.sched_getaffinity(0))[: max(1, threads)]
    os.sched_setaffinity(0, cpus)
    return cpus


def _run_job(backend, job: PointJob, task, conn) -> PointResult | float:
    """Measure or train one point, with the machine's load read before and after it."""
    from harness.measure import load
    from harness.run.point import compile_time, measure
    from harness.run.train import train

    if job.mode == "compile":
        return compile_time(backend, job, task)
    before = load.sample()
    if job.mode == "train":
        result = train(backend, job, task, on_progress=lambda partial: conn.send(("progress", partial)))
    else:  # run, time
        result = measure(backend, job, task)
    after = load.sample()
    return dataclasses.replace(result, load_before=before, load_after=after, busy=load.busy(before, after))


def _watch_parent(parent: int) -> None:
    """End this worker when its parent is gone (killed, even with SIGKILL): no orphan keeps running."""
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(1)


def _worker_main(conn, backend_name: str, threads: int, memory_limit: int | None, parent: int) -> None:
    """Entry point of a worker process: import the backend once, then run jobs as they come."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides how to stop
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()
    if memory_limit:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (memory_limit, memory_limit))
    try:
        from harness.plugins import get_registry

        cpus = pin_to_cpus(threads)
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
            conn.send(("ok", _run_job(backend, job, registry.task(job.suite.task), conn)))
        except BaseException as exc:
            conn.send(("failed", f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"))


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


def _exit_reason(proc) -> str:
    code = proc.exitcode
    if code == -signal.SIGKILL:
        return "worker process died (signal SIGKILL: most likely the system's out-of-memory killer)"
    if code is not None and code < 0:
        return f"worker process died (signal {signal.Signals(-code).name})"
    return f"worker process died (exit code {code})"


class _Worker:
    def __init__(self, backend: str, threads: int, env: dict[str, str] | None = None,
                 memory_limit: int | None = None):
        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker_main, args=(child, backend, threads, memory_limit, os.getpid()),
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
            return "died", _exit_reason(self.proc)

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
    """Backends one after another (timings must not share the CPU), each in its own process;
    ``memory_limit`` (bytes) caps each worker's address space (Linux resource limits)."""

    def __init__(self, memory_limit: int | None = None):
        self.backend_info: dict[str, dict[str, Any]] = {}
        self.memory_limit = memory_limit

    def run(self, backend: str, jobs: list[PointJob], on_result: OnResult, threads: int, timeout: float,
            on_progress: OnProgress | None = None, env: dict[str, str] | None = None) -> None:
        worker = None
        start_error = None
        try:
            for job in jobs:
                if start_error is not None:  # a backend that cannot start is not retried per point
                    on_result(job, failed(job, start_error))
                    continue
                if worker is None:
                    worker = _Worker(backend, threads, env, self.memory_limit)
                    error = worker.wait_ready(min(START_TIMEOUT, timeout))
                    if error is not None:
                        worker.stop(kill=True)
                        worker = None
                        start_error = f"backend failed to start: {error}"
                        on_result(job, failed(job, start_error))
                        continue
                    self.backend_info[backend] = worker.info
                worker.conn.send(job)
                deadline = time.monotonic() + timeout
                while True:
                    status, payload = worker.receive(max(0.0, deadline - time.monotonic()), timeout)
                    if status != "progress":
                        break
                    if on_progress is not None:
                        on_progress(job, payload)
                if status == "ok":
                    on_result(job, payload)
                    continue
                if self.memory_limit and "MemoryError" in str(payload):
                    limit = self.memory_limit / 2**30
                    payload = f"{payload}\n(the worker's memory limit, {limit:.3g} GiB, was reached)"
                on_result(job, failed(job, payload))
                if status in ("timeout", "died"):
                    worker.stop(kill=True)
                    worker = None  # a fresh worker for the next point
        finally:
            if worker is not None:
                worker.stop(kill=True)
