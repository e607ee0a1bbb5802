"""The built-in cells (harness_plugins/cells): derived gradients against finite
differences; the classic cells against the hand-written NumPy reference and torch.nn; and the closed
forms of the cells that answer vanishing gradients differently (lru, mingru, indrnn, rnn_relu+IRNN)."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from harness import derived, reference  # noqa: E402
from harness_plugins.cells import CELLS, Gru, Indrnn, Lru, Lstm, MinGru, RnnRelu, RnnTanh  # noqa: E402
from tests.test_derived import RTOL, check_against_finite_differences  # noqa: E402

T, B, I, H = 5, 2, 3, 4


def _problem(cell, init="default", seed=0, steps=T, batch=B, inputs=I, hidden=H):
    rng = np.random.default_rng(seed)
    params = cell.init_params(inputs, hidden, rng, init, steps=steps)
    x = rng.standard_normal((steps, batch, inputs))
    grad_y = rng.standard_normal((steps, batch, hidden))
    state0 = {s.name: 0.5 * rng.standard_normal((batch, s.size_for(hidden))) for s in cell.state}
    return params, x, grad_y, state0


@pytest.mark.parametrize("cls", CELLS, ids=lambda c: c.name)
def test_derived_backward_matches_central_differences(cls):
    """Every parameter gradient, dL/dx, dL/ds_0 and the per-step dL/ds_t of every state agree with
    central differences (eps 1e-6) to 1e-6 of the largest entry; a state that another state is
    computed from in the same step (LSTM's c_t; lru_block's first layer, re1 and im1) is checked
    through that use by harness check (tests/test_check_cell.py) and, for LSTM, the reference below."""
    cell = cls()
    params, x, grad_y, state0 = _problem(cell)
    per_step = {"lstm": ("h",), "lru_block": ("re2", "im2")}.get(cls.name)
    assert check_against_finite_differences(cell, params, x, grad_y, state0, per_step) < RTOL


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    """max |a - b| relative to the largest entry of b."""
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


CLASSIC = [c for c in CELLS if c.name in ("rnn_tanh", "lstm", "gru", "gru_cho")]


@pytest.mark.parametrize("cls", CLASSIC, ids=lambda c: c.name)
def test_classic_cells_match_the_hand_written_reference(cls):
    """forward, every gradient, the per-step dL/dh_t (and dL/dc_t), dL/ds_0, from a non-zero state
    and with a gradient arriving from beyond the last step: 1e-12 of the largest entry."""
    cell = cls()
    params, x, grad_y, state0 = _problem(cell, steps=7, batch=3, seed=4)
    has_c = cls is Lstm
    rng = np.random.default_rng(9)
    after = {s.name: rng.standard_normal((3, H)) for s in cell.state}
    acts = reference.forward(cls.name, params, x, h0=state0["h"], c0=state0.get("c"))
    ref = reference.backward(cls.name, params, x, acts, grad_y, per_step=True, dh_after=after["h"],
                             dc_after=after.get("c"))
    out = derived.forward(cell, params, x, state0=state0)
    got = derived.backward(cell, params, x, grad_y, state0=state0, grad_final=after)
    assert _rel(out.states["h"], acts.hs[1:]) < 1e-12 and _rel(out.y, acts.hs[1:]) < 1e-12
    for name in params:
        assert _rel(got.params[name], ref.params[name]) < 1e-12, name
    assert _rel(got.x, ref.x) < 1e-12
    assert _rel(got.states["h"], ref.h) < 1e-12 and _rel(got.states0["h"], ref.h0) < 1e-12
    if has_c:
        assert _rel(out.states["c"], acts.saved["cs"][1:]) < 1e-12
        assert _rel(got.states["c"], ref.c) < 1e-12 and _rel(got.states0["c"], ref.c0) < 1e-12


@pytest.mark.parametrize("cls, module", [
    (RnnTanh, lambda: torch.nn.RNN(I, H, nonlinearity="tanh", dtype=torch.float64)),
    (RnnRelu, lambda: torch.nn.RNN(I, H, nonlinearity="relu", dtype=torch.float64)),
    (Lstm, lambda: torch.nn.LSTM(I, H, dtype=torch.float64)),
    (Gru, lambda: torch.nn.GRU(I, H, dtype=torch.float64)),
], ids=["rnn_tanh", "rnn_relu", "lstm", "gru"])
def test_torch_cells_match_torch_nn(cls, module):
    """The same function as torch.nn's layer in float64: outputs, final states and gradients."""
    cell = cls()
    params, x, grad_y, state0 = _problem(cell, steps=6, seed=2)
    layer = module()
    with torch.no_grad():
        for name, value in params.items():
            getattr(layer, f"{name}_l0").copy_(torch.from_numpy(value))
    h0 = torch.from_numpy(state0["h"])[None]
    xs = torch.from_numpy(x)
    if cls is Lstm:
        y, (h_n, c_n) = layer(xs, (h0, torch.from_numpy(state0["c"])[None]))
    else:
        y, h_n = layer(xs, h0)
    (y * torch.from_numpy(grad_y)).sum().backward()
    out = derived.forward(cell, params, x, state0=state0)
    got = derived.backward(cell, params, x, grad_y, state0=state0)
    assert _rel(out.y, y.detach().numpy()) < 1e-12
    assert _rel(out.final()["h"], h_n[0].detach().numpy()) < 1e-12
    if cls is Lstm:
        assert _rel(out.final()["c"], c_n[0].detach().numpy()) < 1e-12
    for name in params:
        assert _rel(got.params[name], getattr(layer, f"{name}_l0").grad.numpy()) < 1e-12, name


# -- closed forms -------------------------------------------------------------------------------------
def _last_step_loss(steps, batch, hidden, seed=3):
    grad_y = np.zeros((steps, batch, hidden))
    grad_y[-1] = np.random.default_rng(seed).standard_normal((batch, hidden))
    return grad_y


def _mode_norms(grads) -> np.ndarray:
    """|dL/dx_t| per complex mode: sqrt(dL/dre^2 + dL/dim^2), (T, B, H)."""
    return np.hypot(grads.states["re"], grads.states["im"])


def test_lru_single_mode_gradient_decays_exactly_as_its_modulus():
    cell = Lru()
    steps = 60
    params = cell.init_params(2, 1, np.random.default_rng(0), "radius", 0.9)
    x = np.random.default_rng(1).standard_normal((steps, 3, 2))
    grads = derived.backward(cell, params, x, _last_step_loss(steps, 3, 1))
    m = _mode_norms(grads)[:, :, 0]
    ratios = m[:-1] / m[1:]
    assert np.max(np.abs(ratios / 0.9 - 1)) < 1e-12


def test_lru_every_mode_decays_as_its_own_modulus_and_the_norm_as_the_largest():
    cell = Lru()
    steps, batch, radii = 300, 2, np.array([0.97, 0.9, 0.8, 0.5])
    params = cell.init_params(2, 4, np.random.default_rng(0))
    params["nu_log"] = np.log(-np.log(radii))  # |lambda_j| = radii[j]
    assert np.allclose(np.abs(cell.diagonal_recurrence(params)), radii, rtol=1e-14)
    x = np.random.default_rng(1).standard_normal((steps, batch, 2))
    grads = derived.backward(cell, params, x, _last_step_loss(steps, batch, 4))
    m = _mode_norms(grads)
    lags = 40  # modes of |lambda| = 0.5 underflow nothing in 40 steps
    per_mode = m[steps - lags - 1 : steps - 1] / m[steps - lags : steps]
    assert np.max(np.abs(per_mode / radii - 1)) < 1e-12
    g = np.sqrt((grads.states["re"] ** 2 + grads.states["im"] ** 2).sum(axis=(1, 2)))
    ratio = g[:-1] / g[1:]
    assert abs(ratio[0] / 0.97 - 1) < 1e-12  # 300 steps back: only the slowest mode is left
    # the decay rate (decades lost per step back from the loss: the log10-slope of g_t against t, far
    # from the loss) is -log10 max|lambda|
    far = np.arange(150)
    rate = np.polyfit(far, np.log10(g[far]), 1)[0]
    predicted = -np.log10(np.max(np.abs(cell.diagonal_recurrence(params))))
    assert abs(rate / predicted - 1) < 1e-9


def _qr_exponents(cell, params, x, frame0: np.ndarray) -> np.ndarray:
    """Finite-time Lyapunov exponents of the backward dynamics by the QR method, J_t^T from
    derived.step_vjp: frame0 (d, k), the state vector s = the cell's states in order."""
    out = derived.forward(cell, params, x)
    steps, batch = x.shape[:2]
    sizes = [s.size_for(out.y.shape[2]) for s in cell.state]
    names = [s.name for s in cell.state]
    frame = np.repeat(frame0[None], batch, axis=0)  # (B, d, k)
    logs = np.zeros((batch, frame0.shape[1]))
    for t in range(steps - 1, -1, -1):
        cols = frame.transpose(2, 0, 1)  # (k, B, d)
        v = dict(zip(names, np.split(cols, np.cumsum(sizes)[:-1], axis=2)))
        pulled = derived.step_vjp(cell, params, out.previous(t), x[t], v)
        stacked = np.concatenate([pulled[n] for n in names], axis=2).transpose(1, 2, 0)  # (B, d, k)
        frame, r = np.linalg.qr(stacked)
        logs += np.log(np.abs(np.diagonal(r, axis1=1, axis2=2)))
    return np.sort(logs.mean(axis=0) / steps)[::-1]


def test_lru_lyapunov_exponents_are_log_modulus():
    cell = Lru()
    frame0 = np.linalg.qr(np.random.default_rng(7).standard_normal((8, 8)))[0]
    x = np.random.default_rng(1).standard_normal((50, 2, 2))
    # one modulus for every mode: J_t = 0.95 x an orthogonal matrix, so every exponent is log 0.95
    params = cell.init_params(2, 4, np.random.default_rng(0), "radius", 0.95)
    assert np.max(np.abs(_qr_exponents(cell, params, x, frame0) - np.log(0.95))) < 1e-12
    # distinct moduli: the exponents sum to 2 sum log|lambda_j| exactly, the top one tends to log max|lambda|
    radii = np.array([0.97, 0.9, 0.8, 0.5])
    params["nu_log"] = np.log(-np.log(radii))
    x = np.random.default_rng(1).standard_normal((200, 2, 2))
    exponents = _qr_exponents(cell, params, x, frame0)
    assert abs(exponents.sum() - 2 * np.log(radii).sum()) < 1e-12
    assert abs(exponents[0] - np.log(0.97)) < 0.01


def test_mingru_step_jacobian_is_diag_one_minus_z_whatever_h():
    cell = MinGru()
    rng = np.random.default_rng(0)
    params = cell.init_params(I, H, rng)
    x_t = rng.standard_normal((B, I))
    v = {"h": rng.standard_normal((B, H))}
    z = 1.0 / (1.0 + np.exp(-(x_t @ params["weight_z"].T + params["bias_z"])))
    for scale in (0.0, 1.0, 50.0):
        h = {"h": scale * rng.standard_normal((B, H))}
        pulled = derived.step_vjp(cell, params, h, x_t, v)["h"]
        np.testing.assert_allclose(pulled, (1.0 - z) * v["h"], rtol=1e-15, atol=0)
    other = {**params, "weight_h": rng.standard_normal((H, I))}  # nor does W_h enter it
    np.testing.assert_allclose(derived.step_vjp(cell, other, h, x_t, v)["h"], (1.0 - z) * v["h"], rtol=1e-15)


def _positive_indrnn(steps):
    cell = Indrnn()
    rng = np.random.default_rng(0)
    params = cell.init_params(I, H, rng)
    params["weight_ih"] = np.abs(params["weight_ih"])
    params["bias"] = rng.uniform(0.1, 0.5, H)
    params["weight_hh"] = rng.uniform(0.5, 1.0, H)
    x = rng.uniform(0.0, 1.0, (steps, B, I))  # every pre-activation positive: relu' = 1
    return cell, params, x


def test_indrnn_with_positive_preactivations_has_jacobian_diag_u():
    steps = 30
    cell, params, x = _positive_indrnn(steps)
    u = params["weight_hh"]
    np.testing.assert_array_equal(cell.diagonal_recurrence(params), u)
    out = derived.forward(cell, params, x)
    v = {"h": np.random.default_rng(1).standard_normal((B, H))}
    np.testing.assert_allclose(derived.step_vjp(cell, params, out.previous(10), x[10], v)["h"], u * v["h"],
                               rtol=1e-15)
    grads = derived.backward(cell, params, x, _last_step_loss(steps, B, H))
    lag = np.arange(steps)[::-1][:, None, None]
    np.testing.assert_allclose(grads.states["h"], u**lag * grads.states["h"][-1], rtol=1e-13)
    # the QR recursion from the identity frame gives the exponents log u_i
    exponents = _qr_exponents(cell, params, x, np.eye(H))
    np.testing.assert_allclose(exponents, np.sort(np.log(u))[::-1], rtol=1e-13)


def test_rnn_relu_with_irnn_and_positive_preactivations_keeps_g_constant():
    cell = RnnRelu()
    steps = 100
    rng = np.random.default_rng(0)
    params = cell.init_params(I, H, rng, "irnn")
    assert np.array_equal(params["weight_hh"], np.eye(H)) and not params["bias_ih"].any()
    params["weight_ih"] = np.abs(params["weight_ih"])  # with inputs > 0, every pre-activation > 0
    x = rng.uniform(0.1, 1.0, (steps, B, I))
    grads = derived.backward(cell, params, x, _last_step_loss(steps, B, H))
    np.testing.assert_array_equal(grads.states["h"], np.broadcast_to(grads.states["h"][-1], grads.states["h"].shape))
    g = np.linalg.norm(grads.states["h"].reshape(steps, -1), axis=1)
    assert np.ptp(g) == 0.0
    # while the default init's g_t does change
    default = cell.init_params(I, H, np.random.default_rng(0))
    g_default = np.linalg.norm(derived.backward(cell, default, x, _last_step_loss(steps, B, H)).states["h"]
                               .reshape(steps, -1), axis=1)
    assert np.ptp(g_default) > 0.0
