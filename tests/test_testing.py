"""The conformance check (harness.testing, `harness check`): every built-in backend passes it, and
every check fails for a backend that breaks exactly what that check guards."""
from __future__ import annotations

import numpy as np
import pytest

from harness.plugins import get_registry
from harness.report.console import check_report
from harness.testing import CHECKS, check_backend
from harness_plugins.numpy_backend import NumpyBackend
from tests.support.cli import harness
from tests.support.plugins import UNAVAILABLE_PLUGIN, add_distribution


class ScaledGradient(NumpyBackend):
    """dL/dweight_hh is 1% too large."""

    name = "scaled"

    def gradients(self):
        grads = super().gradients()
        grads.params["weight_hh"] = grads.params["weight_hh"] * 1.01
        return grads


class WrongShape(NumpyBackend):
    """dL/dx comes back with the batch axis first."""

    name = "wrong-shape"

    def gradients(self):
        grads = super().gradients()
        grads.x = np.swapaxes(grads.x, 0, 1)
        return grads


class MutatesInput(NumpyBackend):
    """Writes into the problem's x after computing its results (as an in-place kernel might)."""

    name = "mutates-input"

    def gradients(self):
        grads = super().gradients()
        self.problem.x[...] = 0.0
        return grads


class Noisy(NumpyBackend):
    """Adds noise far below the tolerance: every value check passes, the repeat check does not."""

    name = "noisy"

    def gradients(self):
        grads = super().gradients()
        grads.params["bias_ih"] = grads.params["bias_ih"] * (1 + 1e-15 * np.random.default_rng().standard_normal())
        return grads


class WrongHiddenStates(NumpyBackend):
    name = "wrong-hidden"

    def outputs(self):
        out = super().outputs()
        out.h = out.h + 1e-3
        return out


class WrongCellStates(NumpyBackend):
    name = "wrong-c"

    def outputs(self):
        out = super().outputs()
        if out.c is not None:
            out.c = out.c * 1.01
        return out


class WrongPerStep(NumpyBackend):
    """The timed path is right, the per-step dL/dh_t is not (it misses the recurrent part at t = 0)."""

    name = "wrong-per-step"

    def gradients(self):
        grads = super().gradients()
        if grads.h is not None:
            grads.h = grads.h.copy()
            grads.h[0] = self._grad_h[0]
        return grads


def _failed(backend_cls, cells=("gru",), dtypes=("float64",)) -> dict[str, str]:
    report = check_backend(backend_cls, cells=list(cells), dtypes=list(dtypes))
    return {r.check: r.detail for r in report.results if not r.passed}


def test_a_scaled_weight_gradient_fails_naming_cell_dtype_and_tensor():
    report = check_backend(ScaledGradient, cells=["gru"], dtypes=["float64"])
    failed = [r for r in report.results if not r.passed]
    assert [r.check for r in failed] == ["parameter gradients", "trains like the reference"]
    assert failed[0].cell == "gru" and failed[0].dtype == "float64"
    assert "dL/dweight_hh" in failed[0].detail and failed[0].error == pytest.approx(0.01, rel=0.05)
    text = check_report(report)
    assert "FAIL" in text and "gru" in text and "float64" in text and "dL/dweight_hh" in text
    assert "2 of 8 checks FAILED" in text


def test_a_wrong_shape_fails_naming_the_shape():
    failed = _failed(WrongShape, cells=["rnn_tanh"], dtypes=["float32"])
    assert "dL/dx has shape (3, 1, 2), expected (1, 3, 2)" in failed["shapes"]
    assert "rnn_tanh float32" in failed["shapes"]


@pytest.mark.parametrize("backend_cls, check, detail, only", [
    (MutatesInput, "inputs not mutated", "the backend changed its input x", False),
    (Noisy, "deterministic", "dL/dbias_ih differs between two identical calls", True),
    (WrongHiddenStates, "hidden states", "h relative error", False),  # its readout trains on them too
    (WrongPerStep, "per-step dL/ds_t", "dL/dh_t relative error", True),
], ids=lambda v: v.name if isinstance(v, type) else None)
def test_each_check_fails_for_the_backend_that_breaks_it(backend_cls, check, detail, only):
    failed = _failed(backend_cls)
    assert check in failed and detail in failed[check], failed
    if only:  # nothing else is wrong with it, so nothing else may fail
        assert list(failed) == [check]


class TrainsDifferently(NumpyBackend):
    """Every check of one forward and backward passes; the training check does not: from the second
    problem on, dL/dweight_ih is 1% off (a stale-buffer bug that a single call cannot show)."""

    name = "trains-differently"
    calls = 0

    def gradients(self):
        grads = super().gradients()
        TrainsDifferently.calls += 1
        if self.problem.x.shape == (12, 8, 2) and TrainsDifferently.calls > 2:  # the training check's shape
            grads.params["weight_ih"] = grads.params["weight_ih"] * 1.01
        return grads


def test_a_backend_that_trains_differently_fails_the_training_check():
    failed = _failed(TrainsDifferently)
    assert list(failed) == ["trains like the reference"]
    assert "eval-loss curve of 50 training iterations" in failed["trains like the reference"]


def test_a_wrong_cell_state_fails_the_hidden_state_check_for_lstm():
    failed = _failed(WrongCellStates, cells=("lstm",))
    assert list(failed) == ["hidden states"] and ": c relative error" in failed["hidden states"]


@pytest.mark.parametrize("backend", ["numpy", "numba", "torch-cpu", "torch-cpu-generic"])
def test_every_builtin_cpu_backend_passes_every_check(backend):
    cls = get_registry().backends[backend]
    if not cls.availability():
        pytest.skip(cls.availability().reason)
    report = check_backend(cls)
    assert report.passed, check_report(report)
    assert {r.check for r in report.results} == set(CHECKS)
    assert {(r.cell, r.dtype) for r in report.results} == {(c, d) for c in cls.cell_names() for d in cls.dtypes}


def test_check_of_an_unavailable_backend_says_why(plugin_dir):
    add_distribution(plugin_dir, "nowhere", {"nowhere_plugin": UNAVAILABLE_PLUGIN}, {"nowhere": "nowhere_plugin"})
    result = harness("check", "nowhere")  # a skip, as harness run skips it (issue 30): nothing failed
    assert result.returncode == 0, result.stderr
    assert "backend 'nowhere': skipped, unavailable here: needs a quantum computer" in result.stdout


CRASHING_PLUGIN = """
import os, signal, time
from harness import hookimpl
from harness_plugins.numpy_backend import NumpyBackend
HARNESS_PLUGIN_API = 2

class Segfaults(NumpyBackend):
    name = "segfaults"
    def forward(self):
        os.kill(os.getpid(), signal.SIGSEGV)

class Hangs(NumpyBackend):
    name = "hangs"
    def forward(self):
        time.sleep(3600)

@hookimpl
def harness_backends():
    return [Segfaults, Hangs]
"""


@pytest.mark.parametrize("backend, extra, why", [
    ("segfaults", (), "the check did not finish: its process died (signal SIGSEGV)"),
    ("hangs", ("--timeout", "3"), "the check did not finish: timed out after 3 s"),
])
def test_check_of_a_backend_that_crashes_or_hangs_fails_with_one_line(plugin_dir, backend, extra, why):
    """harness check runs the plugin's code in a process of its own: the CLI reports, it does not die."""
    add_distribution(plugin_dir, "crashing", {"crashing_plugin": CRASHING_PLUGIN}, {"crashing": "crashing_plugin"})
    result = harness("check", backend, "--cells", "rnn_tanh", "--dtypes", "float64", *extra)
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip() == f"backend {backend}: FAILED: {why}", result.stderr


def test_parametrize_with_checks_of_a_cell_gives_one_test_per_check():
    """A cell plugin's tests are one decorator: the contract, each init's finite differences, and
    each (backend, dtype) that runs the installed cell (one skipped test while it is not installed)."""
    pytest.importorskip("torch")
    from harness.cells import cell_class
    from harness.testing import parametrize_with_checks
    from tests.test_check_cell import ForgetsSameStepPath

    def ids(cls) -> list[str]:
        return [p.id for p in parametrize_with_checks(cls).args[1]]

    mingru = ids(cell_class("mingru"))
    assert mingru[:2] == ["contract", "finite-differences-default"]
    assert {"torch-cpu-float32", "torch-cpu-float64"} <= set(mingru) and "numpy-float64" not in mingru
    assert ids(ForgetsSameStepPath) == ["contract", "finite-differences-default", "backends"]
    skipped = parametrize_with_checks(ForgetsSameStepPath).args[1][-1]
    assert "is not installed" in skipped.marks[0].kwargs["reason"]
    contract = parametrize_with_checks(cell_class("lru")).args[1][0].values[0]
    contract()  # passes
