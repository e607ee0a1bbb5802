"""The derived float64 reference (harness.derived) on small cells written here: forward, BPTT, the
total per-step state gradients, segments, and the one-step vector-Jacobian product, each against an
independent computation (central finite differences, torch's full Jacobian, a longer sequence)."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from harness import derived  # noqa: E402
from harness.cell import Cell, ParamSpec, StateSpec, zeros  # noqa: E402
from harness.errors import HarnessError  # noqa: E402

EPS = 1e-6  # central differences in float64: truncation ~ eps^2, rounding ~ 1e-16 / eps
RTOL = 1e-6  # of the largest entry of the analytic gradient


# -- finite differences, shared with tests/test_builtin_cells.py -------------------------------------
def sequence_loss(cell: Cell, params: dict, x: np.ndarray, grad_y: np.ndarray, state0: dict | None = None,
                  bump: tuple[int, str, tuple[int, int], float] | None = None) -> float:
    """L = sum_t <grad_y[t], y_t> by stepping the cell in float64 without autograd; ``bump`` = (t,
    name, index, delta) adds delta to one entry of state ``name`` right after step t (before the
    readout and the next step see it)."""
    p = {k: torch.tensor(v, dtype=torch.float64) for k, v in params.items()}
    hidden = grad_y.shape[2]
    state = {s.name: torch.zeros(x.shape[1], s.size_for(hidden), dtype=torch.float64) for s in cell.state}
    for name, value in (state0 or {}).items():
        state[name] = torch.tensor(value, dtype=torch.float64)
    total = 0.0
    with torch.no_grad():
        for t in range(x.shape[0]):
            x_t = torch.tensor(x[t], dtype=torch.float64)
            state = dict(cell.step(p, state, x_t))
            if bump is not None and bump[0] == t:
                state[bump[1]] = state[bump[1]].clone()
                state[bump[1]][bump[2]] += bump[3]
            total += float((cell.readout_input(p, state, x_t) * torch.tensor(grad_y[t])).sum())
    return total


def central(f, array: np.ndarray, eps: float = EPS) -> np.ndarray:
    """d f / d array by central differences (harness.testing's, at this file's step)."""
    from harness.testing import central_difference

    return central_difference(f, array, eps)


def assert_fd(analytic: np.ndarray, numeric: np.ndarray, what: str, rtol: float = RTOL) -> float:
    """|analytic - numeric| <= rtol * max |analytic| (+ 1e-9 for the rounding of a near-zero
    gradient); returns the relative error."""
    scale = float(np.max(np.abs(analytic))) if analytic.size else 0.0
    err = float(np.max(np.abs(analytic - numeric))) if analytic.size else 0.0
    assert err <= rtol * scale + 1e-9, f"{what}: |analytic - finite difference| = {err:.3g}, largest {scale:.3g}"
    return err / scale if scale else err


def check_against_finite_differences(cell: Cell, params: dict, x: np.ndarray, grad_y: np.ndarray,
                                     state0: dict | None = None, per_step: tuple[str, ...] | None = None) -> float:
    """Every gradient of :func:`derived.backward` against central differences: parameters, x, s_0,
    and the per-step gradient of the states in ``per_step`` (all by default; a state that other
    states of its own step are computed from is checked elsewhere: the bump here perturbs it after
    them). Returns the worst relative error."""
    params = {k: np.array(v, dtype=np.float64) for k, v in params.items()}
    x = np.array(x, dtype=np.float64)
    state0 = {k: np.array(v, dtype=np.float64) for k, v in (state0 or {}).items()}
    got = derived.backward(cell, params, x, grad_y, state0=state0)
    worst = 0.0

    def loss() -> float:
        return sequence_loss(cell, params, x, grad_y, state0)

    for name in params:
        worst = max(worst, assert_fd(got.params[name], central(loss, params[name]), f"{cell.name} dL/d{name}"))
    worst = max(worst, assert_fd(got.x, central(loss, x), f"{cell.name} dL/dx"))
    for name in state0:
        worst = max(worst, assert_fd(got.states0[name], central(loss, state0[name]), f"{cell.name} dL/d{name}_0"))
    steps, batch = x.shape[:2]
    for name in per_step if per_step is not None else [s.name for s in cell.state]:
        numeric = np.zeros_like(got.states[name])
        for t, b, j in np.ndindex(numeric.shape):
            up = sequence_loss(cell, params, x, grad_y, state0, (t, name, (b, j), EPS))
            down = sequence_loss(cell, params, x, grad_y, state0, (t, name, (b, j), -EPS))
            numeric[t, b, j] = (up - down) / (2 * EPS)
        worst = max(worst, assert_fd(got.states[name], numeric, f"{cell.name} dL/d{name}_t"))
    return worst


# -- cells written here -------------------------------------------------------------------------------
class Elman(Cell):
    name = "elman"
    params = (
        ParamSpec("W", lambda i, h: (h, i)),
        ParamSpec("U", lambda i, h: (h, h)),
        ParamSpec("b", lambda i, h: (h,), zeros),
    )

    def step(self, p, state, x):
        return {"h": (x @ p["W"].T + state["h"] @ p["U"].T + p["b"]).tanh()}


class Coupled(Cell):
    """Two states of different sizes, the output computed from the other: a = tanh(...) (size 2H),
    h = a[:, :H] * sigmoid(a[:, H:]) + 0.5 h_prev. ``bump`` perturbs ``a`` where the step creates it
    (before h is computed from it), so its total per-step gradient can be checked by differences."""

    name = "coupled"
    params = (
        ParamSpec("W", lambda i, h: (2 * h, i)),
        ParamSpec("U", lambda i, h: (2 * h, h)),
        ParamSpec("V", lambda i, h: (2 * h, 2 * h)),
    )
    state = (StateSpec("h"), StateSpec("a", lambda h: 2 * h))
    output = "h"
    bump = None

    def step(self, p, state, x):
        a = (x @ p["W"].T + state["h"] @ p["U"].T + state["a"] @ p["V"].T * 0.5).tanh()
        if self.bump is not None:
            a = a + self.bump
        hidden = state["h"].shape[1]
        return {"h": a[:, :hidden] * a[:, hidden:].sigmoid() + 0.5 * state["h"], "a": a}


class Readout(Cell):
    """A cell whose readout input is not a state: y = h W_o^T + x E^T (LRU's kind)."""

    name = "readout"
    params = (
        ParamSpec("W", lambda i, h: (h, i)),
        ParamSpec("U", lambda i, h: (h, h)),
        ParamSpec("W_o", lambda i, h: (h, h)),
        ParamSpec("E", lambda i, h: (h, i)),
    )
    output = None

    def step(self, p, state, x):
        return {"h": (x @ p["W"].T + state["h"] @ p["U"].T).sin()}

    def readout_input(self, p, state, x):
        return state["h"] @ p["W_o"].T + x @ p["E"].T


def _problem(cell: Cell, steps=5, batch=2, inputs=3, hidden=4, seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    params = {k: scale * v for k, v in cell.init_params(inputs, hidden, rng).items()}
    x = rng.standard_normal((steps, batch, inputs))
    grad_y = rng.standard_normal((steps, batch, hidden))
    state0 = {s.name: 0.3 * rng.standard_normal((batch, s.size_for(hidden))) for s in cell.state}
    return params, x, grad_y, state0


@pytest.mark.parametrize("cell", [Elman(), Coupled(), Readout()], ids=lambda c: c.name)
def test_backward_matches_central_differences(cell):
    params, x, grad_y, state0 = _problem(cell, scale=2.0)
    per_step = ("h",) if cell.name == "coupled" else None  # a: below, bumped where it is created
    assert check_against_finite_differences(cell, params, x, grad_y, state0, per_step) < RTOL


def test_total_state_gradient_counts_the_uses_within_its_own_step():
    """dL/da_t includes the path through h_t = f(a_t) of the same step (LSTM's dL/dc_t convention)."""
    cell = Coupled()
    params, x, grad_y, state0 = _problem(cell, steps=4, scale=2.0)
    got = derived.backward(cell, params, x, grad_y, state0=state0).states["a"]
    hidden = grad_y.shape[2]
    numeric = np.zeros_like(got)
    for t, b, j in np.ndindex(got.shape):
        values = []
        for delta in (EPS, -EPS):
            bump = np.zeros((x.shape[1], 2 * hidden))
            bump[b, j] = delta
            total, state = 0.0, {k: torch.tensor(v) for k, v in state0.items()}
            p = {k: torch.tensor(v) for k, v in params.items()}
            with torch.no_grad():
                for s in range(x.shape[0]):
                    cell.bump = torch.tensor(bump) if s == t else None
                    state = cell.step(p, state, torch.tensor(x[s]))
                    total += float((state["h"] * torch.tensor(grad_y[s])).sum())
            cell.bump = None
            values.append(total)
        numeric[t, b, j] = (values[0] - values[1]) / (2 * EPS)
    assert_fd(got, numeric, "dL/da_t")


def test_forward_gives_every_state_and_the_readout_input():
    cell = Readout()
    params, x, _, state0 = _problem(cell)
    out = derived.forward(cell, params, x, state0=state0)
    h = state0["h"]
    np.testing.assert_array_equal(out.previous(0)["h"], state0["h"])
    for t in range(x.shape[0]):
        if t:
            np.testing.assert_array_equal(out.previous(t)["h"], out.states["h"][t - 1])
        h = np.sin(x[t] @ params["W"].T + h @ params["U"].T)
        assert np.allclose(out.states["h"][t], h, rtol=1e-14, atol=1e-15)
        assert np.allclose(out.y[t], h @ params["W_o"].T + x[t] @ params["E"].T, rtol=1e-14, atol=1e-14)
    assert out.y.dtype == np.float64 and out.final()["h"].shape == (2, 4)


def test_segments_chain_through_grad_final_and_state0():
    """Two halves, the second's dL/ds_0 fed to the first as grad_final, give the whole sequence's gradients."""
    cell = Coupled()
    params, x, grad_y, _ = _problem(cell, steps=8, scale=1.5)
    whole = derived.backward(cell, params, x, grad_y)
    middle = derived.forward(cell, params, x[:4]).final()
    second = derived.backward(cell, params, x[4:], grad_y[4:], state0=middle)
    first = derived.backward(cell, params, x[:4], grad_y[:4], grad_final=second.states0)
    for name in params:
        np.testing.assert_allclose(first.params[name] + second.params[name], whole.params[name], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(np.concatenate([first.x, second.x]), whole.x, rtol=1e-12, atol=1e-14)
    for name in ("h", "a"):
        np.testing.assert_allclose(np.concatenate([first.states[name], second.states[name]]), whole.states[name],
                                   rtol=1e-12, atol=1e-14)


def test_step_vjp_is_the_transposed_jacobian_of_one_step():
    cell = Coupled()
    params, x, _, state0 = _problem(cell, scale=2.0)
    hidden, batch = 4, 2
    rng = np.random.default_rng(5)
    v = {"h": rng.standard_normal((batch, hidden)), "a": rng.standard_normal((batch, 2 * hidden))}
    got = derived.step_vjp(cell, params, state0, x[0], v)
    p = {k: torch.tensor(val) for k, val in params.items()}

    def flat_step(h, a):
        new = cell.step(p, {"h": h, "a": a}, torch.tensor(x[0]))
        return new["h"], new["a"]

    jac = torch.autograd.functional.jacobian(flat_step, (torch.tensor(state0["h"]), torch.tensor(state0["a"])))
    # jac[out][in] has shape out_shape + in_shape; J^T v for each input
    for k, name in enumerate(("h", "a")):
        expected = sum(np.einsum("bi,bicj->cj", v[out], jac[o][k].numpy()) for o, out in enumerate(("h", "a")))
        np.testing.assert_allclose(got[name], expected, rtol=1e-13, atol=1e-14)
    # K vectors per sequence in one call give the same as K calls
    frame = {"h": rng.standard_normal((3, batch, hidden)), "a": rng.standard_normal((3, batch, 2 * hidden))}
    batched = derived.step_vjp(cell, params, state0, x[0], frame)
    for k in range(3):
        one = derived.step_vjp(cell, params, state0, x[0], {n: a[k] for n, a in frame.items()})
        for name in ("h", "a"):
            np.testing.assert_allclose(batched[name][k], one[name], rtol=1e-14, atol=1e-15)
    # a state left out of v counts as zero
    only_h = derived.step_vjp(cell, params, state0, x[0], {"h": v["h"]})
    with_zero = derived.step_vjp(cell, params, state0, x[0], {"h": v["h"], "a": np.zeros_like(v["a"])})
    np.testing.assert_array_equal(only_h["a"], with_zero["a"])


def test_step_vjp_pulls_the_per_step_gradients_back():
    """With no loss on y_{t-1}, dL/ds_{t-1} = J_t^T dL/ds_t: the backward dynamics the Lyapunov QR recursion runs."""
    cell = Elman()
    params, x, grad_y, state0 = _problem(cell, steps=6, scale=2.0)
    grad_y[2] = 0.0
    out = derived.forward(cell, params, x, state0=state0)
    grads = derived.backward(cell, params, x, grad_y, state0=state0)
    pulled = derived.step_vjp(cell, params, out.previous(3), x[3], {"h": grads.states["h"][3]})
    np.testing.assert_allclose(pulled["h"], grads.states["h"][2], rtol=1e-13, atol=1e-15)
    first = derived.step_vjp(cell, params, out.previous(0), x[0], {"h": grads.states["h"][0]})
    np.testing.assert_allclose(first["h"], grads.states0["h"], rtol=1e-13, atol=1e-15)


def test_wrong_shapes_are_one_line_errors():
    cell = Elman()
    params, x, grad_y, _ = _problem(cell)
    with pytest.raises(HarnessError, match=r"grad_y must be \(T, B, H\)"):
        derived.backward(cell, params, x, grad_y[:, :, :3])
    with pytest.raises(HarnessError, match="x must be"):
        derived.forward(cell, params, x[0])
    with pytest.raises(HarnessError, match="state0 h must be"):
        derived.forward(cell, params, x, state0={"h": np.zeros((2, 5))})
    with pytest.raises(HarnessError, match="not its states"):
        derived.forward(cell, params, x, state0={"c": np.zeros((2, 4))})
    with pytest.raises(HarnessError, match=r"cell .elman. .*no hidden size H fits .*U.: \(4, 5\)"):
        derived.forward(cell, {**params, "U": np.zeros((4, 5))}, x)
