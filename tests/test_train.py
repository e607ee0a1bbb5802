"""Training: the core's readout gradient, identical curves on every backend, divergence, Ctrl-C,
and one grid point trained to solved end to end."""
from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest

from harness import suites
from harness.plugins import get_registry
from harness.record import files
from harness.run.grid import PointJob
from harness.run.runner import run_suite
from harness.run.train import READOUT, readout, readout_backward, train
from harness_plugins.tasks import AddingTask, CopyTask, TemporalOrderTask
from harness_plugins.numpy_backend import NumpyBackend
from tests.support.cli import harness, start_harness, stop_when
from tests.support.plugins import add_distribution
from tests.support.suites import write_suite

ADDING = {"task": '"adding"', "hidden": "8", "dtype": '"float64"'}
TRAIN = {"seq_lens": "[12]", "iterations": "50", "batch": "8", "eval_every": "10", "eval_size": "32",
         "profile_every": "25", "lr": "0.01"}


def _suite(tmp_path, cells: str = '["gru"]', **train):
    folder = write_suite(tmp_path / "s", cells=cells, **ADDING)
    text = (folder / "suite.toml").read_text() + "\n[train]\n" + "\n".join(
        f"{k} = {v}" for k, v in {**TRAIN, **train}.items()) + "\n"
    (folder / "suite.toml").write_text(text)
    return suites.load(folder)


@pytest.mark.parametrize("task", [CopyTask(), AddingTask(), TemporalOrderTask()], ids=lambda t: t.name)
def test_readout_gradients_by_finite_differences(task):
    rng = np.random.default_rng(0)
    T, B, H = 12, 3, 5
    batch = task.generate(T, B, rng)
    h = rng.standard_normal((task.steps(T), B, H))
    params = {READOUT[0]: rng.standard_normal((task.output_size, H)), READOUT[1]: rng.standard_normal(task.output_size)}
    _, dy = task.loss(readout(params, h), batch)
    dh, grads = readout_backward(params, h, dy)
    eps = 1e-6

    def fd(array: np.ndarray) -> np.ndarray:
        out = np.zeros_like(array)
        for idx in np.ndindex(array.shape):
            old = array[idx]
            array[idx] = old + eps
            up = task.loss(readout(params, h), batch)[0]
            array[idx] = old - eps
            down = task.loss(readout(params, h), batch)[0]
            array[idx] = old
            out[idx] = (up - down) / (2 * eps)
        return out

    for name in READOUT:
        assert np.max(np.abs(grads[name] - fd(params[name]))) <= 1e-8, name
    assert np.max(np.abs(dh - fd(h))) <= 1e-8


def test_clipping_is_an_axis_recorded_with_how_often_it_clipped(tmp_path):
    """clip = [0, 1e-3]: one point never clips, the other clips every iteration; each snapshot carries
    W_hh's spectra and the top Lyapunov exponents beside its gradient profile."""
    suite = _suite(tmp_path, clip="[0, 1e-3]", iterations="10", eval_every="5", profile_every="5")
    assert suite.axes("train") == ("clip",) and suite.train.clips == (0.0, 0.001)
    run = run_suite(suite, ["numpy"], results_dir=tmp_path / "r", mode="train")
    by_clip = {p.clip: p.training for p in files.read(run.path).points}
    assert by_clip[0.0].clipped_fraction == 0.0 and by_clip[0.001].clipped_fraction == 1.0
    for snapshot in by_clip[0.0].snapshots:
        assert [s.gate for s in snapshot.gradient.spectra] == ["r", "z", "n"]
        assert len(snapshot.gradient.lyapunov) == suite.lyapunov
        assert snapshot.gradient.predicted_decay_rate == pytest.approx(-snapshot.gradient.lyapunov[0] / np.log(10))


@pytest.mark.parametrize("cell", ["rnn_tanh", "lstm", "gru"])
def test_every_backend_trains_identically_in_float64(tmp_path, cell):
    """Same seed, same stream, same core: the eval-loss curves of numpy, numba and torch-cpu agree
    to a relative 1e-8 over 50 iterations (rounding only)."""
    suite = _suite(tmp_path, cells=f'["{cell}"]')
    registry = get_registry()
    curves = {}
    for name in ("numpy", "numba", "torch-cpu"):
        cls = registry.backends[name]
        if not cls.availability():
            pytest.skip(f"{name}: {cls.availability().reason}")
        point = train(cls(threads=1), PointJob(name, cell, 12, suite, "train", 0), AddingTask())
        assert point.training.eval_iterations == (0, 10, 20, 30, 40, 50)
        curves[name] = np.array(point.training.eval_loss)
    assert not np.allclose(curves["numpy"][0], curves["numpy"][-1])  # it did train
    for name in ("numba", "torch-cpu"):
        np.testing.assert_allclose(curves[name], curves["numpy"], rtol=1e-8, atol=0)


class Diverges(NumpyBackend):
    """Its hidden states turn to NaN from the 20th forward on (a blown-up kernel)."""

    name = "diverges"
    forwards = 0

    def forward(self):
        super().forward()
        Diverges.forwards += 1

    def outputs(self):
        out = super().outputs()
        return type(out)(h=out.h * np.nan, c=out.c) if Diverges.forwards >= 20 else out


def test_divergence_stops_the_point_and_is_recorded(tmp_path):
    suite = _suite(tmp_path)
    point = train(Diverges(), PointJob("diverges", "gru", 12, suite, "train", 0), AddingTask())
    t = point.training
    assert point.status == "ok" and t.diverged_at is not None and t.iterations == t.diverged_at < 50
    assert np.isnan(t.train_loss[-1]) and all(np.isfinite(t.train_loss[:-1]))
    assert point.note == f"diverged at iteration {t.diverged_at}"


HANGS_WHILE_TRAINING = """
import os, time
from harness import hookimpl
from harness_plugins.numpy_backend import NumpyBackend
HARNESS_PLUGIN_API = 2
class HangsLate(NumpyBackend):
    name = "hangs-late"
    forwards = 0
    def forward(self):
        HangsLate.forwards += 1
        if HangsLate.forwards == 40:
            open(os.environ["HANG_MARKER"], "w").close()
            time.sleep(3600)
        super().forward()
@hookimpl
def harness_backends():
    return [HangsLate]
"""


def test_ctrl_c_keeps_the_partial_curve_of_the_running_point(plugin_dir, tmp_path, monkeypatch):
    add_distribution(plugin_dir, "hangs_late", {"hangs_late_plugin": HANGS_WHILE_TRAINING},
                     {"hangs_late": "hangs_late_plugin"})
    suite = _suite(tmp_path)
    marker, out = tmp_path / "hanging", tmp_path / "train.json"
    monkeypatch.setenv("HANG_MARKER", str(marker))
    proc = start_harness("train", suite.path, "--backends", "hangs-late", "--no-asv", "--output", str(out), "-q",
                         cwd=tmp_path)
    err = stop_when(proc, marker.exists)
    assert proc.returncode == 130, err
    run = files.read(out)
    (point,) = run.points
    assert run.status == "interrupted" and point.status == "interrupted"
    # The backend hung at its 40th forward, in the third ten iterations: the evaluations at 0, 10 and 20
    # had reported, with the curve up to the last of them.
    t = point.training
    assert t.eval_iterations == (0, 10, 20) and len(t.train_loss) == 20 < t.planned_iterations


@pytest.mark.slow
def test_harness_train_learns_the_adding_problem_end_to_end(tmp_path):
    """One GRU learns the adding problem at T = 12 (H = 16): eval MSE below 0.1 x 1/6."""
    folder = write_suite(tmp_path / "s", cells='["gru"]', task='"adding"', hidden="16", dtype='"float32"')
    (folder / "suite.toml").write_text((folder / "suite.toml").read_text() + "\n[train]\nseq_lens = [12]\n"
                                       "lr = 0.01\niterations = 400\neval_every = 50\nprofile_every = 200\n")
    out = tmp_path / "train.json"
    result = harness("train", str(folder), "--backends", "numba", "--no-asv", "--output", str(out), cwd=tmp_path,
                     env={**os.environ})
    assert result.returncode == 0, result.stderr
    point = files.read(out).points[0]
    assert point.training.solved_at is not None and point.training.final_ratio <= 0.1
    assert f"solved at iteration {point.training.solved_at}" in result.stdout
    data = json.loads(out.read_text())
    assert data["mode"] == "train" and data["points"][0]["seed"] == 0


def test_training_is_recorded_into_asv_and_published(tmp_path):
    """asv gets the three training benchmarks (an unsolved point is budget + 1, not NaN or null), and
    `harness publish` draws the training pages next to the benchmark ones."""
    from tests.support.asv_project import make_repo

    repo = make_repo(tmp_path / "proj")
    suite_file = repo / "suites" / "tiny" / "suite.toml"
    suite_file.write_text(suite_file.read_text() + "\n[train]\nseq_lens = [12]\niterations = 20\nbatch = 4\n"
                                                   "eval_every = 10\neval_size = 16\nprofile_every = 10\n")
    from tests.support.asv_project import git

    git(repo, "commit", "-qam", "train table")
    harness("train", "tiny", "--backends", "numpy", "-q", cwd=repo, check=True)
    bench = json.loads((repo / "results/benchmarks.json").read_text())
    metrics = {"train_final_loss_ratio", "train_iterations_to_solve", "train_unsolved_fraction",
               "train_time_per_iteration"}
    assert {f"tiny.{m}" for m in metrics} <= set(bench)
    result_file = next(p for p in (repo / "results").glob("*/*.json") if p.name != "machine.json")
    data = json.loads(result_file.read_text())
    columns = data["result_columns"]
    solve = dict(zip(columns, data["results"]["tiny.train_iterations_to_solve"]))
    assert solve["params"] == [["'numpy'"], ["'rnn_tanh'", "'gru'"], ["12"], ["4"], ["2"], ["'default'"], ["1.0"]]
    # temporal order is not learned in 20 iterations: no median (right-censored, not "budget + 1"), all unsolved
    assert all(math.isnan(v) for v in solve["result"])
    unsolved = dict(zip(columns, data["results"]["tiny.train_unsolved_fraction"]))
    assert unsolved["result"] == [1.0, 1.0]
    harness("publish", cwd=repo, check=True)
    page = (repo / "results/html/harness/tiny-train/index.html").read_text()
    for stem in ("learning_curves", "decay_while_learning", "profile_heatmap_gru"):
        assert (repo / "results/html/harness/tiny-train" / f"{stem}.png").stat().st_size > 0
        assert f'src="{stem}.png"' in page
    assert "Outcomes over seeds" in page and "&gt; 20" in page and "0 (1 seed)" in page  # one seed, said so
    assert 'src="survival.png"' in page
