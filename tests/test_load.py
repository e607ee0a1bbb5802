"""The load instrument: when a point counts as measured on a busy machine."""
from __future__ import annotations

from harness.measure.load import LoadSample, busy, sample
from harness.record.results import OK, PointResult


def test_busy_means_more_runnable_processes_than_cpus_before_or_after():
    quiet, loaded = LoadSample(1.5, 1.0, None), LoadSample(2.5, 1.0, None)
    assert not busy(quiet, quiet, cpu_count=2)
    assert busy(loaded, quiet, cpu_count=2) and busy(quiet, loaded, cpu_count=2)


def test_a_busy_point_says_so_in_its_note():
    loaded = LoadSample(3.2, 2.0, 2400.0)
    point = PointResult("numpy", "gru", 50, "float32", OK, load_before=loaded, load_after=loaded, busy=True)
    assert point.note == "busy machine (load 3.2)"


def test_a_sample_reads_this_machine():
    now = sample()
    assert now.load1 >= 0 and (now.cpu_mhz is None or now.cpu_mhz > 0)
