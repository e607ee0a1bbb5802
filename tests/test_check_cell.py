"""``harness check CELL`` (issue 27, point 5): a cell plugin's contract, every init, its derived
gradients against central finite differences, and the backends that claim it; what it says when
something is wrong; and how ``harness check NAME`` tells a backend from a cell."""
from __future__ import annotations

import pytest

from harness.backend import Availability
from harness.cell import Cell, ParamSpec, StateSpec, zeros
from harness.cells import cell_class, cell_names, from_plugin
from harness.cli import main
from harness.plugins import get_registry
from harness.report.console import cell_check_report
from harness.testing import FD_CHECKS, check_cell_gradients, check_cell_plugin
from tests.support.cli import harness, one_line_error

torch = pytest.importorskip("torch", reason="the derived reference differentiates the step with torch")

from harness_plugins.torch_backend import TorchCPUBackend  # noqa: E402

#: Every built-in cell (harness_plugins.cells): those not from a third-party plugin.
BUILTIN = tuple(name for name in cell_names() if not from_plugin(name))


@pytest.mark.parametrize("name", BUILTIN)
def test_every_builtin_cell_passes_its_own_checks_for_every_init(name):
    """The contract, each init's step in both dtypes, and each init's derived gradients (every
    parameter, dL/dx, dL/ds_0 and every state's per-step gradient: LSTM's c and LRU's re and im
    included) against finite differences. The backends are checked below and by test_testing."""
    cls = cell_class(name)
    report = check_cell_plugin(cls, backends=[])
    assert report.passed, cell_check_report(report)
    rows = {(r.init, r.check) for r in report.results}
    assert {(init, check) for init in cls.init_names() for check in FD_CHECKS} <= rows
    assert report.origin.startswith("plugin 'cells' (rnn-grad-harness ")


def test_harness_check_cell_on_the_command_line_checks_the_backends_that_claim_it(tmp_path):
    """A classic cell against the hand-written reference (numpy), a new one against the derived one
    (torch-cpu); an unavailable backend (torch-cuda here) is skipped and the exit is still 0."""
    result = harness("check", "gru_cho", "--dtypes", "float64", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert out.startswith("cell 'gru_cho' from plugin 'cells'")
    assert "numpy: all checks passed" in out and "torch-cpu: all checks passed" in out
    assert "FAIL" not in out
    last = out.rstrip().splitlines()[-1]
    assert last.startswith("gru_cho: all checks passed (backends checked: numpy, torch-cpu")
    if "torch-cuda" not in last.split("skipped")[0]:  # no GPU here: skipped, not failed
        assert "skipped (unavailable): torch-cuda" in last
        assert "backend 'torch-cuda': skipped, unavailable here:" in out


class BadTanh(torch.autograd.Function):
    """tanh whose backward is 10% too large: the forward (what finite differences see) is right."""

    @staticmethod
    def forward(ctx, a):
        y = a.tanh()
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        return 1.1 * grad * (1 - y * y)


class BrokenBackward(Cell):
    name = "broken_backward"
    params = (ParamSpec("W", lambda i, h: (h, i)), ParamSpec("U", lambda i, h: (h, h)),
              ParamSpec("b", lambda i, h: (h,), zeros))
    state = (StateSpec("h"),)

    def step(self, p, state, x):
        return {"h": BadTanh.apply(x @ p["W"].T + state["h"] @ p["U"].T + p["b"])}


def test_a_step_whose_backward_is_wrong_fails_the_finite_difference_check_naming_the_tensor():
    report = check_cell_plugin(BrokenBackward)
    assert not report.passed
    failed = {r.check: r.detail for r in report.results if not r.passed}
    assert set(failed) == set(FD_CHECKS)  # every gradient goes through the broken tanh
    assert "broken_backward init 'default' T,B,I,H=(5, 2, 3, 4): dL/dW derived vs finite differences" in failed[
        "dL/dparam"]
    assert "> 1e-06 x largest" in failed["dL/dparam"]
    assert report.note.startswith("no backend checked: the cell failed its own checks")
    text = cell_check_report(report)
    assert "FAIL" in text and text.rstrip().splitlines()[-1].startswith(
        f"broken_backward: {len(failed)} of {len(report.results)} cell checks FAILED")


class ForgetsSameStepPath(Cell):
    """Two states, b computed from the new a in the same step: the per-step check must bump a where
    the step makes it (so that b sees the bump), as the derived reference's total gradient counts it."""

    name = "coupled_states"
    params = (ParamSpec("W", lambda i, h: (h, i)), ParamSpec("U", lambda i, h: (h, h)))
    state = (StateSpec("a"), StateSpec("h"))

    def step(self, p, state, x):
        a = (x @ p["W"].T + state["h"] @ p["U"].T).tanh() + 0.5 * state["a"]
        return {"a": a, "h": (a * 1.5).sin() + state["h"] * 0.3}


def test_the_per_step_gradient_of_a_state_used_in_its_own_step_is_checked_through_that_use():
    rows = {r.check: r for r in check_cell_gradients(ForgetsSameStepPath)}
    assert all(r.passed for r in rows.values()), rows
    assert rows["per-step dL/ds_t"].error < 1e-6


class NoStep(Cell):
    name = "no_step"
    params = (ParamSpec("W", lambda i, h: (h, i)),)


def test_a_class_that_is_not_a_cell_fails_the_contract_and_nothing_else_runs():
    report = check_cell_plugin(NoStep)
    assert [(r.check, r.passed) for r in report.results] == [("contract", False)]
    assert "defines no step(self, p, state, x)" in report.results[0].detail
    assert report.note == "nothing else checked: the class is not a valid cell"


class ScaledMingru(TorchCPUBackend):
    """Claims every cell and returns dL/dparam 1% too large."""

    name = "scaled-torch"

    def gradients(self):
        grads = super().gradients()
        grads.params = {k: v * 1.01 for k, v in grads.params.items()}
        return grads


class Nowhere(TorchCPUBackend):
    name = "nowhere"

    @classmethod
    def availability(cls):
        return Availability(False, "needs a quantum computer")


def test_a_backend_claiming_the_cell_with_wrong_gradients_fails_it_and_an_unavailable_one_is_skipped():
    report = check_cell_plugin(cell_class("mingru"), backends=[ScaledMingru, Nowhere], dtypes=["float64"])
    assert all(r.passed for r in report.results)  # the cell itself is fine
    assert not report.passed and report.skipped == ["nowhere"]
    bad = report.backends[0]
    failed = {r.check: r.detail for r in bad.results if not r.passed}
    assert "parameter gradients" in failed and "mingru float64" in failed["parameter gradients"]
    text = cell_check_report(report)
    assert "backend 'nowhere': skipped, unavailable here: needs a quantum computer" in text
    assert text.rstrip().splitlines()[-1] == ("mingru: backend(s) scaled-torch FAILED (backends checked: "
                                              "scaled-torch; skipped (unavailable): nowhere)")
    skipped_only = check_cell_plugin(cell_class("mingru"), backends=[Nowhere], inits=["default"])
    assert skipped_only.passed and skipped_only.skipped == ["nowhere"]


def test_a_cell_that_is_not_installed_is_checked_without_backends():
    report = check_cell_plugin(ForgetsSameStepPath)
    assert report.passed and not report.backends
    assert report.origin.endswith("(not installed)")
    assert report.note.startswith("no backend checked: cell 'coupled_states' is not installed")


# -- harness check NAME: a backend or a cell -------------------------------------------------------
def _main(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_a_name_that_is_both_a_backend_and_a_cell_must_be_said_which(capsys, monkeypatch):
    monkeypatch.setitem(get_registry().cells, "numpy", cell_class("mingru"))
    code, _, err = _main(capsys, "check", "numpy")
    assert code == 2 and err.count("\n") == 1
    assert ("'numpy' is both a backend and a cell" in err
            and "harness check --backend numpy, or harness check --cell numpy" in err)
    code, out, _ = _main(capsys, "check", "--backend", "numpy", "--cells", "gru_cho", "--dtypes", "float64")
    assert code == 0 and "numpy: all checks passed" in out


def test_an_unknown_name_lists_backends_and_cells(tmp_path):
    line = one_line_error(harness("check", "minGRU", cwd=tmp_path))
    assert "unknown backend or cell 'minGRU'; installed backends: numba, numpy, torch-cpu" in line
    assert "; known cells: rnn_tanh, lstm, gru, gru_cho, rnn_relu, indrnn, mingru, lru" in line


def test_options_of_the_other_form_are_refused(capsys):
    code, _, err = _main(capsys, "check", "mingru", "--cells", "lstm")
    assert code == 2 and "--cells applies to a backend check; 'mingru' is a cell" in err
    code, _, err = _main(capsys, "check", "numpy", "--backends", "numba")
    assert code == 2 and "--backends applies to a cell check; 'numpy' is a backend" in err
    code, _, err = _main(capsys, "check", "mingru", "--backends", "numba")
    assert code == 2 and "unknown backend 'numba'; backends that run cell mingru:" in err
    code, _, err = _main(capsys, "check", "mingru", "--cell", "lstm")
    assert code == 2 and "name one thing to check" in err


def test_harness_check_of_a_broken_cell_exits_1_with_the_reason(capsys, monkeypatch):
    monkeypatch.setitem(get_registry().cells, "broken_backward", BrokenBackward)
    code, out, _ = _main(capsys, "check", "broken_backward")
    assert code == 1
    assert "dL/dW derived vs finite differences" in out and "FAIL" in out
    assert "no backend checked: the cell failed its own checks" in out
    assert out.rstrip().splitlines()[-1].startswith("broken_backward: ") and "cell checks FAILED" in out
