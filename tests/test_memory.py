"""The memory meters against allocations of known size."""
from __future__ import annotations

import numpy as np
import pytest

from harness.measure.memory import RssMeter, TracemallocMeter

MIB = 2**20


@pytest.mark.parametrize("meter_cls", [TracemallocMeter, RssMeter], ids=["tracemalloc", "rss"])
def test_peak_is_the_largest_live_allocation_above_the_baseline(meter_cls):
    """64 MiB written (so that the pages are resident), freed, then 16 MiB: the peak is 64 MiB."""
    with meter_cls() as meter:
        big = np.ones(64 * MIB // 8)
        del big
        small = np.ones(16 * MIB // 8)
    del small
    # tracemalloc counts bytes exactly (plus NumPy's array header); RSS counts resident pages, so
    # pages the baseline held and the allocator reused, or the interpreter touched, move it a little.
    assert 0.95 * 64 * MIB <= meter.peak <= 64 * MIB + 4 * MIB


@pytest.mark.parametrize("meter_cls", [TracemallocMeter, RssMeter], ids=["tracemalloc", "rss"])
def test_memory_allocated_before_the_meter_is_not_counted(meter_cls):
    before = np.ones(32 * MIB // 8)
    with meter_cls() as meter:
        small = np.ones(4 * MIB // 8)
    del small, before
    assert 0.95 * 4 * MIB <= meter.peak <= 4 * MIB + 4 * MIB
