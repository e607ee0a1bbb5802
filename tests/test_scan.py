"""The parallel form of a cell (Cell.scan: mingru's and lru's log-space scan) and the backends that
run it (torch-cpu-scan): the same states and gradients as the derived float64 reference, in float64
to rounding and in float32 within harness check's tolerance; other cells skipped with the reason."""
from __future__ import annotations

import numpy as np
import pytest

from harness import derived
from harness.cell import has_scan
from harness.cells import cell, cell_class
from harness.testing import TOLERANCES, check_cell, relative_error

torch = pytest.importorskip("torch")

from harness_plugins.torch_backend import TorchCPUScanBackend  # noqa: E402

SCAN_CELLS = ("mingru", "lru")


def test_which_cells_have_a_scan_form():
    assert {n for n in ("rnn_tanh", "lstm", "gru", "gru_cho", "rnn_relu", "indrnn", "mingru", "lru")
            if has_scan(cell_class(n))} == set(SCAN_CELLS)
    assert TorchCPUScanBackend.cell_names() == SCAN_CELLS


def test_other_cells_are_skipped_with_the_reason():
    why = TorchCPUScanBackend.supports("lstm", "float32")
    assert not why and why.reason == ("cell 'lstm' has no parallel scan form (Cell.scan; torch-cpu runs it stepped); "
                                      "backend 'torch-cpu-scan' runs only the cells that have one: mingru, lru")
    assert TorchCPUScanBackend.supports("mingru", "float32")


@pytest.mark.parametrize("name", SCAN_CELLS)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_the_scan_backend_passes_harness_check(name, dtype):
    failed = [(r.check, r.error, r.detail) for r in check_cell(TorchCPUScanBackend, name, dtype) if not r.passed]
    assert not failed


def _problem(name, steps, seed=0, batch=3, inputs=2, hidden=5):
    rng = np.random.default_rng(seed)
    c = cell(name)
    params = c.init_params(inputs, hidden, rng)
    x = rng.standard_normal((steps, batch, inputs))
    grad_y = rng.standard_normal((steps, batch, hidden))
    return c, params, x, grad_y


def _scan_run(c, params, x, grad_y, dtype):
    tdtype = getattr(torch, dtype)
    p = {k: torch.tensor(v, dtype=tdtype, requires_grad=True) for k, v in params.items()}
    xt = torch.tensor(x, dtype=tdtype, requires_grad=True)
    add = {s.name: torch.zeros(x.shape[0], x.shape[1], grad_y.shape[2], dtype=tdtype, requires_grad=True)
           for s in c.state}
    states = c.scan(p, xt, add)
    y = c.readout_input(p, states, xt) if c.output is None else states[c.output]
    grads = torch.autograd.grad(y, [*p.values(), xt, *add.values()], grad_outputs=torch.tensor(grad_y, dtype=tdtype))
    n = len(p)
    return ({k: v.detach().numpy() for k, v in states.items()}, dict(zip(p, (g.numpy() for g in grads[:n]))),
            grads[n].numpy(), dict(zip(add, (g.numpy() for g in grads[n + 1:]))))


@pytest.mark.parametrize("name", SCAN_CELLS)
def test_float64_scan_matches_the_derived_reference_tightly_at_a_long_length(name):
    c, params, x, grad_y = _problem(name, 500)
    ref_out = derived.forward(c, params, x)
    ref = derived.backward(c, params, x, grad_y)
    states, dparams, dx, dstates = _scan_run(c, params, x, grad_y, "float64")
    for k in states:
        assert relative_error(states[k], ref_out.states[k]) < TOLERANCES["float64"], k
        assert relative_error(dstates[k], ref.states[k]) < TOLERANCES["float64"], k  # the total dL/ds_t, through `add`
    for k in dparams:
        assert relative_error(dparams[k], ref.params[k]) < TOLERANCES["float64"], k
    assert relative_error(dx, ref.x) < TOLERANCES["float64"]


@pytest.mark.parametrize("name", SCAN_CELLS)
def test_float32_scan_stays_within_the_check_tolerance_at_t_2000(name):
    c, params, x, grad_y = _problem(name, 2000, batch=2, hidden=4)
    ref_out = derived.forward(c, params, x)
    states, *_ = _scan_run(c, params, x, grad_y, "float32")
    for k in states:
        assert relative_error(states[k], ref_out.states[k]) < TOLERANCES["float32"], k


def test_the_first_state_does_not_depend_on_the_decay_even_in_rounding():
    """h_1 = b_1 exactly: the scan's last term is added as b_t + a_t h_{t-1}, so a T = 1 gradient with
    respect to lambda is exactly 0, as the stepped cell's."""
    c, params, x, grad_y = _problem("lru", 1)
    _, dparams, _, _ = _scan_run(c, params, x, grad_y, "float64")
    assert not dparams["nu_log"].any() and not dparams["theta_log"].any()
