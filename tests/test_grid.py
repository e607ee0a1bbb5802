"""From a grid point to problems: built once per run for every backend, ahead of the timings."""
from __future__ import annotations

import numpy as np

from harness import suites
from harness.run.grid import build, build_ahead
from harness_plugins.tasks import TemporalOrderTask
from tests.support.suites import write_suite


def _same(a, b) -> None:
    for name in ("timed", "last_step"):
        pa, pb = getattr(a, name), getattr(b, name)
        np.testing.assert_array_equal(pa.x, pb.x)
        np.testing.assert_array_equal(pa.grad_h, pb.grad_h)
        for key in pa.params:
            np.testing.assert_array_equal(pa.params[key], pb.params[key])
    assert a.window[0] == b.window[0] and a.loss_init == b.loss_init


def test_problems_built_ahead_are_the_ones_each_point_would_build(tmp_path):
    suite = suites.load(write_suite(tmp_path / "s"))
    task, folder = TemporalOrderTask(), tmp_path / "problems"
    folder.mkdir()
    points = [(cell, T, suite, seed) for cell in ("rnn_tanh", "gru") for T in (12, 16) for seed in (0, 1)]
    build_ahead(task, points + points[:3], str(folder), 2)  # repeated points are built once
    assert len(list(folder.glob("*.pickle"))) == len(points)
    for cell, T, at, seed in points:
        _same(build(task, cell, T, at, seed, str(folder)), build(task, cell, T, at, seed))


def test_a_problem_kept_in_the_folder_is_read_back_not_rebuilt(tmp_path, monkeypatch):
    from harness.run import grid

    suite = suites.load(write_suite(tmp_path / "s"))
    first = build(TemporalOrderTask(), "lstm", 12, suite, 0, str(tmp_path))
    monkeypatch.setattr(grid, "_build", lambda *args: (_ for _ in ()).throw(AssertionError("built again")))
    _same(build(TemporalOrderTask(), "lstm", 12, suite, 0, str(tmp_path)), first)
