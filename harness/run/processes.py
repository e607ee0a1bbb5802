"""The child processes of a run end with it: a worker or a pool process exits when its parent is gone."""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys
import threading
import time

_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def exit_with_parent(parent: int | None = None, kernel: bool = False) -> None:
    """End this process when ``parent`` (default: its parent now) is gone, killed even with SIGKILL,
    so that no orphan keeps computing or holds the terminal's pipes. A daemon thread polls once a
    second; with ``kernel`` (Linux), the kernel also sends SIGKILL when the parent ends, which needs
    no interpreter, so a child stuck in C code that holds the interpreter lock ends too. Linux sends
    it when the parent's *thread* that started the child ends: ``kernel`` only for children started
    by a thread that lives as long as its process (the main thread)."""
    parent = os.getppid() if parent is None else parent
    if kernel and sys.platform.startswith("linux"):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # gone before the signal was armed
        os._exit(1)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="exit-with-parent").start()


def started_by_main_thread() -> bool:
    """Whether a child started now is started by the main thread (:func:`exit_with_parent`'s ``kernel``)."""
    return threading.current_thread() is threading.main_thread()


def pool_process(cpus: list[int] | None = None, kernel: bool = False) -> None:
    """A process of a pool of the core's untimed work (problems, spectra): one BLAS thread (one
    process per CPU: BLAS threads on top would oversubscribe them), on ``cpus`` when given, ended
    with the run (``kernel``: :func:`exit_with_parent`)."""
    from threadpoolctl import threadpool_limits

    exit_with_parent(kernel=kernel)
    threadpool_limits(limits=1)
    if cpus and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, cpus)
