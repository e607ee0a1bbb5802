"""coRNN's own tests: the harness's cell checks (one decorator), the step against the authors'
coRNNCell written as in their repository, and the linear oscillator's Jacobian."""
from __future__ import annotations

import numpy as np
import pytest

from harness import derived
from harness.testing import parametrize_with_checks

from harness_cornn import CoRNN, CoRNNpsMNIST

torch = pytest.importorskip("torch")


@parametrize_with_checks(CoRNN)
def test_cornn(check):
    check()


@parametrize_with_checks(CoRNNpsMNIST)
def test_cornn_psmnist(check):
    check()


class AuthorsCell(torch.nn.Module):
    """coRNNCell as in github.com/tk-rusch/coRNN, psMNIST/network.py (and adding/model.py): one
    Linear on cat(x, hz, hy); hz first, then hy from the new hz."""

    def __init__(self, n_inp, n_hid, dt, gamma, epsilon):
        super().__init__()
        self.dt, self.gamma, self.epsilon = dt, gamma, epsilon
        self.i2h = torch.nn.Linear(n_inp + n_hid + n_hid, n_hid)

    def forward(self, x, hy, hz):
        hz = hz + self.dt * (torch.tanh(self.i2h(torch.cat((x, hz, hy), 1))) - self.gamma * hy - self.epsilon * hz)
        hy = hy + self.dt * hz
        return hy, hz


@pytest.mark.parametrize("cls", [CoRNN, CoRNNpsMNIST])
def test_the_cell_is_the_authors_cell(cls):
    """The same parameters in both layouts: every y_t and z_t of 30 steps agree to rounding."""
    T, B, I, H = 30, 3, 2, 5
    cell = cls()
    params = cell.init_params(I, H, np.random.default_rng(1))
    x = np.random.default_rng(2).standard_normal((T, B, I))
    theirs = AuthorsCell(I, H, cls.dt, cls.gamma, cls.epsilon).double()
    with torch.no_grad():
        theirs.i2h.weight.copy_(torch.tensor(np.concatenate([params["V"], params["W_z"], params["W"]], axis=1)))
        theirs.i2h.bias.copy_(torch.tensor(params["b"]))
        hy = hz = torch.zeros(B, H, dtype=torch.float64)
        ys, zs = [], []
        for t in range(T):
            hy, hz = theirs(torch.tensor(x[t]), hy, hz)
            ys.append(hy.numpy().copy())
            zs.append(hz.numpy().copy())
    ours = derived.forward(cell, params, x)
    np.testing.assert_allclose(ours.states["y"], np.stack(ys), rtol=0, atol=1e-12)
    np.testing.assert_allclose(ours.states["z"], np.stack(zs), rtol=0, atol=1e-12)
    np.testing.assert_array_equal(ours.y, ours.states["y"])  # the readout sees y


def test_default_draws_are_nn_linears_for_fan_in_I_plus_2H():
    I, H = 3, 50
    params = CoRNN().init_params(I, H, np.random.default_rng(0))
    bound = 1 / np.sqrt(I + 2 * H)
    for name, value in params.items():
        assert np.abs(value).max() <= bound and np.abs(value).max() > 0.9 * bound, name


def test_without_recurrent_weights_each_unit_is_the_damped_linear_oscillator():
    """W = W_z = 0: the step's Jacobian d(y, z)_n / d(y, z)_{n-1} is the scheme's 2 x 2 matrix per unit."""
    cell = CoRNN()
    I, H, B = 2, 3, 2
    rng = np.random.default_rng(0)
    params = cell.init_params(I, H, rng)
    params["W"][:] = 0.0
    params["W_z"][:] = 0.0
    prev = {"y": rng.standard_normal((B, H)), "z": rng.standard_normal((B, H))}
    x_t = rng.standard_normal((B, I))
    v = {"y": rng.standard_normal((B, H)), "z": rng.standard_normal((B, H))}
    got = derived.step_vjp(cell, params, prev, x_t, v)
    jac = cell.oscillator_jacobian()  # rows (y_n, z_n), columns (y_{n-1}, z_{n-1})
    np.testing.assert_allclose(got["y"], jac[0, 0] * v["y"] + jac[1, 0] * v["z"], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(got["z"], jac[0, 1] * v["y"] + jac[1, 1] * v["z"], rtol=1e-12, atol=1e-14)
