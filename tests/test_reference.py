"""The NumPy reference against finite differences (all cells) and torch autograd (torch's cells).

Relative error is max|actual - expected| / max|expected| over a tensor.
"""
from __future__ import annotations

import numpy as np
import pytest

from harness import reference
from harness.reference import HAND_WRITTEN
from harness.testing import central_difference, random_problem, relative_error

FD_TOL = 1e-6  # central differences with eps = 1e-6 in float64
TORCH_TOL = 1e-10


def _loss(cell, params, x, grad_h, h0=None, c0=None) -> float:
    """L = sum_t <grad_h[t], h_t>: its gradient with respect to each h_t's direct part is grad_h[t]."""
    acts = reference.forward(cell, params, x, h0=h0, c0=c0)
    return float(np.sum(grad_h * acts.hs[1:]))




@pytest.mark.parametrize("cell", list(HAND_WRITTEN))
def test_finite_differences(cell):
    p = random_problem(cell, (6, 2, 3, 4))
    params, x, grad_h = {k: v.copy() for k, v in p.params.items()}, p.x.copy(), p.grad_h
    acts = reference.forward(cell, params, x)
    grads = reference.backward(cell, params, x, acts, grad_h, per_step=True)
    loss = lambda: _loss(cell, params, x, grad_h)  # noqa: E731
    for name in params:
        assert relative_error(grads.params[name], central_difference(loss, params[name])) <= FD_TOL, name
    assert relative_error(grads.x, central_difference(loss, x)) <= FD_TOL
    # dL/dh_t: restart the recurrence from a perturbed h_t (c_t held fixed) over the remaining steps.
    hs = acts.hs
    cs = acts.saved["cs"] if cell == "lstm" else None
    for t in range(x.shape[0]):
        h_t = hs[t + 1].copy()
        c_t = cs[t + 1] if cs is not None else None

        def tail(t=t, h_t=h_t, c_t=c_t):
            rest = _loss(cell, params, x[t + 1 :], grad_h[t + 1 :], h0=h_t, c0=c_t) if t + 1 < len(x) else 0.0
            return rest + float(np.sum(grad_h[t] * h_t))

        assert relative_error(grads.h[t], central_difference(tail, h_t)) <= FD_TOL, t


@pytest.mark.parametrize("cell", ["rnn_tanh", "lstm", "gru"])
def test_matches_torch_autograd(cell):
    pytest.importorskip("torch", reason="torch is not installed (pip install '.[torch]')")
    from tests.support import torch_oracle as oracle
    p = random_problem(cell, (9, 3, 4, 6), seed=1)
    acts = reference.forward(cell, p.params, p.x)
    grads = reference.backward(cell, p.params, p.x, acts, p.grad_h, per_step=True)
    h, dparams, dx = oracle.layer(cell, p.params, p.x, p.grad_h)
    assert relative_error(acts.hs[1:], h) <= TORCH_TOL
    for name, expected in dparams.items():
        assert relative_error(grads.params[name], expected) <= TORCH_TOL, name
    assert relative_error(grads.x, dx) <= TORCH_TOL
    dh, dc = oracle.per_step(cell, p.params, p.x, p.grad_h)
    assert relative_error(grads.h, dh) <= TORCH_TOL
    if cell == "lstm":
        assert relative_error(grads.c, dc) <= TORCH_TOL


def test_gru_cho_is_a_different_function():
    p = random_problem("gru", (20, 4, 3, 8), seed=2)
    h_gru = reference.forward("gru", p.params, p.x).hs
    h_cho = reference.forward("gru_cho", p.params, p.x).hs
    assert np.max(np.abs(h_gru - h_cho)) > 1e-2


def test_float32_matches_float64():
    p64 = random_problem("lstm", (30, 4, 3, 8))
    p32 = random_problem("lstm", (30, 4, 3, 8), "float32")
    a64 = reference.forward("lstm", p64.params, p64.x)
    a32 = reference.forward("lstm", p32.params, p32.x)
    assert a32.hs.dtype == np.float32
    assert relative_error(a32.hs, a64.hs) <= 1e-5
