"""Cells drive the whole run (issue 27): the long-range command with the new cells on a small grid,
every (backend, cell) point ok where the backend runs the cell and skipped with a one-line reason
where it does not; and cell plugins that misbehave fail their own points only, named with their plugin."""
from __future__ import annotations

import math

import pytest

from harness import suites
from harness.plugins import get_registry
from harness.record import files
from harness.record.results import CompileResult
from harness.run.executor import LocalExecutor
from harness.run.runner import run_suite
from tests.support.cli import harness, one_line_error
from tests.support.plugins import add_distribution
from tests.support.suites import write_suite

pytest.importorskip("torch", reason="the new cells run on torch's generic path")

CELLS = ("lstm", "mingru", "lru", "indrnn", "rnn_relu")
BACKENDS = ["numpy", "numba", "torch-cpu"]


class NoCompileTime(LocalExecutor):
    """Every point as `harness run` measures it, but not numba's cold compile time (30 s on a 2-core
    machine; test_runner and test_numba_backend measure it)."""

    def measure_compile(self, backend, cell, suite, into=None):
        return CompileResult(backend, cell, suite.dtype, "skipped", reason="not measured in this test")


def _run(tmp_path, cells, backends, **settings):
    cells_toml = "[" + ", ".join(f'"{c}"' for c in cells) + "]"
    folder = write_suite(tmp_path / "s", cells=cells_toml, seq_lens="[12, 20]", hidden="4", batch="2",
                         metrics='["time", "memory", "gradient"]', **settings)
    run = run_suite(suites.load(folder), backends, results_dir=tmp_path / "r",
                    executor=NoCompileTime())
    return files.read(run.path)


def test_the_long_range_cells_run_where_a_backend_runs_them_and_are_skipped_with_why_elsewhere(tmp_path):
    data = _run(tmp_path, CELLS, BACKENDS)
    by_key = {(p.backend, p.cell, p.seq_len): p for p in data.points}
    assert len(by_key) == len(BACKENDS) * len(CELLS) * 2
    for (backend, cell, _), p in by_key.items():
        runs = backend == "torch-cpu" or cell == "lstm"
        if not runs:
            assert p.status == "skipped", p.reason
            runs_here = "rnn_tanh, lstm, gru, gru_cho" if backend == "numpy" else "rnn_tanh, lstm, gru"
            assert p.reason == f"backend {backend!r} has no kernel for cell {cell!r}; cells it runs: {runs_here}"
            continue
        assert p.status == "ok", (backend, cell, p.reason)
        g = p.gradient
        assert p.time.forward_backward.median > 0 and p.memory.activation_bytes > 0 and p.flops.forward > 0
        assert len(g.g) == p.steps and all(math.isfinite(v) for v in g.g) and g.g[-1] > 0  # relu units may die
        assert len(g.lyapunov) == 4  # no predicted rate where dead relu units annihilate the state (a clamp)
        assert (g.predicted_decay_rate is None) == (g.degenerate_fraction > 0)
        blocks = {"lstm": ["i", "f", "g", "o"], "rnn_relu": ["h"]}.get(cell, [])
        assert [s.gate for s in g.spectra] == blocks  # diagonal recurrences have no recurrent matrix
        assert (g.closed_form_decay_rate is not None) == (cell in ("lru", "indrnn"))
        assert (g.gc is not None) == (cell == "lstm")  # LSTM keeps its dL/dc_t profile
    # the core's float64 reference gives every backend the same problem: lstm's profiles agree
    for T in (12, 20):
        profiles = [by_key[(b, "lstm", T)].gradient.g for b in BACKENDS]
        for other in profiles[1:]:
            assert other == pytest.approx(profiles[0], rel=1e-8)
    lru = by_key[("torch-cpu", "lru", 20)].gradient
    modulus = 10 ** -lru.closed_form_decay_rate  # the slowest |lambda| of the default ring [0.9, 0.999]
    assert 0.9 <= modulus <= 0.999


def test_an_unknown_cell_on_the_command_line_is_one_line_naming_the_known_ones(tmp_path):
    line = one_line_error(harness("run", str(write_suite(tmp_path / "s")), "--cells", "lstm,minGRU", "--no-asv"))
    assert ("unknown cell 'minGRU'; known cells: rnn_tanh, lstm, gru, gru_cho, rnn_relu, indrnn, mingru, lru"
            in line)


def test_an_init_of_one_cell_works_for_that_cell_and_is_refused_for_the_others(tmp_path):
    """--inits irnn is rnn_relu's (Le et al. 2015); with lstm in the grid it is a one-line error."""
    folder = write_suite(tmp_path / "s", cells='["rnn_relu"]', inits='["default", "irnn"]')
    assert suites.load(folder).inits == ("default", "irnn")
    line = one_line_error(harness("run", str(folder), "--cells", "rnn_relu,lstm", "--no-asv"))
    assert "init 'irnn' does not apply to cell 'lstm' (it applies to: rnn_relu)" in line
    line = one_line_error(harness("run", str(folder), "--inits", "radius=2", "--cells", "lru", "--no-asv"))
    assert "init 'radius': its radius must be in [0, 1), got 2.0" in line


BAD_CELLS = """
import numpy as np
from harness import hookimpl
from harness.cell import Cell, ParamSpec, StateSpec

HARNESS_PLUGIN_API = 3

class _Base(Cell):
    params = (ParamSpec("w", lambda i, h: (h, i)), ParamSpec("u", lambda i, h: (h,)))
    state = (StateSpec("h"),)
    output = "h"
    description = reference = "a test cell"

    def step(self, p, state, x):
        return {"h": (x @ p["w"].T + p["u"] * state["h"]).tanh()}

class Good(_Base):
    name = "good_diag"

class RaisingStep(_Base):
    name = "raising_step"
    def step(self, p, state, x):
        raise RuntimeError("no step today")

class LateRaising(_Base):
    # passes the three-step vetting; raises in the worker, at a point's 16th step (t counts the steps)
    name = "late_raising"
    state = (StateSpec("h"), StateSpec("t", size=lambda h: 1))
    def step(self, p, state, x):
        if float(state["t"][0, 0].detach()) >= 15:
            raise RuntimeError("step 16 is too far")
        return {"h": (x @ p["w"].T + p["u"] * state["h"]).tanh(), "t": state["t"] + 1}

class WrongShape(_Base):
    name = "wrong_shape"
    def step(self, p, state, x):
        return {"h": (x @ p["w"].T)[:, :1]}

def _nan(rng, i, h):
    return np.full(h, np.nan)

class NanParams(_Base):
    name = "nan_params"
    params = (ParamSpec("w", lambda i, h: (h, i)), ParamSpec("u", lambda i, h: (h,), _nan))

class Impostor(_Base):
    name = "lstm"  # a built-in's name: left out, recorded on this plugin

class Malformed(Cell):
    name = "no step"  # not a safe name, and no step: left out

@hookimpl
def harness_cells():
    return [Good, RaisingStep, LateRaising, WrongShape, NanParams, Impostor, Malformed]
"""


def test_misbehaving_cells_fail_their_own_points_named_with_their_plugin(plugin_dir, tmp_path):
    add_distribution(plugin_dir, "badcells", {"badcells_plugin": BAD_CELLS}, {"badcells": "badcells_plugin"})
    registry = get_registry()
    record = next(p for p in registry.plugins if p.name == "badcells")
    assert record.status == "loaded"
    assert record.cells == ["good_diag", "raising_step", "late_raising", "wrong_shape", "nan_params"]
    assert registry.cells["lstm"].__module__ == "harness_plugins.cells.lstm"  # the built-in keeps its name
    assert "cell 'lstm' (badcells_plugin.Impostor) is already offered by plugin 'cells'" in record.error
    assert "'no step'" in record.error and "left out" in record.error
    assert registry.cell_origin("good_diag") == "plugin 'badcells' (badcells 0.1)"

    cells = ("lstm", "good_diag", "raising_step", "late_raising", "wrong_shape", "nan_params")
    data = _run(tmp_path, cells, ["numpy", "torch-cpu"], timing={"repeat": "1"})
    by_key = {(p.backend, p.cell, p.seq_len): p for p in data.points}
    where = "(from plugin 'badcells' (badcells 0.1))"
    for T in (12, 20):
        assert by_key[("numpy", "lstm", T)].status == by_key[("torch-cpu", "lstm", T)].status == "ok"
        assert by_key[("torch-cpu", "good_diag", T)].status == "ok"
        assert by_key[("numpy", "good_diag", T)].status == "skipped"
        for cell, why in (("raising_step", "step raised RuntimeError: no step today"),
                          ("wrong_shape", "step returned state h of shape (2, 1), expected (2, 4)"),
                          ("nan_params", "parameter u holds NaN or inf")):
            p = by_key[("torch-cpu", cell, T)]
            assert p.status == "failed" and why in p.reason and where in p.reason, p.reason
            assert "\n" not in p.reason
    late = by_key[("torch-cpu", "late_raising", 20)]  # found in the worker, at its 16th step
    assert late.status == "failed" and "step 16 is too far" in late.reason and where in late.reason
    assert by_key[("torch-cpu", "late_raising", 12)].status == "ok"
    listing = harness("plugins").stdout
    assert "good_diag" in listing and "badcells" in listing


def test_the_worked_example_of_writing_a_cell_passes_harness_check(plugin_dir):
    """docs/writing-a-cell.md's leaky cell, installed as its plugin: registered, its inits on the init
    axis, and the torch backend's generic path passes every check against the derived reference."""
    import re
    from pathlib import Path

    from harness import inits
    from harness.cell import validate_cell
    from harness.testing import check_backend
    from harness_plugins.torch_backend import TorchCPUBackend

    page = (Path(__file__).resolve().parent.parent / "docs" / "writing-a-cell.md").read_text()
    (source,) = [block for block in re.findall(r"```python\n(.*?)```", page, re.S) if "harness_leaky.py" in block]
    add_distribution(plugin_dir, "harness-leaky", {"harness_leaky": source}, {"leaky": "harness_leaky"})
    registry = get_registry()
    assert registry.cell_origin("leaky") == "plugin 'leaky' (harness-leaky 0.1)"
    validate_cell(registry.cells["leaky"])
    assert inits.check(("default", "slow=0.5", "orthogonal"), ("leaky",)) == ("default", "slow=0.5", "orthogonal")
    report = check_backend(TorchCPUBackend, cells=["leaky"])
    assert report.passed and {r.dtype for r in report.results} == {"float32", "float64"}
