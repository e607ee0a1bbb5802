"""Measuring peak memory of a forward+backward with the tool that sees the backend's allocations."""
from __future__ import annotations

import ctypes
import ctypes.util
import gc
import tracemalloc
from typing import Protocol


class MemoryMeter(Protocol):
    """A context manager; after exit, ``peak`` is the peak bytes allocated above the baseline."""

    tool: str
    peak: int

    def __enter__(self) -> "MemoryMeter": ...

    def __exit__(self, *exc) -> None: ...


class TracemallocMeter:
    """Python's tracemalloc: sees NumPy's data buffers (NumPy reports them to tracemalloc)."""

    tool = "tracemalloc"

    def __init__(self):
        self.peak = 0

    def __enter__(self):
        self._was_tracing = tracemalloc.is_tracing()
        if not self._was_tracing:
            tracemalloc.start()
        tracemalloc.reset_peak()
        self._base = tracemalloc.get_traced_memory()[0]
        return self

    def __exit__(self, *exc):
        self.peak = max(0, tracemalloc.get_traced_memory()[1] - self._base)
        if not self._was_tracing:
            tracemalloc.stop()


class RssMeter:
    """Peak resident set size (Linux VmHWM, reset through /proc/self/clear_refs), page-granular.

    For libraries whose allocator tracemalloc does not see (torch on the CPU). Free memory that
    malloc keeps would hide re-allocations, so it is handed back to the OS (``malloc_trim``) before
    the baseline is read. Coarser than tracemalloc: it counts pages, including other threads' work.
    """

    tool = "rss-hwm"

    def __init__(self):
        self.peak = 0

    @staticmethod
    def _status(field: str) -> int:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
        raise OSError(f"{field} not in /proc/self/status")

    def __enter__(self):
        gc.collect()
        _malloc_trim()
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the current RSS
        self._base = self._status("VmRSS")
        return self

    def __exit__(self, *exc):
        self.peak = max(0, self._status("VmHWM") - self._base)


def _malloc_trim() -> None:
    """Return glibc's free heap memory to the OS; a no-op where there is no glibc."""
    name = ctypes.util.find_library("c")
    if name:
        libc = ctypes.CDLL(name)
        if hasattr(libc, "malloc_trim"):
            libc.malloc_trim(0)
