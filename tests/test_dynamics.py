"""The Lyapunov estimate and the spectra (harness/measure/dynamics.py) on closed forms, and against
Jacobians taken by finite differences of the reference's one-step forward map."""
from __future__ import annotations

import math

import numpy as np
import pytest
from harness_plugins.numpy_backend import NumpyBackend

from harness import Problem, reference
from harness.cells import cell_spec
from harness.inits import init_params, random_orthogonal
from harness.measure import gradients
from harness.measure.dynamics import (
    block_spectra,
    lyapunov_exponents,
    predicted_decay_rate,
)

H, B, T = 6, 3, 40


def _linear_rnn(w_hh: np.ndarray) -> dict[str, np.ndarray]:
    """tanh RNN in its linear regime: zero input weights and biases keep h_t = 0, so J_t = W_hh."""
    return {"weight_ih": np.zeros((H, 2)), "weight_hh": w_hh, "bias_ih": np.zeros(H), "bias_hh": np.zeros(H)}


def _x(steps: int = T, inputs: int = 2) -> np.ndarray:
    return np.random.default_rng(5).standard_normal((steps, B, inputs))


@pytest.mark.parametrize("s", [0.5, 0.9, 1.0, 1.3])
def test_scaled_orthogonal_gives_every_exponent_ln_s(s):
    exponents = lyapunov_exponents("rnn_tanh", _linear_rnn(s * random_orthogonal(H, np.random.default_rng(1))),
                                   _x(), k=H)
    np.testing.assert_allclose(exponents, math.log(s), atol=1e-12)
    assert predicted_decay_rate(exponents) == pytest.approx(-math.log10(s), abs=1e-12)


def test_diagonal_w_hh_gives_the_logs_of_its_magnitudes():
    """Finite-time exponents differ from the limit by the random start frame's transient, O(1/T):
    here 1.7 / T, so T = 2000 is held to 2 / T."""
    d = np.array([0.9, -0.5, 0.3, 1.1, -0.05, 0.7])
    steps = 2000
    exponents = lyapunov_exponents("rnn_tanh", _linear_rnn(np.diag(d)), _x(steps), k=H)
    np.testing.assert_allclose(exponents, np.sort(np.log(np.abs(d)))[::-1], atol=2 / steps)
    assert exponents.sum() == pytest.approx(np.log(np.abs(d)).sum(), abs=1e-12)  # log |det| per step: exact
    top = lyapunov_exponents("rnn_tanh", _linear_rnn(np.diag(d)), _x(steps), k=2)  # the cheap option
    np.testing.assert_allclose(top, np.log([1.1, 0.9]), atol=2 / steps)


def test_lstm_exponents_live_on_the_joint_h_c_state():
    """W_hh = 0 and zero input weights: the gates are constants, c_t = f c_{t-1} + i g, and h_t
    depends on the past only through c: H exponents ln f, the other H annihilated."""
    params = init_params("lstm", 2, H, np.random.default_rng(0), init="default")
    params["weight_ih"][:] = 0.0
    params["weight_hh"][:] = 0.0
    f = 1 / (1 + np.exp(-(params["bias_ih"] + params["bias_hh"])[H : 2 * H]))
    steps = 2000  # held to 2 / T, as the diagonal case
    exponents = lyapunov_exponents("lstm", params, _x(steps), k=2 * H)
    np.testing.assert_allclose(exponents[:H], np.sort(np.log(f))[::-1], atol=2 / steps)
    assert np.all(exponents[H:] < -10)


def test_predicted_decay_matches_the_measured_profile_in_the_linear_regime():
    s = 0.7
    params = _linear_rnn(s * random_orthogonal(H, np.random.default_rng(2)))
    grad_h = np.zeros((T, B, H))
    grad_h[-1] = np.random.default_rng(3).standard_normal((B, H))
    backend = NumpyBackend()
    backend.prepare(Problem("rnn_tanh", params, _x(), grad_h))
    backend.forward()
    backend.backward(per_step=True)
    measured = gradients.gradient_metrics(gradients.profile(backend.gradients().h)).decay_rate
    assert predicted_decay_rate(lyapunov_exponents("rnn_tanh", params, _x(), k=1)) == pytest.approx(measured,
                                                                                                    abs=1e-9)


def _jacobians_by_finite_differences(cell: str, params: dict, x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """J_t = d s_t / d s_{t-1} per step and sequence, by central differences of one forward step."""
    acts = reference.forward(cell, params, x)
    has_c = cell == "lstm"
    states = np.concatenate([acts.hs, acts.saved["cs"]], axis=2) if has_c else acts.hs
    d = states.shape[2]

    def step(t: int, state: np.ndarray) -> np.ndarray:
        h0, c0 = (state[:, :H], state[:, H:]) if has_c else (state, None)
        out = reference.forward(cell, params, x[t : t + 1], h0=h0, c0=c0)
        return np.concatenate([out.hs[1], out.saved["cs"][1]], axis=1) if has_c else out.hs[1]

    jac = np.empty((x.shape[0], x.shape[1], d, d))
    for t in range(x.shape[0]):
        for j in range(d):
            bump = np.zeros_like(states[t])
            bump[:, j] = eps
            jac[t, :, :, j] = (step(t, states[t] + bump) - step(t, states[t] - bump)) / (2 * eps)
    return jac


@pytest.mark.parametrize("cell", ["rnn_tanh", "lstm", "gru", "gru_cho"])
def test_exponents_agree_with_qr_on_finite_difference_jacobians(cell):
    """An oracle that shares nothing with the estimate but the forward map: explicit Jacobians by
    central differences (error ~1e-9), the same QR recursion on J_t^T, the same starting frame."""
    x = _x(steps=12, inputs=3)
    params = init_params(cell, 3, H, np.random.default_rng(4), init="orthogonal=1.2")
    jac = _jacobians_by_finite_differences(cell, params, x)
    d, k = jac.shape[-1], 3
    frame, _ = np.linalg.qr(np.random.default_rng(0).standard_normal((B, d, k)))
    logs = np.zeros((B, k))
    for t in range(x.shape[0] - 1, -1, -1):
        frame, r = np.linalg.qr(np.swapaxes(jac[t], 1, 2) @ frame)
        logs += np.log(np.abs(np.diagonal(r, axis1=1, axis2=2)))
    expected = np.sort(logs.mean(axis=0) / x.shape[0])[::-1]
    np.testing.assert_allclose(lyapunov_exponents(cell, params, x, k), expected, atol=1e-7)


@pytest.mark.parametrize("cell", ["rnn_tanh", "lstm", "gru", "gru_cho"])
def test_step_vjp_chained_over_every_step_is_backpropagation_through_time(cell):
    """reference.step_vjp, the one-step pullback the Lyapunov recursion uses, taken from the last step
    down to the first, gives BPTT's dL/dh_0 (and dL/dc_0) for gradients arriving after the last step;
    with k vectors per sequence, (B, k, H), each one is pulled back as if alone (to rounding)."""
    x = _x(steps=7, inputs=3)
    params = init_params(cell, 3, H, np.random.default_rng(4), init="orthogonal=1.2")
    acts = reference.forward(cell, params, x)
    has_c = cell_spec(cell).has_cell_state
    rng = np.random.default_rng(6)
    dh, dc = rng.standard_normal((B, 2, H)), rng.standard_normal((B, 2, H)) if has_c else None
    vh, vc = dh, dc
    for t in range(x.shape[0] - 1, -1, -1):
        vh, vc = reference.step_vjp(cell, params, x, acts, t, vh, vc)
    for i in range(2):
        want = reference.backward(cell, params, x, acts, np.zeros((x.shape[0], B, H)), dh_after=dh[:, i],
                                  dc_after=dc[:, i] if has_c else None)
        np.testing.assert_allclose(vh[:, i], want.h0, rtol=1e-12, atol=1e-14)
        if has_c:
            np.testing.assert_allclose(vc[:, i], want.c0, rtol=1e-12, atol=1e-14)
        else:
            assert vc is None
        one_h, one_c = reference.step_vjp(cell, params, x, acts, 3, dh[:, i], dc[:, i] if has_c else None)
        all_h, all_c = reference.step_vjp(cell, params, x, acts, 3, dh, dc)
        assert one_h.shape == (B, H)
        np.testing.assert_allclose(one_h, all_h[:, i], rtol=1e-13, atol=1e-15)  # BLAS may round by row count
        if has_c:
            np.testing.assert_allclose(one_c, all_c[:, i], rtol=1e-13, atol=1e-15)


def test_block_spectra_per_gate():
    w = np.concatenate([2.0 * np.eye(H), np.diag(np.arange(1.0, H + 1)),  # a GRU's r, z, n blocks
                        -0.5 * random_orthogonal(H, np.random.default_rng(0))])
    spectra = block_spectra("gru", w)
    assert [s.gate for s in spectra] == ["r", "z", "n"]
    assert [s.sigma_max for s in spectra] == pytest.approx([2.0, H, 0.5])
    assert [s.spectral_radius for s in spectra] == pytest.approx([2.0, H, 0.5])


def test_harness_run_explains_every_profile_once_for_all_backends(plugin_dir, tmp_path, monkeypatch):
    """The linear regime through the whole pipeline: every init is a point, each profile carries its
    spectra and exponents (the same for both backends), and the predicted decay rate is the measured
    one, -log10(s)."""
    from harness import suites
    from harness.record import files
    from harness.run.runner import run_suite
    from tests.support.plugins import add_misbehaving
    from tests.support.suites import write_suite

    from harness.run.observer import Silent

    add_misbehaving(plugin_dir)  # "threads": a second backend (the NumPy engine under another name)
    computed = []  # the explanations reported (computed in a pool of processes, one per grid point)

    class Heard(Silent):
        def advance(self, point, what=""):
            if what == "spectra and Lyapunov exponents":
                computed.append(point.cell)

    folder = write_suite(tmp_path / "s", inits='["linear=0.5", "linear=0.8"]', seq_lens="[30]", seeds="[0, 1]",
                         metrics='["gradient"]', lyapunov_steps="0")
    run = run_suite(suites.load(folder), ["numpy", "threads"], results_dir=tmp_path / "r", observer=Heard())
    points = files.read(run.path).points
    assert sorted((p.backend, p.init) for p in points) == [("numpy", "linear=0.5"), ("numpy", "linear=0.8"),
                                                           ("threads", "linear=0.5"), ("threads", "linear=0.8")]
    for p in points:
        s = float(p.init.split("=")[1])
        g = p.gradient
        assert [b.gate for b in g.spectra] == ["h"] and g.sigma_max == pytest.approx(s, abs=1e-12)
        np.testing.assert_allclose(g.lyapunov, math.log(s), atol=1e-12)
        assert g.predicted_decay_rate == pytest.approx(-math.log10(s), abs=1e-12)
        assert g.decay_rate == pytest.approx(g.predicted_decay_rate, abs=1e-9)
    assert computed == ["rnn_tanh", "rnn_tanh"]  # once per grid point (two inits), not once per backend
    from harness.report.plots import report

    page = report(files.read(run.path), tmp_path / "page").read_text()
    for stem in ("decay_predicted", "decay_sigma_max"):
        assert (tmp_path / "page" / f"{stem}.png").stat().st_size > 0 and f'src="{stem}.png"' in page


def test_cells_without_a_hand_written_reference_get_exponents_from_the_derived_step():
    """lru with every |lambda| = R: the backward dynamics is R times a rotation per mode, so every
    exponent over (re, im) is ln R, the closed-form decay rate is -log10 R, and there is no recurrent
    matrix to take spectra of. mingru's Jacobian depends on the input: no closed form."""
    pytest.importorskip("torch")
    from harness.measure.dynamics import closed_form_decay_rate, explanation

    params = init_params("lru", 2, 3, np.random.default_rng(0), init="radius=0.8")
    x = _x(steps=30)
    np.testing.assert_allclose(lyapunov_exponents("lru", params, x, k=6), math.log(0.8), atol=1e-12)
    assert closed_form_decay_rate("lru", params) == pytest.approx(-math.log10(0.8), abs=1e-12)
    fields = explanation("lru", [(params, x)], k=2)
    assert fields["spectra"] == () and fields["closed_form_decay_rate"] == pytest.approx(-math.log10(0.8))
    assert fields["predicted_decay_rate"] == pytest.approx(fields["closed_form_decay_rate"], abs=1e-12)
    mingru = init_params("mingru", 2, 3, np.random.default_rng(0))
    assert "closed_form_decay_rate" not in explanation("mingru", [(mingru, x)], k=0)


@pytest.mark.parametrize("cell", ["rnn_tanh", "lstm", "gru", "gru_cho"])
def test_the_derived_exponents_of_the_classic_cells_equal_the_hand_written_ones(cell):
    """The same QR recursion over derived.step_vjp (autograd of the cell's step) and over the
    hand-written reference's step_vjp: the same exponents to rounding."""
    pytest.importorskip("torch")
    from harness.measure import dynamics

    x = _x(steps=12, inputs=3)
    params = init_params(cell, 3, H, np.random.default_rng(4), init="orthogonal=1.2")
    hand = lyapunov_exponents(cell, params, x, k=3)
    pullback, d = dynamics._derived_pullback(cell, params, x)
    assert d == (2 * H if cell == "lstm" else H)
    frame, _ = np.linalg.qr(np.random.default_rng(0).standard_normal((B, d, 3)))
    logs = np.zeros((B, 3))
    for t in range(x.shape[0] - 1, -1, -1):
        frame, r = np.linalg.qr(pullback(t, frame.transpose(0, 2, 1)).transpose(0, 2, 1))
        logs += np.log(np.abs(np.diagonal(r, axis1=1, axis2=2)))
    np.testing.assert_allclose(np.sort(logs.mean(axis=0) / x.shape[0])[::-1], hand, atol=1e-12)


@pytest.mark.parametrize("cell", ["lstm", "gru", "mingru", "lru"])
def test_exponents_from_the_window_start_equal_those_from_step_one(cell):
    """The spectra's forward may start at the state before the Lyapunov window (grid.SeededProblem.window)
    instead of step 1: the same trajectory, so the same exponents (to rounding: 1e-10)."""
    from harness import suites
    from harness.run.grid import build
    from harness_plugins.tasks import TemporalOrderTask

    suite = suites.Suite("w", "temporal_order", (cell,), (60,), batch=3, hidden=5, dtype="float64",
                         lyapunov_steps=20)
    problem = build(TemporalOrderTask(), cell, 60, suite, seed=1)
    first, state = problem.window
    assert first == 40 and state  # the state after 40 of 60 steps
    p = problem.last_step
    whole = lyapunov_exponents(cell, p.params, p.x, k=3, window=20)
    windowed = lyapunov_exponents(cell, p.params, p.x, k=3, window=20, start=problem.window)
    np.testing.assert_allclose(windowed, whole, rtol=1e-10, atol=1e-12)
    if cell in ("lstm", "gru"):  # their Jacobians depend on the state: a wrong start state shows
        moved = (first, {k: v + 1.0 for k, v in state.items()})
        assert not np.allclose(lyapunov_exponents(cell, p.params, p.x, k=3, window=20, start=moved), whole)


def test_a_saturated_network_gets_no_predicted_rate_only_its_degenerate_fraction():
    """Inputs 1e3 times a weight of 1 put tanh at exactly +-1 in float64, so tanh' = 0 and every
    Jacobian is exactly 0 on those steps: ln 0 is clamped, and the clamp's average is no rate."""
    from harness.measure.dynamics import explanation

    params = _linear_rnn(0.5 * np.eye(H))
    params["weight_ih"] = np.ones((H, 2))
    x = _x()
    x[::2] *= 1e3  # every other step saturates every sequence
    found = explanation("rnn_tanh", [(params, x)], k=2)
    assert found["predicted_decay_rate"] is None
    assert 0.4 <= found["degenerate_fraction"] <= 0.6
    healthy = explanation("rnn_tanh", [(_linear_rnn(0.5 * np.eye(H)), _x())], k=2)
    assert healthy["degenerate_fraction"] == 0 and healthy["predicted_decay_rate"] == pytest.approx(math.log10(2))
