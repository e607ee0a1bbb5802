"""The runner: every outcome of a grid point is recorded and the rest of the grid goes on."""
from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest

from harness import suites
from harness.record import dataframe, files
from harness.run import grid, point
from harness.report.console import pivot
from harness.run.runner import run_suite
from harness_plugins.tasks import TemporalOrderTask
from harness.testing import relative_error
from harness_plugins.numpy_backend import NumpyBackend
from tests.support.cli import harness, start_harness, stop_when
from tests.support.plugins import UNAVAILABLE_PLUGIN, add_distribution, add_misbehaving
from tests.support.suites import write_suite

#: Timeout of a point in the failure tests: a tiny point takes well under a second, so 20 s leaves
#: room for a loaded machine while the hanging point does not hold the suite up for long.
HANG_TIMEOUT = "10"  # seconds: a tiny numpy point takes well under one, even on a loaded machine

@pytest.fixture
def misbehaving(plugin_dir):
    return add_misbehaving(plugin_dir)


def _by_key(run) -> dict:
    return {(p.backend, p.seq_len): p for p in run.results.points}


def test_raising_hanging_and_dying_backends_are_failed_and_the_grid_goes_on(misbehaving, tmp_path):
    suite = suites.load(write_suite(tmp_path / "tiny", seq_lens="[20, 12]", timing={"timeout": HANG_TIMEOUT}))
    run = run_suite(suite, ["raises", "hangs", "dies", "numpy"], results_dir=tmp_path / "results")
    by_key = _by_key(run)
    assert by_key[("raises", 20)].status == "failed"
    assert "deliberate failure at T=20" in by_key[("raises", 20)].reason
    assert by_key[("hangs", 20)].status == "failed"
    assert f"timed out after {HANG_TIMEOUT} s" in by_key[("hangs", 20)].reason
    assert by_key[("dies", 20)].status == "failed" and "SIGKILL" in by_key[("dies", 20)].reason
    for backend in ("raises", "hangs", "dies", "numpy"):  # the restarted worker finishes the grid
        assert by_key[(backend, 12)].status == "ok"
    assert by_key[("numpy", 20)].status == "ok"
    on_disk = files.read(run.path)
    assert on_disk.status == "complete" and len(on_disk.points) == 8
    assert on_disk.counts == {"ok": 5, "failed": 3, "skipped": 0, "interrupted": 0}


def test_timings_are_pooled_over_rounds_taken_in_fresh_workers(misbehaving, tmp_path, monkeypatch):
    """Three rounds of a 7-block --repeat: 2 + 2 + 3 blocks, pooled. A round in a new process that
    fails keeps the point's earlier samples and its status."""
    monkeypatch.setenv("HARNESS_TEST_MARKER", str(tmp_path / "marker"))
    suite = suites.load(write_suite(tmp_path / "tiny", timing={"repeat": "7", "rounds": "3"}))
    run = run_suite(suite, ["numpy", "later-round-fails"], results_dir=tmp_path / "results")
    on_disk = {(p.backend, p.seq_len): p for p in files.read(run.path).points}
    for T in suite.seq_lens:
        assert len(on_disk[("numpy", T)].time.forward_backward.samples) == 7
        assert len(on_disk[("numpy", T)].time.forward.samples) == 7
        fails = on_disk[("later-round-fails", T)]
        assert fails.status == "ok" and len(fails.time.forward_backward.samples) == 2  # round 1's share


def test_backend_that_cannot_start_fails_its_points_once(plugin_dir, tmp_path):
    starts = tmp_path / "starts"
    add_distribution(plugin_dir, "broken_init", {"broken_init_plugin": f"""
        from harness import hookimpl
        from harness_plugins.numpy_backend import NumpyBackend
        HARNESS_PLUGIN_API = 2
        class BrokenInit(NumpyBackend):
            name = "broken-init"
            def __init__(self, threads=None):
                with open({str(starts)!r}, "a") as f:
                    f.write("start\\n")
                raise RuntimeError("no device handle")
        @hookimpl
        def harness_backends():
            return [BrokenInit]
        """}, {"broken_init": "broken_init_plugin"})
    suite = suites.load(write_suite(tmp_path / "tiny", seq_lens="[12, 16]"))
    run = run_suite(suite, ["broken-init", "numpy"], results_dir=tmp_path)
    broken = [p for p in run.results.points if p.backend == "broken-init"]
    assert [p.status for p in broken] == ["failed", "failed"]
    assert all("backend failed to start" in p.reason and "no device handle" in p.reason for p in broken)
    assert starts.read_text().count("start") == 1
    assert {p.status for p in run.results.points if p.backend == "numpy"} == {"ok"}


def test_unavailable_backend_and_unsupported_cell_are_skipped_with_reason(plugin_dir, tmp_path):
    add_distribution(plugin_dir, "limited", {"limited_plugin": UNAVAILABLE_PLUGIN}, {"limited": "limited_plugin"})
    suite = suites.load(write_suite(tmp_path / "tiny", cells='["rnn_tanh", "gru"]'))
    run = run_suite(suite, ["nowhere", "rnn-only"], results_dir=tmp_path)
    by_key = {(p.backend, p.cell): p for p in run.results.points}
    assert by_key[("nowhere", "rnn_tanh")].status == "skipped"
    assert by_key[("nowhere", "rnn_tanh")].reason == "needs a quantum computer"
    assert by_key[("rnn-only", "gru")].status == "skipped"
    assert "cells it runs: rnn_tanh" in by_key[("rnn-only", "gru")].reason
    assert by_key[("rnn-only", "rnn_tanh")].status == "ok"
    assert run.results.counts == {"ok": 1, "failed": 0, "skipped": 3, "interrupted": 0}
    assert not run.results.backends["nowhere"].available


def _points_written(path) -> int:
    """How many points the results file holds now (it exists, empty, from the moment the run starts)."""
    try:
        return len(json.loads(path.read_text())["points"])
    except (OSError, ValueError):
        return 0


def test_ctrl_c_stops_cleanly_and_keeps_finished_points(misbehaving, tmp_path):
    folder = write_suite(tmp_path / "tiny", seq_lens="[12, 20]", timing={"timeout": "600"})
    out = tmp_path / "run.json"
    proc = start_harness("run", str(folder), "--backends", "hangs", "--output", str(out),
                         "--results-dir", str(tmp_path / "results"), "-q", cwd=tmp_path)
    err = stop_when(proc, lambda: _points_written(out) == 1)  # the T=12 point is recorded and T=20 hangs
    assert proc.returncode == 130, err
    data = files.read(out)
    assert data.status == "interrupted"
    assert [(p.seq_len, p.status) for p in data.points] == [(12, "ok")]


def test_results_file_is_self_describing_and_loads_as_a_dataframe(tmp_path):
    suite = suites.load(write_suite(tmp_path / "tiny", cells='["lstm"]', seq_lens="[12, 16]"))
    run = run_suite(suite, ["numpy"], results_dir=tmp_path)
    data = files.read(run.path)
    assert {"cpu", "machine", "libraries", "threads", "git", "python"} <= set(data.provenance)
    assert data.suite == suite and data.suite.sha256 == suite.sha256
    frame = dataframe.load(run.path)
    assert list(frame["seq_len"]) == [12, 16] and set(frame["status"]) == {"ok"}
    assert (frame["forward_backward_median_s"] > 0).all() and (frame["peak_bytes"] > 0).all()
    assert len(frame["g"].iloc[1]) == 16
    first = data.points[0]
    assert len(first.gradient.gc) == 12 and len(first.time.forward.samples) == 2


def test_an_exploded_profile_round_trips_through_the_results_file(misbehaving, tmp_path):
    """inf and NaN are results: stored as standard JSON and read back as floats, with the flags."""
    suite = suites.load(write_suite(tmp_path / "tiny", seq_lens="[12]"))
    run = run_suite(suite, ["explodes"], results_dir=tmp_path)
    text = run.path.read_text()
    json.loads(text)  # standard JSON: no bare Infinity or NaN
    assert "Infinity" not in text and '"inf"' in text
    gradient = files.read(run.path).points[0].gradient
    assert gradient.exploded and gradient.first_nonfinite_lag == 6
    assert all(math.isinf(v) for v in gradient.g[:6]) and all(math.isfinite(v) for v in gradient.g[6:])
    assert gradient == run.results.points[0].gradient


@pytest.mark.parametrize("threads", [1, 2])
def test_the_worker_runs_with_the_requested_thread_count(misbehaving, tmp_path, threads):
    suite = suites.load(write_suite(tmp_path / "tiny", threads=str(threads)))
    run = run_suite(suite, ["threads"], results_dir=tmp_path)
    info = run.results.backends["threads"].info
    assert info["threads"] == threads and info["env_threads"] == str(threads)
    assert info["cpus"] == sorted(os.sched_getaffinity(0))[:threads]  # pinned, as asv's --cpu-affinity
    blas = [pool for pool in info["thread_pools"] if pool["user_api"] == "blas"]
    assert blas and all(pool["num_threads"] == threads for pool in blas)


def test_numpy_profile_equals_torch_autograd_per_step_gradients(tmp_path):
    pytest.importorskip("torch", reason="torch is not installed (pip install '.[torch]')")
    from harness.measure.gradients import profile
    from tests.support import torch_oracle as oracle

    suite = suites.load(write_suite(tmp_path / "s", batch="3", hidden="8"))
    for cell in ("rnn_tanh", "lstm", "gru"):
        p = grid.build(TemporalOrderTask(), cell, 30, suite, seed=0).last_step
        backend = NumpyBackend()
        backend.prepare(p)
        backend.forward()
        backend.backward(per_step=True)
        dh, _ = oracle.per_step(cell, p.params, p.x, p.grad_h)
        g_torch = np.linalg.norm(dh, axis=-1).mean(-1)
        assert relative_error(profile(backend.gradients().h), g_torch) <= 1e-10, cell


def test_memory_grows_linearly_in_T_and_covers_the_stored_activations(tmp_path):
    suite = suites.load(write_suite(tmp_path / "s", batch="32", hidden="128", dtype='"float32"',
                                    metrics='["memory"]'))
    peaks = {}
    for T in (250, 500):  # 25 and 49 MB of activations: far above the chunk buffers (0.8 MB)
        result = point.measure(NumpyBackend(), grid.PointJob("numpy", "lstm", T, suite), TemporalOrderTask())
        peaks[T] = result.memory
        assert result.memory.peak_bytes >= result.memory.activation_bytes
        assert result.time is None and result.gradient is None  # only what the suite asked for
    assert 1.8 <= peaks[500].peak_bytes / peaks[250].peak_bytes <= 2.2


def test_every_point_records_the_machine_load_around_it(tmp_path):
    suite = suites.load(write_suite(tmp_path / "tiny"))
    point = run_suite(suite, ["numpy"], results_dir=tmp_path).results.points[0]
    assert point.load_before is not None and point.load_after is not None
    assert point.load_before.load1 >= 0 and point.busy == (max(point.load_before.load1, point.load_after.load1)
                                                            > os.cpu_count())


WRONG_RESULTS = """
import numpy as np
from harness import hookimpl
from harness_plugins.numpy_backend import NumpyBackend
HARNESS_PLUGIN_API = 2

class LongProfile(NumpyBackend):
    name = "long-profile"
    def gradients(self):
        grads = super().gradients()
        if grads.h is not None:  # (2T + 3, B, H): longer than the sequence
            grads.h = np.concatenate([grads.h, grads.h, grads.h[:3]])
        return grads

class NanWeights(NumpyBackend):
    name = "nan-weights"
    def gradients(self):
        grads = super().gradients()
        grads.params["weight_ih"] = grads.params["weight_ih"] * np.nan
        return grads

class NanAtTheEnd(NumpyBackend):
    name = "nan-at-the-end"
    def gradients(self):
        grads = super().gradients()
        if grads.h is not None:
            grads.h = grads.h.copy()
            grads.h[-1] = np.nan  # where the loss enters: not an explosion
        return grads

@hookimpl
def harness_backends():
    return [LongProfile, NanWeights, NanAtTheEnd]
"""


def test_results_of_the_wrong_shape_fail_the_point_and_non_finite_ones_are_classified(plugin_dir, tmp_path):
    add_distribution(plugin_dir, "wrong", {"wrong_results": WRONG_RESULTS}, {"wrong": "wrong_results"})
    suite = suites.load(write_suite(tmp_path / "tiny", seq_lens="[12]"))
    run = run_suite(suite, ["long-profile", "nan-weights", "nan-at-the-end"], results_dir=tmp_path)
    by_backend = {p.backend: p for p in run.results.points}
    long = by_backend["long-profile"]
    assert long.status == "failed" and "dL/dh_t of shape (27, 2, 4), expected (12, 2, 4)" in long.reason
    nan = by_backend["nan-weights"]
    assert nan.status == "ok" and nan.gradient.nonfinite == ("dL/dweight_ih",) and not nan.gradient.exploded
    end = by_backend["nan-at-the-end"]
    assert end.gradient.nonfinite_from_start and not end.gradient.exploded
    assert "not an explosion" in end.note
    assert nan.gradient.broken and end.gradient.broken and "recorded as failed in the history" in nan.note


def test_a_grid_over_hidden_and_batch_sizes_measures_each_size(tmp_path):
    """Each (H, B) point is measured at its own size: the analytic activations follow H x B."""
    suite = suites.load(write_suite(tmp_path / "tiny", hidden="[4, 8]", batch="[2, 3]", seq_lens="[12]",
                                    metrics='["time", "memory"]', timing={"repeat": "2", "rounds": "1"}))
    run = run_suite(suite, ["numpy"], results_dir=tmp_path / "results")
    points = files.read(run.path).points
    assert sorted((p.hidden, p.batch) for p in points) == [(4, 2), (4, 3), (8, 2), (8, 3)]
    for p in points:
        assert p.status == "ok" and p.memory.activation_bytes == 12 * p.batch * 1 * p.hidden * 8  # rnn_tanh, f64
    frame = dataframe.frame(files.read(run.path))
    assert sorted(zip(frame["hidden"], frame["batch"])) == [(4, 2), (4, 3), (8, 2), (8, 3)]


def test_time_exact_times_the_exact_path_beside_the_timed_one(tmp_path):
    """[timing] exact (--time-exact): the exact backward is timed, read back from the file and in the
    DataFrame; without it, no exact timing is taken."""
    suite = suites.load(write_suite(tmp_path / "tiny", cells='["lstm"]', seq_lens="[12]", metrics='["time"]',
                                    timing={"repeat": "3", "rounds": "1", "exact": "true"}))
    assert suite.timing.exact
    run = run_suite(suite, ["numpy"], results_dir=tmp_path / "exact")
    (p,) = files.read(run.path).points
    assert p.status == "ok" and len(p.time.exact.samples) == 3 and p.time.exact.median > 0
    assert dataframe.frame(files.read(run.path))["exact_median_s"].iloc[0] == p.time.exact.median
    headers, rows, _ = pivot(files.read(run.path))
    assert "numpy / exact" in headers and rows[0][headers.index("numpy / exact")].count(" / ") == 1
    plain = run_suite(suite.with_overrides(exact=False), ["numpy"], results_dir=tmp_path / "plain")
    (q,) = files.read(plain.path).points
    assert q.status == "ok" and q.time.exact is None and "numpy" in pivot(files.read(plain.path))[0]
    # pooled over rounds: the exact samples of both rounds, or none when a round has none
    assert len(p.time.pooled_with(p.time).exact.samples) == 6 and p.time.pooled_with(q.time).exact is None


def test_time_exact_times_forward_and_the_per_step_backward_on_the_profile_draw():
    """The statement --time-exact times is the exact path: forward, then backward(per_step=True), on the
    gradient profile's problem (the loss on the last step), not the timed path's."""
    import dataclasses

    from harness.run.grid import SeededProblem
    from harness.suites import Timing
    from harness.testing import random_problem

    calls = []

    class Recording(NumpyBackend):
        def forward(self):
            calls.append(("forward", self.problem))
            super().forward()

        def backward(self, per_step=False):
            calls.append(("backward", per_step, self.problem))
            super().backward(per_step=per_step)

    timed = random_problem("rnn_tanh", (6, 2, 3, 4), seed=0)
    draw = SeededProblem(timed, dataclasses.replace(timed, grad_h=-timed.grad_h), loss_init=1.0, baseline=1.0)
    measured = point._time_exact(Recording(threads=1), draw, Timing(repeat=4), 1)
    assert len(measured.samples) == 4
    backwards = [c for c in calls if c[0] == "backward"]
    assert backwards and all(per_step for _, per_step, _ in backwards)
    assert all(c[-1] is draw.last_step for c in calls)
    assert len(calls) == 2 * len(backwards) and calls[0][0] == "forward"


def test_time_exact_on_the_command_line(tmp_path):
    suite = write_suite(tmp_path / "tiny", cells='["rnn_tanh"]', seq_lens="[12]", metrics='["time"]')
    result = harness("run", str(suite), "--backends", "numpy", "--time-exact", "--repeat", "3", "--no-asv",
                     "--output", str(tmp_path / "run.json"))
    assert result.returncode == 0, result.stderr
    assert "numpy / exact" in result.stdout
    assert len(files.read(tmp_path / "run.json").points[0].time.exact.samples) == 3
