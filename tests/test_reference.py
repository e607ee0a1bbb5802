"""The NumPy reference against finite differences (all cells) and torch autograd (torch's cells).

Relative error is max|actual - expected| / max|expected| over a tensor.
"""
from __future__ import annotations

import numpy as np
import pytest

from harness import reference
from harness.cells import CELLS
from tests.helpers import make_problem, max_rel_err

FD_TOL = 1e-6  # central differences with eps = 1e-6 in float64
TORCH_TOL = 1e-10


def _loss(cell, params, x, grad_h, h0=None, c0=None) -> float:
    """L = sum_t <grad_h[t], h_t>: its gradient with respect to each h_t's direct part is grad_h[t]."""
    acts = reference.forward(cell, params, x, h0=h0, c0=c0)
    return float(np.sum(grad_h * acts.hs[1:]))


def _fd(f, array: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    grad = np.zeros_like(array)
    for idx in np.ndindex(array.shape):
        old = array[idx]
        array[idx] = old + eps
        up = f()
        array[idx] = old - eps
        down = f()
        array[idx] = old
        grad[idx] = (up - down) / (2 * eps)
    return grad


@pytest.mark.parametrize("cell", list(CELLS))
def test_finite_differences(cell):
    p = make_problem(cell, T=6, B=2, I=3, H=4)
    params, x, grad_h = {k: v.copy() for k, v in p.params.items()}, p.x.copy(), p.grad_h
    acts = reference.forward(cell, params, x)
    grads = reference.backward(cell, params, x, acts, grad_h, per_step=True)
    loss = lambda: _loss(cell, params, x, grad_h)  # noqa: E731
    for name in params:
        assert max_rel_err(grads.params[name], _fd(loss, params[name])) <= FD_TOL, name
    assert max_rel_err(grads.x, _fd(loss, x)) <= FD_TOL
    # dL/dh_t: restart the recurrence from a perturbed h_t (c_t held fixed) over the remaining steps.
    hs = acts.hs
    cs = acts.saved["cs"] if cell == "lstm" else None
    for t in range(x.shape[0]):
        h_t = hs[t + 1].copy()
        c_t = cs[t + 1] if cs is not None else None

        def tail(t=t, h_t=h_t, c_t=c_t):
            rest = _loss(cell, params, x[t + 1 :], grad_h[t + 1 :], h0=h_t, c0=c_t) if t + 1 < len(x) else 0.0
            return rest + float(np.sum(grad_h[t] * h_t))

        assert max_rel_err(grads.h[t], _fd(tail, h_t)) <= FD_TOL, t


@pytest.mark.parametrize("cell", ["rnn_tanh", "lstm", "gru"])
def test_matches_torch_autograd(cell):
    oracle = pytest.importorskip("tests.torch_oracle")
    p = make_problem(cell, T=9, B=3, I=4, H=6, seed=1)
    acts = reference.forward(cell, p.params, p.x)
    grads = reference.backward(cell, p.params, p.x, acts, p.grad_h, per_step=True)
    h, dparams, dx = oracle.layer(cell, p.params, p.x, p.grad_h)
    assert max_rel_err(acts.hs[1:], h) <= TORCH_TOL
    for name, expected in dparams.items():
        assert max_rel_err(grads.params[name], expected) <= TORCH_TOL, name
    assert max_rel_err(grads.x, dx) <= TORCH_TOL
    dh, dc = oracle.per_step(cell, p.params, p.x, p.grad_h)
    assert max_rel_err(grads.h, dh) <= TORCH_TOL
    if cell == "lstm":
        assert max_rel_err(grads.c, dc) <= TORCH_TOL


def test_gru_cho_is_a_different_function():
    p = make_problem("gru", T=20, B=4, I=3, H=8, seed=2)
    h_gru = reference.forward("gru", p.params, p.x).hs
    h_cho = reference.forward("gru_cho", p.params, p.x).hs
    assert np.max(np.abs(h_gru - h_cho)) > 1e-2


def test_float32_matches_float64():
    p64 = make_problem("lstm", T=30, B=4, I=3, H=8)
    p32 = make_problem("lstm", T=30, B=4, I=3, H=8, dtype="float32")
    a64 = reference.forward("lstm", p64.params, p64.x)
    a32 = reference.forward("lstm", p32.params, p32.x)
    assert a32.hs.dtype == np.float32
    assert max_rel_err(a32.hs, a64.hs) <= 1e-5
