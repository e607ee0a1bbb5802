"""The Dask executor on real clusters: same records as a local run, failures isolated per point,
a killed Dask worker loses nothing finished, records from two machines become two asv machines."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from harness import suites
from harness.record import files
from harness.run.executor import LocalExecutor
from harness.run.runner import run_suite
from tests.support.asv_project import make_repo
from tests.support.cli import TIMEOUT, harness
from tests.support.plugins import add_misbehaving
from tests.support.suites import write_suite

pytest.importorskip("distributed")

# Dask end to end: clusters started per test and numba's cold compiles on both executors (minutes).
pytestmark = pytest.mark.slow

from harness.run.dask_executor import DaskExecutor  # noqa: E402  (after the skip: dask is an extra)

HANG_TIMEOUT = "20"  # seconds: as in test_runner, room for a loaded machine


def _run(suite, backends, tmp_path, executor):
    return run_suite(suite, backends, results_dir=tmp_path / "results", executor=executor)


def test_a_dask_run_records_what_a_local_run_records(tmp_path):
    suite = suites.load(write_suite(tmp_path / "tiny", cells='["rnn_tanh", "lstm"]', seq_lens="[12, 16]"))
    local = _run(suite, ["numpy", "numba"], tmp_path / "local", LocalExecutor()).results
    with DaskExecutor(workers=2) as executor:
        remote = _run(suite, ["numpy", "numba"], tmp_path / "dask", executor)
    on_disk = files.read(remote.path)
    assert on_disk.status == "complete" and len(on_disk.points) == len(local.points) == 8
    mine = on_disk.provenance["machine"]
    by_key = {p.key: p for p in on_disk.points}
    for point in local.points:
        there = by_key[point.key]
        assert there.status == point.status == "ok"
        assert there.machine == mine  # each record names the machine that measured it
        np.testing.assert_allclose(there.gradient.g, point.gradient.g, rtol=1e-6)
        assert there.gradient.decay_rate == pytest.approx(point.gradient.decay_rate, rel=1e-6)
        assert len(there.time.forward_backward.samples) == len(point.time.forward_backward.samples)
    assert set(on_disk.machines) == {mine}
    assert {(c.backend, c.cell, c.status) for c in on_disk.compile} == {("numba", "rnn_tanh", "ok"),
                                                                          ("numba", "lstm", "ok")}


def test_raising_hanging_and_dying_points_fail_alone_on_dask(plugin_dir, tmp_path):
    add_misbehaving(plugin_dir)
    suite = suites.load(write_suite(tmp_path / "tiny", seq_lens="[20, 12]", timing={"timeout": HANG_TIMEOUT}))
    with DaskExecutor(workers=2) as executor:
        run = _run(suite, ["raises", "hangs", "dies", "numpy"], tmp_path, executor)
    by_key = {(p.backend, p.seq_len): p for p in files.read(run.path).points}
    assert "deliberate failure at T=20" in by_key[("raises", 20)].reason
    assert f"timed out after {HANG_TIMEOUT} s" in by_key[("hangs", 20)].reason
    assert "SIGKILL" in by_key[("dies", 20)].reason
    assert {k for k, p in by_key.items() if p.status == "failed"} == {("raises", 20), ("hangs", 20), ("dies", 20)}
    assert all(p.status == "ok" for k, p in by_key.items() if k[1] == 12 or k[0] == "numpy")


def test_a_killed_dask_worker_fails_its_point_once_and_loses_nothing_finished(plugin_dir, tmp_path):
    """Gradient-only points (no timing) run side by side; the point that kills its Dask worker is
    failed (not retried elsewhere) and every other point is recorded."""
    add_misbehaving(plugin_dir)
    suite = suites.load(write_suite(tmp_path / "tiny", seq_lens="[20, 12, 16]", metrics='["gradient"]'))
    with DaskExecutor(workers=2) as executor:
        run = _run(suite, ["kills-dask-worker", "numpy"], tmp_path, executor)
    on_disk = files.read(run.path)
    by_key = {(p.backend, p.seq_len): p for p in on_disk.points}
    assert len(on_disk.points) == 6 and on_disk.status == "complete"
    killed = by_key[("kills-dask-worker", 20)]
    assert killed.status == "failed" and "Dask worker running it died" in killed.reason
    assert all(p.status == "ok" for k, p in by_key.items() if k != ("kills-dask-worker", 20))


def test_a_worker_restarted_after_it_died_runs_the_points_left(plugin_dir, tmp_path):
    """With one worker, the points after the one that killed it run on the worker its nanny starts
    again, which must still be allowed to start the child process a point runs in."""
    add_misbehaving(plugin_dir)
    suite = suites.load(write_suite(tmp_path / "tiny", seq_lens="[12, 20, 24]", metrics='["gradient"]'))
    with DaskExecutor(workers=1) as executor:
        run = _run(suite, ["kills-dask-worker"], tmp_path, executor)
    by_len = {p.seq_len: p for p in files.read(run.path).points}
    assert {t: p.status for t, p in by_len.items()} == {12: "ok", 20: "failed", 24: "ok"}, by_len[24].reason


def test_a_cluster_left_without_workers_ends_the_run_and_keeps_what_finished(monkeypatch, tmp_path):
    from distributed import LocalCluster

    from harness.errors import HarnessError
    from harness.run import dask_executor

    monkeypatch.setattr(dask_executor, "POLL_S", 0.2)
    monkeypatch.setattr(dask_executor, "NO_WORKER_S", 1.0)
    suite = suites.load(write_suite(tmp_path / "tiny"))
    with LocalCluster(n_workers=0, processes=False, dashboard_address=None) as cluster, \
            DaskExecutor(scheduler=cluster.scheduler_address) as executor:
        with pytest.raises(HarnessError, match="has had no worker for 1 s"):
            _run(suite, ["numpy"], tmp_path, executor)
    (path,) = (tmp_path / "results" / "runs").glob("*.json")
    assert files.read(path).status == "interrupted"


def _start(*args: str, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_" + args[0], *args[1:]],
                            env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.fixture
def two_machines(tmp_path):
    """A scheduler and two workers started by hand, as on a cluster, one named alpha and one beta
    (HARNESS_MACHINE), each allowed to start child processes."""
    scheduler_file = tmp_path / "scheduler.json"
    procs = [_start("scheduler", "--scheduler-file", str(scheduler_file), "--port", "0", "--no-dashboard", env={})]
    deadline = time.monotonic() + TIMEOUT
    while not scheduler_file.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    address = json.loads(scheduler_file.read_text())["address"]
    for name in ("alpha", "beta"):
        procs.append(_start("worker", address, "--nthreads", "1", "--no-dashboard",
                            env={"HARNESS_MACHINE": name, "DASK_DISTRIBUTED__WORKER__DAEMON": "False"}))
    from distributed import Client

    with Client(address, timeout="60s") as client:
        client.wait_for_workers(2, timeout=120)
    yield address
    for proc in procs:
        proc.kill()
        proc.wait(30)


def test_two_machines_become_two_asv_machines_and_publish(two_machines, tmp_path):
    repo = make_repo(tmp_path / "proj")
    run = harness("run", "tiny", "--backends", "numpy", "--executor", "dask", "--scheduler", two_machines, "-q",
                  cwd=repo)
    assert run.returncode == 0, run.stderr
    data = json.loads(next((repo / "results" / "runs").glob("*.json")).read_text())
    measured_on = {p["machine"] for p in data["points"]}
    assert measured_on <= {"alpha", "beta"} and set(data["machines"]) == measured_on
    for name in measured_on:
        assert json.loads((repo / "results" / name / "machine.json").read_text())["machine"] == name
    assert len(measured_on) == 2, "both workers should have measured points"
    published = harness("publish", cwd=repo)
    assert published.returncode == 0, published.stderr
    index = json.loads((repo / "results" / "html" / "index.json").read_text())
    assert set(index["params"]["machine"]) == {"alpha", "beta"}  # asv's machine filter
    compared = harness("compare", data["provenance"]["git"]["commit"][:8], data["provenance"]["git"]["commit"][:8],
                       cwd=repo)
    assert compared.returncode == 0 and "no significant change" in compared.stdout
