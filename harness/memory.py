"""Measuring peak memory of a forward+backward with the tool that sees the backend's allocations."""
from __future__ import annotations

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

    For libraries whose allocator tracemalloc does not see (torch on the CPU). Coarser: freed memory
    that the allocator keeps is not counted as new, memory reused from earlier runs is invisible.
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
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the current RSS
        self._base = self._status("VmRSS")
        return self

    def __exit__(self, *exc):
        self.peak = max(0, self._status("VmHWM") - self._base)
