"""The child processes of a run end with it: a worker or a pool process exits when its parent is gone."""
from __future__ import annotations

import os
import threading
import time


def exit_with_parent(parent: int | None = None) -> None:
    """End this process when ``parent`` (default: its parent now) is gone, killed even with SIGKILL:
    a daemon thread polls once a second. No orphan keeps computing, or holds the terminal's pipes."""
    parent = os.getppid() if parent is None else parent

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="exit-with-parent").start()


def pool_process(cpus: list[int] | None = None) -> None:
    """A process of a pool of the core's untimed work (problems, spectra): one BLAS thread (one
    process per CPU: BLAS threads on top would oversubscribe them), on ``cpus`` when given, ended
    with the run."""
    from threadpoolctl import threadpool_limits

    exit_with_parent()
    threadpool_limits(limits=1)
    if cpus and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, cpus)
