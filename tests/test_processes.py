"""Worker processes: none outlives its parent, SIGTERM stops a run as Ctrl-C does, a backend that
hangs while starting is bounded by the user's timeout, and a memory limit is reported as such."""
from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from harness import suites
from harness.record import files
from harness.run.executor import LocalExecutor
from harness.run.runner import run_suite
from tests.support.cli import TIMEOUT, start_harness, stop_when
from tests.support.plugins import add_distribution
from tests.support.suites import write_suite

PLUGIN = """
import os, time
import numpy as np
from harness import hookimpl
from harness_plugins.numpy_backend import NumpyBackend
HARNESS_PLUGIN_API = 2

class HangsAt20(NumpyBackend):
    name = "hangs-at-20"
    def forward(self):
        if self.problem.x.shape[0] == 20:
            with open(os.environ["WORKER_PID_FILE"], "a") as f:  # the point's timing and profile workers
                f.write(f"{os.getpid()}\\n")
            self.hang()
        super().forward()
    def hang(self):
        time.sleep(3600)

class HoldsTheLockAt20(HangsAt20):
    # Hangs in C code that keeps the interpreter lock (ctypes.PyDLL does not release it): no thread
    # of the worker runs any more, only the kernel can end it.
    name = "holds-the-lock-at-20"
    def hang(self):
        import ctypes
        ctypes.PyDLL(None).sleep(3600)

class SlowStart(NumpyBackend):
    name = "slow-start"
    def __init__(self, threads=None):
        time.sleep(3600)

class Hungry(NumpyBackend):
    name = "hungry"
    def forward(self):
        self.hoard = np.ones(2**31 // 8)  # 2 GiB
        super().forward()

@hookimpl
def harness_backends():
    return [HangsAt20, HoldsTheLockAt20, SlowStart, Hungry]
"""


@pytest.fixture
def plugin(plugin_dir):
    add_distribution(plugin_dir, "procs", {"procs_plugin": PLUGIN}, {"procs": "procs_plugin"})
    return plugin_dir


def _workers(pid_file: Path) -> list[int]:
    """The workers that reached the hang (each writes a whole line)."""
    return [int(line) for line in pid_file.read_text().splitlines()] if pid_file.exists() else []


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:  # a zombie waiting for its reaper counts as gone
        return f.read().split(")")[-1].split()[0] != "Z"


def _start(tmp_path, monkeypatch, *extra, backend="hangs-at-20"):
    pid_file = tmp_path / "worker.pid"
    monkeypatch.setenv("WORKER_PID_FILE", str(pid_file))
    folder = write_suite(tmp_path / "s", seq_lens="[12, 20]", timing={"timeout": "600"})
    proc = start_harness("run", str(folder), "--backends", backend, "-q", "--results-dir",
                         str(tmp_path / "results"), "--output", str(tmp_path / "run.json"), *extra, cwd=tmp_path)
    end = time.monotonic() + TIMEOUT
    while not (pid_file.exists() and pid_file.read_text().endswith("\n")) and time.monotonic() < end:
        if proc.poll() is not None:  # the run ended before any worker reached the hang
            raise AssertionError(f"harness run exited {proc.returncode}: {proc.communicate()[1]}")
        time.sleep(0.2)
    assert _workers(pid_file)
    return proc, pid_file


def test_a_worker_exits_when_its_parent_is_killed(plugin, tmp_path, monkeypatch):
    proc, pid_file = _start(tmp_path, monkeypatch)
    proc.kill()
    proc.communicate(timeout=60)
    end = time.monotonic() + 60
    while any(map(_alive, _workers(pid_file))) and time.monotonic() < end:
        time.sleep(0.2)
    assert not [pid for pid in _workers(pid_file) if _alive(pid)]


def test_a_worker_stuck_holding_the_interpreter_lock_exits_when_its_parent_is_killed(plugin, tmp_path, monkeypatch):
    """The kernel's parent-death signal (Linux), which needs no thread of the worker to run."""
    if not sys.platform.startswith("linux"):
        pytest.skip("the parent-death signal is Linux's")
    proc, pid_file = _start(tmp_path, monkeypatch, backend="holds-the-lock-at-20")
    time.sleep(0.5)  # inside the C call
    trackers = _resource_trackers(proc.pid)
    assert trackers  # the run started one (else the check below would be empty)
    proc.kill()
    proc.communicate(timeout=60)
    end = time.monotonic() + 10
    while any(map(_alive, [*_workers(pid_file), *trackers])) and time.monotonic() < end:
        time.sleep(0.2)
    assert not [pid for pid in _workers(pid_file) if _alive(pid)]
    assert not [pid for pid in trackers if _alive(pid)]  # it ends once no process holds its pipe


def _resource_trackers(parent: int) -> list[int]:
    """multiprocessing's resource tracker processes started by ``parent``."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().split(")")[-1].split()[1])
            cmdline = (stat.parent / "cmdline").read_bytes()
        except (OSError, ValueError):
            continue
        if ppid == parent and b"resource_tracker" in cmdline:
            found.append(int(stat.parent.name))
    return found


def test_sigterm_keeps_finished_points_and_records_them(plugin, tmp_path, monkeypatch):
    proc, _ = _start(tmp_path, monkeypatch, "--label", "stopped")
    err = stop_when(proc, lambda: True, signal.SIGTERM)
    assert proc.returncode == 130, err
    data = files.read(tmp_path / "run.json")
    assert data.status == "interrupted" and [(p.seq_len, p.status) for p in data.points] == [(12, "ok")]
    assert "s.time_forward" in json.loads((tmp_path / "results" / "benchmarks.json").read_text())


def test_a_backend_that_hangs_while_starting_is_bounded_by_the_timeout(plugin, tmp_path):
    suite = suites.load(write_suite(tmp_path / "s", timing={"timeout": "5"}))
    run = run_suite(suite, ["slow-start"], results_dir=tmp_path)
    (point,) = run.results.points
    assert point.status == "failed" and point.reason == "backend failed to start: timed out after 5 s"


def test_a_worker_over_its_memory_limit_fails_the_point_saying_so(plugin, tmp_path):
    suite = suites.load(write_suite(tmp_path / "s"))
    run = run_suite(suite, ["hungry", "numpy"], results_dir=tmp_path,
                    executor=LocalExecutor(memory_limit=1536 * 2**20))
    by_backend = {p.backend: p for p in run.results.points}
    assert by_backend["hungry"].status == "failed" and "MemoryError" in by_backend["hungry"].reason
    assert "memory limit, 1.5 GiB, was reached" in by_backend["hungry"].reason
    assert by_backend["numpy"].status == "ok"


def test_an_interrupt_during_the_asv_write_waits_until_it_is_whole(tmp_path, monkeypatch):
    """SIGTERM arrives in the middle of recording: the database is written whole, then the command
    stops as interrupted (KeyboardInterrupt, exit 130), whichever instant the signal came at."""
    from pathlib import Path

    from harness import cli
    from harness.record import asvdb
    from harness.record.results import RunResults
    from tests.support.runs import PROVENANCE, record_synthetic, synthetic_point

    _, conf = record_synthetic(tmp_path, "first", [synthetic_point("a", 10, 1.0)])
    steps, real = [], asvdb.record_run

    def record_with_a_signal(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)  # mid-write: its handler waits
        steps.append("signalled")
        written = real(*args, **kwargs)
        steps.append("written")
        return written

    monkeypatch.setattr(asvdb, "record_run", record_with_a_signal)
    run = RunResults(suite=suites.load(write_suite(tmp_path / "s2")), started_at="2026-11-26T08:00:00+00:00",
                     provenance=PROVENANCE, points=[synthetic_point("a", 10, 1.0)], status="complete")
    before = signal.signal(signal.SIGTERM, cli._terminated)
    try:
        with pytest.raises(KeyboardInterrupt):
            cli._record_into_asv(run, conf, "second", "run.json")
    finally:
        signal.signal(signal.SIGTERM, before)
    assert steps == ["signalled", "written"]
    labels = Path(conf.results_dir) / "labels"
    assert {p.name for p in labels.iterdir()} == {"first", "second"}
    assert (Path(conf.results_dir) / "benchmarks.json").is_file()
