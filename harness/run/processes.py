"""The child processes of a run end with it: a worker or a pool process exits when its parent is gone."""
from __future__ import annotations

import ctypes
import ctypes.util
import multiprocessing
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

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


def exit_reason(process: multiprocessing.process.BaseProcess) -> str:
    """Why a child process ended, in a few words (SIGKILL: most likely the out-of-memory killer)."""
    code = process.exitcode
    if code == -signal.SIGKILL:
        return "died (signal SIGKILL: most likely the system's out-of-memory killer)"
    if code is not None and code < 0:
        return f"died (signal {signal.Signals(-code).name})"
    return f"died (exit code {code})"


class ChildFailed(Exception):
    """:func:`in_child`'s call did not return: it raised (the traceback), its process died, or it hung."""


def in_child(fn: Callable[..., Any], *args: Any, timeout: float) -> Any:
    """``fn(*args)`` in a fresh process (``fn`` and its arguments picklable), so that plugin code
    that crashes, exhausts memory or hangs takes only that process down: its result, or
    :class:`ChildFailed` with the reason (its traceback, how it died, or the timeout)."""
    ctx = multiprocessing.get_context("spawn")
    receive, send = ctx.Pipe(duplex=False)
    process = ctx.Process(target=_child_main, args=(send, fn, args, os.getpid()), daemon=True)
    process.start()
    send.close()
    try:
        if not receive.poll(timeout):
            raise ChildFailed(f"timed out after {timeout:g} s")
        try:
            status, value = receive.recv()
        except (EOFError, OSError):
            process.join(5)
            raise ChildFailed(f"its process {exit_reason(process)}") from None
    finally:
        if process.is_alive():
            process.kill()
        process.join(5)
        receive.close()
    if status == "error":
        raise ChildFailed(value)
    return value


def _child_main(send, fn: Callable[..., Any], args: tuple, parent: int) -> None:
    exit_with_parent(parent, kernel=started_by_main_thread())
    try:
        result = ("ok", fn(*args))
    except BaseException:
        result = ("error", traceback.format_exc())
    send.send(result)
