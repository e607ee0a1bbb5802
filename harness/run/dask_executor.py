"""Run a grid on a Dask cluster: an existing one (``--scheduler``) or an embedded ``LocalCluster``.

Each point is one Dask task. On the Dask worker the point still runs in a child process through
:class:`~harness.run.executor.LocalExecutor` (same timeout, crash and hang handling as a local run;
the child is kept for the backend's next point). Two timed points never run on one machine at once:
a timed task holds the machine's ``distributed.Lock`` (one per machine name) while it runs, however
many workers that machine has. A backend's ``resources`` (torch-cuda: ``GPU``) route its points to
workers started with them. Dask never retries a point: a worker that dies fails the point it ran.
Only this process (the client) writes files; workers return records.
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import threading
import time
from typing import Any

from harness.backend import Availability
from harness.errors import HarnessError
from harness.record import provenance
from harness.record.results import CompileResult, PointResult
from harness.run.executor import LocalExecutor, OnProgress, OnResult, cap_reason, failed, timed
from harness.run.grid import PointJob
from harness.suites import Suite

#: Dask configuration for the clusters this module starts: no task is run twice, and worker
#: processes may start children (a point runs in one). Workers started by hand need the second too:
#: DASK_DISTRIBUTED__WORKER__DAEMON=False (docs/cluster.md).
CLUSTER_CONFIG = {"distributed.scheduler.allowed-failures": 0, "distributed.worker.daemon": False,
                  "distributed.scheduler.worker-saturation": 1.0}
STARTED = "harness-point-started"  # the event topic a task logs when it begins (see DaskExecutor.run)
CONNECT_TIMEOUT = "30s"
POLL_S = 5.0  # how often a run waiting on its points looks whether the cluster still has a worker
NO_WORKER_S = 120.0  # a cluster without a worker for this long ends the run: nothing could finish


# -- on the Dask worker --------------------------------------------------------------------------------
_local: dict[tuple, LocalExecutor] = {}
_local_guard = threading.Lock()  # one point at a time per Dask worker process, whatever its nthreads


def _machine(threads: int) -> tuple[str, dict[str, Any]]:
    """This machine's name and what its records carry of it (the client's git state is the run's)."""
    prov = provenance.collect(threads)
    return prov["machine"], {k: v for k, v in prov.items() if k not in ("git", "threads")}


def _bench_lock(machine: str):
    from distributed import Lock

    return Lock(f"harness-bench/{machine}")


def _point_on_worker(job: PointJob, threads: int, timeout: float, env: dict[str, str] | None,
                     memory_limit: int | None, exclusive: bool) -> tuple[PointResult, dict, str, dict]:
    """One point, in a child process of this Dask worker: (record, backend info, machine, its provenance)."""
    import multiprocessing

    if multiprocessing.current_process().daemon:
        raise HarnessError("this Dask worker is a daemonic process, which cannot start the child process a point "
                           "runs in: start workers with DASK_DISTRIBUTED__WORKER__DAEMON=False")
    machine, prov = _machine(threads)
    outcome: list = []
    with _bench_lock(machine) if exclusive else contextlib.nullcontext(), _local_guard:
        _log_started()
        key = (memory_limit, exclusive, job.round)  # a later timing round: fresh child processes
        if key not in _local:
            for stale in _local.values():
                stale.close()
            _local.clear()
            _local[key] = LocalExecutor(memory_limit, keep_workers=True, pin=exclusive)
        local = _local[key]
        local.run([job], lambda _job, result: outcome.append(result), threads, timeout, env=env)
        info = local.backend_info.get(job.backend, {})
    return outcome[0], info, machine, prov


def _log_started() -> None:
    """Tell the scheduler that this task's point begins, and wait until it knows: a point that kills
    its worker straight away must not pass for one that never began (and be run a second time)."""
    from distributed import get_client, get_worker

    get_client().log_event(STARTED, {"key": get_worker().get_current_task()})


def _compile_on_worker(backend: str, cell: str, suite: Suite,
                       memory_limit: int | None) -> tuple[CompileResult, str, dict]:
    machine, prov = _machine(suite.threads)
    with _bench_lock(machine), _local_guard:
        return LocalExecutor(memory_limit).measure_compile(backend, cell, suite), machine, prov


def _availability_on_worker(backend: str) -> Availability:
    return LocalExecutor().availability(backend)


# -- on the client ---------------------------------------------------------------------------------------
def _one_line_when_disconnected(method):
    """A client call that failed because the scheduler is gone (Dask gives up reconnecting after its
    ``distributed.comm.timeouts.connect``) becomes one HarnessError line."""
    @functools.wraps(method)
    def call(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except HarnessError:
            raise
        except Exception as exc:
            if self.client.status == "running":
                raise
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            raise HarnessError(f"lost the connection to the Dask scheduler {self.where} "
                               f"({type(exc).__name__}: {first})") from None
    return call


class DaskExecutor:
    """Points as Dask tasks. ``scheduler``: the address of an existing cluster (``tcp://HOST:PORT``);
    without it a ``LocalCluster`` of ``workers`` process workers (one thread each) is started and
    closed with the executor. ``share_cpus``: training points may run side by side."""

    def __init__(self, scheduler: str | None = None, workers: int | None = None, memory_limit: int | None = None,
                 share_cpus: bool = False):
        import dask
        from distributed import Client, LocalCluster

        self.backend_info: dict[str, dict[str, Any]] = {}
        self.machines: dict[str, dict[str, Any]] = {}  # provenance of each machine that measured a point
        self.memory_limit, self.share_cpus, self.scheduler = memory_limit, share_cpus, scheduler
        self._cluster = None
        self._calls: dict[str, tuple] = {}  # task key -> (function, arguments), to run a never-started task again
        self._retries: set[str] = set()  # keys of tasks that are such a second run
        # Set for the executor's whole life, not only while the cluster starts: a nanny reads
        # ``worker.daemon`` again when it restarts a worker that died.
        self._config = contextlib.ExitStack()
        self._config.enter_context(dask.config.set(CLUSTER_CONFIG))
        try:
            if scheduler:
                self.client = Client(scheduler, timeout=CONNECT_TIMEOUT)
            else:
                self._cluster = LocalCluster(n_workers=workers or 2, threads_per_worker=1, processes=True,
                                             dashboard_address=None)
                self.client = Client(self._cluster)
        except (OSError, TimeoutError) as exc:
            self._config.close()
            raise HarnessError(f"cannot reach the Dask scheduler {scheduler}: {exc}") from None

    def close(self) -> None:
        try:
            self.client.close()
            if self._cluster is not None:
                self._cluster.close()
        finally:
            self._config.close()

    def __enter__(self) -> DaskExecutor:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def where(self) -> str:
        """What messages call this cluster."""
        return self.scheduler or "of the local Dask cluster"

    def _missing_resources(self, backend: str) -> str | None:
        """Why no worker can run ``backend``'s points (None when one can)."""
        from harness.plugins import get_registry

        needs = get_registry().backend_class(backend).resources
        if not needs:
            return None
        for worker in self.client.scheduler_info()["workers"].values():
            offered = worker.get("resources", {})
            if all(offered.get(name, 0) >= amount for name, amount in needs.items()):
                return None
        wanted = " ".join(f"{k}={v:g}" for k, v in needs.items())
        return (f"no Dask worker offers the resources {wanted} "
                f"(start one with `dask worker ... --resources \"{wanted}\"`)")

    @_one_line_when_disconnected
    def availability(self, backend: str) -> Availability:
        """Asked on a worker that could run the backend's points, not on this machine."""

        missing = self._missing_resources(backend)
        if missing:
            return Availability(False, missing)
        outcome = self._outcome(self._submit(_availability_on_worker, backend, backend=backend))
        return Availability(False, outcome.reason) if isinstance(outcome, _Failure) else outcome

    def _submit(self, fn, *args, backend: str):
        """``fn(*args)`` as a task on a worker with ``backend``'s resources, never retried by Dask."""
        from harness.plugins import get_registry

        resources = get_registry().backend_class(backend).resources or None
        future = self.client.submit(fn, *args, resources=resources, pure=False, retries=0)
        self._calls[future.key] = (fn, *args)
        return future

    def _started(self, future) -> bool:
        """Whether the task of ``future`` began running on a worker."""
        return any(event.get("key") == future.key for _, event in self.client.get_events(STARTED))

    def _wait_for_any(self, futures: list) -> set:
        """The futures that are done, once one is; a cluster left without a worker for ``NO_WORKER_S``
        seconds (all died, none joined) ends the run instead of waiting for ever."""
        from distributed import TimeoutError as WaitedTooLong
        from distributed import wait

        alone_since = None
        while True:
            try:
                return wait(futures, timeout=POLL_S, return_when="FIRST_COMPLETED").done
            except WaitedTooLong:
                if self.client.scheduler_info()["workers"]:
                    alone_since = None
                elif alone_since is None:
                    alone_since = time.monotonic()
                elif time.monotonic() - alone_since > NO_WORKER_S:
                    raise HarnessError(f"the Dask cluster {self.where} has had no worker for {NO_WORKER_S:g} s "
                                       f"(start some, or check why they died)") from None

    @_one_line_when_disconnected
    def run(self, jobs: list[PointJob], on_result: OnResult, threads: int, timeout: float,
            on_progress: OnProgress | None = None, env: dict[str, str] | None = None) -> None:
        futures = {}
        for job in jobs:
            missing = self._missing_resources(job.backend)
            if missing:
                on_result(job, failed(job, missing))
                continue
            futures[self._submit(_point_on_worker, job, threads, timeout, env, self.memory_limit,
                                 timed(job, self.share_cpus), backend=job.backend)] = job
        try:
            while futures:
                for future in self._wait_for_any(list(futures)):
                    self._finish(future, futures.pop(future), futures, on_result)
        except BaseException:
            with contextlib.suppress(Exception):  # Ctrl-C, a lost scheduler: nothing keeps running
                self.client.cancel(list(futures))
            raise

    def _finish(self, future, job: PointJob, futures: dict, on_result: OnResult) -> None:
        """Record the point of a finished task, or run it once more if its worker died before it began."""
        outcome = self._outcome(future)
        if isinstance(outcome, _Failure):
            if outcome.worker_died and future.key not in self._retries and not self._started(future):
                # Another point killed the worker before this one began: run it once more, elsewhere.
                # A point that began, or that already had its second run, is never run again.
                retry = self._submit(*self._calls[future.key], backend=job.backend)
                self._retries.add(retry.key)
                futures[retry] = job
            else:
                on_result(job, failed(job, outcome.reason))
            return
        point, info, machine, prov = outcome
        self.backend_info.setdefault(job.backend, info)
        self.machines[machine] = prov
        on_result(job, _with_machine(point, machine))

    @_one_line_when_disconnected
    def measure_compile(self, backend: str, cell: str, suite: Suite, into: str | None = None) -> CompileResult:
        """On a Dask worker; ``into`` is not used: the workers, on other machines, keep their own caches."""
        future = self._submit(_compile_on_worker, backend, cell, suite, self.memory_limit, backend=backend)
        outcome = self._outcome(future)
        if isinstance(outcome, _Failure):
            return CompileResult(backend, cell, suite.dtype, "failed", reason=cap_reason(outcome.reason))
        result, machine, prov = outcome
        self.machines[machine] = prov
        return _with_machine(result, machine)

    def _outcome(self, future) -> Any:
        """The task's value, or a _Failure saying why it has none; a lost scheduler is a HarnessError."""
        from distributed import KilledWorker
        from distributed.comm.core import CommClosedError

        self._wait_for_any([future])
        try:
            return future.result()
        except KilledWorker as exc:
            return _Failure(f"the Dask worker running it died ({exc})", worker_died=True)
        except (CommClosedError, OSError, TimeoutError) as exc:
            raise HarnessError(f"lost the connection to the Dask scheduler {self.where} ({exc})") from None
        except Exception as exc:  # raised in the task, outside the point's own process
            return _Failure(f"{type(exc).__name__} on the Dask worker: {exc}", worker_died=False)


@dataclasses.dataclass(frozen=True)
class _Failure:
    """Why a task has no value; ``worker_died``: its Dask worker died (rather than the task raising)."""

    reason: str
    worker_died: bool


def _with_machine(record, machine: str):
    return dataclasses.replace(record, machine=machine)
