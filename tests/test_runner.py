"""The runner: every outcome of a grid cell is recorded and the rest of the grid goes on."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from harness import measure, problem, results, suites
from harness.plugins import get_registry
from harness.runner import run_suite
from harness.tasks import TemporalOrderTask
from harness_plugins.numpy_backend import NumpyBackend
from tests.conftest import UNAVAILABLE_PLUGIN, add_distribution, write_suite
from tests.helpers import max_rel_err

MISBEHAVING = """
import os, time
from harness.hookspecs import hookimpl
from harness_plugins.numpy_backend import NumpyBackend

HARNESS_PLUGIN_API = 1

class Raises(NumpyBackend):
    name = "raises"
    def forward(self):
        if self.problem.x.shape[0] == 20:
            raise RuntimeError("deliberate failure at T=20")
        super().forward()

class Hangs(NumpyBackend):
    name = "hangs"
    def forward(self):
        if self.problem.x.shape[0] == 20:
            time.sleep(3600)
        super().forward()

class Dies(NumpyBackend):
    name = "dies"
    def forward(self):
        if self.problem.x.shape[0] == 20:
            os.kill(os.getpid(), 9)
        super().forward()

@hookimpl
def harness_backends():
    return [Raises, Hangs, Dies]
"""


@pytest.fixture
def misbehaving(plugin_dir):
    add_distribution(plugin_dir, "misbehaving", {"misbehaving_plugin": MISBEHAVING},
                     {"misbehaving": "misbehaving_plugin"})
    return plugin_dir


def test_raising_hanging_and_dying_backends_are_failed_and_the_grid_goes_on(misbehaving, tmp_path):
    suite = suites.load(write_suite(tmp_path / "tiny", seq_lens="[20, 12]", timing={"timeout": "8"}))
    run = run_suite(suite, ["raises", "hangs", "dies", "numpy"], results_dir=tmp_path / "results", progress=False)
    by_key = {(r["backend"], r["seq_len"]): r for r in run.data["records"]}
    assert by_key[("raises", 20)]["status"] == "failed"
    assert "deliberate failure at T=20" in by_key[("raises", 20)]["reason"]
    assert by_key[("hangs", 20)]["status"] == "failed" and "timed out after 8 s" in by_key[("hangs", 20)]["reason"]
    assert by_key[("dies", 20)]["status"] == "failed" and "SIGKILL" in by_key[("dies", 20)]["reason"]
    for backend in ("raises", "hangs", "dies", "numpy"):  # the restarted worker finishes the grid
        assert by_key[(backend, 12)]["status"] == "ok"
    assert by_key[("numpy", 20)]["status"] == "ok"
    on_disk = results.read(run.path)
    assert on_disk["status"] == "complete" and len(on_disk["records"]) == 8


def test_backend_that_cannot_start_fails_its_cells_once(plugin_dir, tmp_path):
    starts = tmp_path / "starts"
    add_distribution(plugin_dir, "broken_init", {"broken_init_plugin": f"""
        from harness.hookspecs import hookimpl
        from harness_plugins.numpy_backend import NumpyBackend
        HARNESS_PLUGIN_API = 1
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
    run = run_suite(suite, ["broken-init", "numpy"], results_dir=tmp_path, progress=False)
    broken = [r for r in run.data["records"] if r["backend"] == "broken-init"]
    assert [r["status"] for r in broken] == ["failed", "failed"]
    assert all("backend failed to start" in r["reason"] and "no device handle" in r["reason"] for r in broken)
    assert starts.read_text().count("start") == 1
    assert {r["status"] for r in run.data["records"] if r["backend"] == "numpy"} == {"ok"}


def test_unavailable_backend_and_unsupported_cell_are_skipped_with_reason(plugin_dir, tmp_path):
    add_distribution(plugin_dir, "limited", {"limited_plugin": UNAVAILABLE_PLUGIN}, {"limited": "limited_plugin"})
    suite = suites.load(write_suite(tmp_path / "tiny", cells='["rnn_tanh", "gru"]'))
    run = run_suite(suite, ["nowhere", "rnn-only"], results_dir=tmp_path, progress=False)
    by_key = {(r["backend"], r["cell"]): r for r in run.data["records"]}
    assert by_key[("nowhere", "rnn_tanh")]["status"] == "skipped"
    assert by_key[("nowhere", "rnn_tanh")]["reason"] == "needs a quantum computer"
    assert by_key[("rnn-only", "gru")]["status"] == "skipped" and "supported cells: rnn_tanh" in by_key[("rnn-only", "gru")]["reason"]
    assert by_key[("rnn-only", "rnn_tanh")]["status"] == "ok"
    assert run.counts == {"ok": 1, "failed": 0, "skipped": 3}


def test_ctrl_c_stops_cleanly_and_keeps_finished_cells(misbehaving, tmp_path):
    folder = write_suite(tmp_path / "tiny", seq_lens="[12, 20]", timing={"timeout": "600"})
    out = tmp_path / "run.json"
    proc = subprocess.Popen([sys.executable, "-m", "harness", "run", str(folder), "--backends", "hangs",
                             "--output", str(out), "-q"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # wait until the T=12 cell is recorded and T=20 hangs
        if out.exists() and len(json.loads(out.read_text())["records"]) == 1:
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    data = results.read(out)
    assert data["status"] == "interrupted"
    assert [(r["seq_len"], r["status"]) for r in data["records"]] == [(12, "ok")]


def test_results_file_is_self_describing_and_loads_as_a_dataframe(tmp_path):
    get_registry.cache_clear()
    suite = suites.load(write_suite(tmp_path / "tiny", cells='["lstm"]', seq_lens="[12, 16]"))
    run = run_suite(suite, ["numpy"], results_dir=tmp_path, progress=False)
    data = results.read(run.path)
    prov = data["provenance"]
    assert {"cpu", "machine", "libraries", "threads", "git", "python"} <= set(prov)
    assert data["suite"]["sha256"] == suite.sha256
    frame = results.load(run.path)
    assert list(frame["seq_len"]) == [12, 16] and set(frame["status"]) == {"ok"}
    assert (frame["forward_backward_median_s"] > 0).all() and (frame["peak_bytes"] > 0).all()
    assert len(frame["g"].iloc[1]) == 16
    rec = data["records"][0]
    assert len(rec["gradient"]["gc"]) == 12 and len(rec["time"]["forward"]["samples"]) == 2


def test_numpy_profile_equals_torch_autograd_per_step_gradients():
    oracle = pytest.importorskip("tests.torch_oracle")
    suite = {"batch": 3, "hidden": 8, "init": "default", "init_gain": 1.0, "dtype": "float64"}
    for cell in ("rnn_tanh", "lstm", "gru"):
        p = problem.build(TemporalOrderTask(), cell, 30, suite, seed=0).last_step
        backend = NumpyBackend()
        backend.prepare(p)
        backend.forward()
        backend.backward(per_step=True)
        dh, _ = oracle.per_step(cell, p.params, p.x, p.grad_h)
        g_torch = np.linalg.norm(dh, axis=-1).mean(-1)
        from harness.metrics import profile

        assert max_rel_err(profile(backend.gradients().h), g_torch) <= 1e-10, cell


def test_memory_grows_linearly_in_T_and_covers_the_stored_activations():
    suite = {"batch": 32, "hidden": 128, "init": "default", "init_gain": 1.0, "dtype": "float32",
             "seeds": [0], "metrics": ["memory"], "timing": {}}
    peaks = {}
    for T in (1000, 2000):
        rec = measure.measure(NumpyBackend(), problem.CellJob("numpy", "lstm", T, suite), TemporalOrderTask())
        peaks[T] = rec["memory"]
        assert rec["memory"]["peak_bytes"] >= rec["memory"]["activation_bytes"]
    assert 1.8 <= peaks[2000]["peak_bytes"] / peaks[1000]["peak_bytes"] <= 2.2
