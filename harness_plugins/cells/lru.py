"""``lru``: the Linear Recurrent Unit of Orvieto, Smith, Gu, Fernando, Gulcehre, Pascanu & De 2023,
"Resurrecting Recurrent Neural Networks for Long Sequences" (ICML; arXiv 2303.06349), one layer.

Equations (u_t the input (B, I), x the complex state of N = H modes, y_t (B, H) the output)::

    lambda_j = exp(-exp(nu_log_j) + i exp(theta_log_j))      # |lambda_j| = exp(-exp(nu_log_j)) < 1
    gamma_j  = exp(gamma_log_j)                               # initialised to sqrt(1 - |lambda_j|^2)
    x_t = lambda * x_{t-1} + gamma * (u_t B^T),   B = B_re + i B_im   (N, I)
    y_t = Re(x_t C^T) + u_t D^T,                  C = C_re + i C_im   (H, N),  D (H, I)

The state is held as two real tensors, ``re`` and ``im`` (B, H) each, x_0 = 0; in real arithmetic,
with lambda = l_re + i l_im::

    re_t = l_re * re_{t-1} - l_im * im_{t-1} + gamma * (u_t B_re^T)
    im_t = l_re * im_{t-1} + l_im * re_{t-1} + gamma * (u_t B_im^T)
    y_t  = re_t C_re^T - im_t C_im^T + u_t D^T

y_t is what the readout sees (:meth:`Lru.readout_input`), not a state tensor. Parameters (the
paper code's names): nu_log (H,), theta_log (H,), gamma_log (H,), B_re (H, I), B_im (H, I),
C_re (H, H), C_im (H, H), D (H, I). gamma_log is trained, as in the paper's code; the paper's D is
a diagonal (H,) because its input and output widths are equal; here I need not equal H, so D is a
full (H, I) matrix.

Gradient: the state Jacobian is block-diagonal, one 2 x 2 block per mode [[l_re, -l_im], [l_im,
l_re]] = |lambda_j| x a rotation, the same at every step and independent of the input: each mode's
gradient (dL/dre_j, dL/dim_j) shrinks by exactly |lambda_j| per step back from the loss, the
Lyapunov exponents are log |lambda_j| (each twice), and the decay rate is -log10 max |lambda| per
step (:meth:`Lru.diagonal_recurrence` returns lambda).

Parallel form (:meth:`Lru.scan`, run by the ``torch-cpu-scan`` / ``torch-cuda-scan`` backends): the
recurrence is linear with a constant diagonal coefficient, x_t = sum_{s <= t} lambda^(t - s) b_s
with b_s = gamma * (u_s B^T), so every x_t comes at once from the complex log-space scan of
:func:`harness_plugins.cells.mingru.log_scan` with a*_t = t log lambda = t (-exp(nu_log) + i
exp(theta_log)) exactly; the phase t exp(theta_log) is reduced modulo 2 pi in float64 before it is
cast to the problem's dtype (in float32 an unreduced phase of up to T x 2 pi would cost ~T x 5e-7
radians). The output y_t = Re(x_t C^T) + u_t D^T is then one product over all t.

Inits. Each draws u1, u2 ~ U(0, 1) per mode and sets |lambda|^2 uniform on the ring [r_min^2, r_max^2]
and the phase uniform on [0, max_phase] (the paper's Lemma and code, init_lru_parameters)::

    nu_log = log(-0.5 log(u1 (r_max^2 - r_min^2) + r_min^2)),   theta_log = log(max_phase u2)
    gamma_log = log(sqrt(1 - |lambda|^2))

B_re, B_im ~ N(0, 1/(2 I)) (the paper's Glorot-style N(0, 1/(2 H_in)), halved for the real part),
C_re, C_im ~ N(0, 1/N) = N(0, 1/H), D ~ N(0, 1/I) (the paper's diagonal D ~ N(0, 1) gives each
output the variance of one input; a full (H, I) D with variance 1/I keeps that scale).

- ``default``: r_min = 0.9, r_max = 0.999, max_phase = 2 pi: the ring the paper trains its
  long-range models from (REFERENCES.md, "LRU ... e.g. 0.9-0.999").
- ``disk``: r_min = 0, r_max = 1, max_phase = 6.28: the defaults of the paper's init_lru_parameters.
- ``r_min=R``: the ring [R, 0.999], max_phase = 2 pi.
- ``max_phase=PHI``: the default ring with phases in [0, PHI] (the paper restricts the phase to a
  thin slice, [0, pi/10], on its longest tasks).
- ``radius=R`` (0 < R < 1): every |lambda_j| = R exactly, phase in [0, 2 pi]: the closed-form check
  (every gradient mode decays as R^lag).

What one layer can learn here. y_t is LINEAR in the inputs u_1..u_t, and the harness's readout is
linear, so an lru layer computes a linear filter of its input sequence (a sum of N = H damped
oscillations). It carries a value over thousands of steps (|lambda| near 1) and so can learn tasks
whose answer is a linear function of the inputs seen through such a filter (the temporal-order
task's counts of A and B in two windows; a one-hot symbol at a fixed lag, as well as N modes can
represent that delay), but NOT the adding problem, whose target sum_t u0_t u1_t is a product of
two input channels at the same step: no linear filter forms it, at any T, so an lru point on
adding stays near the baseline whatever its gradients do. The paper places the LRU in a block
with a nonlinearity after the recurrence and stacks blocks (so a later layer's input is nonlinear
in the past): that is the ``lru_block`` cell (two blocks, :mod:`harness_plugins.cells.lru_block`).
A one-layer ``lru`` point measures how the recurrence itself propagates gradients.
"""
from __future__ import annotations

import math

import numpy as np

from harness.cell import Cell, CellInit, ParamSpec, StateSpec, normal
from harness.errors import HarnessError
from harness_plugins.cells.mingru import log_scan

R_MIN, R_MAX, MAX_PHASE = 0.9, 0.999, 2.0 * math.pi


def _nu_log(u1: np.ndarray, r_min: float, r_max: float) -> np.ndarray:
    return np.log(-0.5 * np.log(u1 * (r_max**2 - r_min**2) + r_min**2))


def _default_nu_log(rng, input_size, hidden_size):
    return _nu_log(rng.uniform(size=hidden_size), R_MIN, R_MAX)


def _default_theta_log(rng, input_size, hidden_size):
    return np.log(MAX_PHASE * rng.uniform(size=hidden_size))


def _gamma_log(params) -> None:
    modulus = np.exp(-np.exp(params["nu_log"]))
    params["gamma_log"] = np.log(np.sqrt(1.0 - modulus**2))


def _ring(params, rng, hidden_size, r_min, r_max, max_phase) -> None:
    params["nu_log"] = _nu_log(rng.uniform(size=hidden_size), r_min, r_max)
    params["theta_log"] = np.log(max_phase * rng.uniform(size=hidden_size))
    _gamma_log(params)


def _check(init: str, value: float, low: float, high: float, what: str) -> float:
    if not (math.isfinite(value) and low <= value < high):
        raise HarnessError(f"init {init!r}: its {what} must be in [{low:g}, {high:g}), got {value!r}")
    return value


def _default(params, rng, input_size, hidden_size, value, steps) -> None:
    _gamma_log(params)


def _disk(params, rng, input_size, hidden_size, value, steps) -> None:
    _ring(params, rng, hidden_size, 0.0, 1.0, 6.28)


def _r_min(params, rng, input_size, hidden_size, value, steps) -> None:
    _ring(params, rng, hidden_size, _check("r_min", value, 0.0, R_MAX, "r_min"), R_MAX, MAX_PHASE)


def _max_phase(params, rng, input_size, hidden_size, value, steps) -> None:
    if not (math.isfinite(value) and value > 0):
        raise HarnessError(f"init 'max_phase': its max_phase must be positive, got {value!r}")
    _ring(params, rng, hidden_size, R_MIN, R_MAX, value)


def _radius(params, rng, input_size, hidden_size, value, steps) -> None:
    radius = _check("radius", value, 0.0, 1.0, "radius")
    if radius <= 0:
        raise HarnessError(f"init 'radius': its radius must be in (0, 1), got {value!r}")
    _ring(params, rng, hidden_size, radius, radius, MAX_PHASE)


class Lru(Cell):
    name = "lru"
    description = ("LRU: x = lambda * x + gamma * (B u), lambda = exp(-exp(nu) + i exp(theta)); "
                   "y = Re(C x) + D u (state as re, im)")
    reference = ("Orvieto, Smith, Gu, Fernando, Gulcehre, Pascanu & De 2023, 'Resurrecting Recurrent Neural "
                 "Networks for Long Sequences', ICML")
    params = (
        ParamSpec("nu_log", lambda i, h: (h,), _default_nu_log),
        ParamSpec("theta_log", lambda i, h: (h,), _default_theta_log),
        ParamSpec("gamma_log", lambda i, h: (h,), lambda rng, i, h: np.zeros(h)),  # set from lambda by every init
        ParamSpec("B_re", lambda i, h: (h, i), normal(lambda i, h: 1.0 / math.sqrt(2 * i), text="N(0, 1/(2I))")),
        ParamSpec("B_im", lambda i, h: (h, i), normal(lambda i, h: 1.0 / math.sqrt(2 * i), text="N(0, 1/(2I))")),
        ParamSpec("C_re", lambda i, h: (h, h), normal(lambda i, h: 1.0 / math.sqrt(h), text="N(0, 1/H)")),
        ParamSpec("C_im", lambda i, h: (h, h), normal(lambda i, h: 1.0 / math.sqrt(h), text="N(0, 1/H)")),
        ParamSpec("D", lambda i, h: (h, i), normal(lambda i, h: 1.0 / math.sqrt(i), text="N(0, 1/I)")),
    )
    state = (StateSpec("re"), StateSpec("im"))
    output = None
    stored_per_step = 2  # re and im of each step
    inits = {
        "default": CellInit(_default, None, None, "ring r in [0.9, 0.999], phase in [0, 2 pi]",
                            "Orvieto et al. 2023, Sec. 3.3"),
        "disk": CellInit(_disk, None, None, "ring r in [0, 1], phase in [0, 6.28]: init_lru_parameters' defaults",
                         "Orvieto et al. 2023, code"),
        "r_min": CellInit(_r_min, "r_min", R_MIN, "ring r in [R, 0.999], phase in [0, 2 pi]"),
        "max_phase": CellInit(_max_phase, "max_phase", MAX_PHASE, "ring r in [0.9, 0.999], phase in [0, PHI]",
                              "Orvieto et al. 2023 (phase in [0, pi/10] on PathX)"),
        "radius": CellInit(_radius, "radius", 0.99, "every |lambda| = R, phase in [0, 2 pi]: closed-form decay R^lag"),
    }

    @staticmethod
    def _lambda(p):
        modulus = (-p["nu_log"].exp()).exp()
        theta = p["theta_log"].exp()
        return modulus * theta.cos(), modulus * theta.sin()

    def step(self, p, state, x):
        l_re, l_im = self._lambda(p)
        gamma = p["gamma_log"].exp()
        re, im = state["re"], state["im"]
        return {
            "re": l_re * re - l_im * im + gamma * (x @ p["B_re"].T),
            "im": l_re * im + l_im * re + gamma * (x @ p["B_im"].T),
        }

    def scan(self, p, x, add=None):
        """Every (re, im) at once: a*_t = t log lambda, b_t = gamma (u_t B^T), :func:`log_scan`."""
        import torch

        steps = x.shape[0]
        t = torch.arange(1, steps + 1, dtype=torch.float64, device=x.device)[:, None, None]
        decay = (-p["nu_log"].exp()).to(torch.float64) * t
        phase = torch.remainder(p["theta_log"].to(torch.float64).exp() * t, 2.0 * math.pi)
        a_star = torch.complex(decay.to(x.dtype), phase.to(x.dtype))
        log_lambda = torch.complex(-p["nu_log"].exp(), p["theta_log"].exp())
        gamma = p["gamma_log"].exp()
        b = torch.complex(gamma * (x @ p["B_re"].T), gamma * (x @ p["B_im"].T))
        if add is not None:
            b = b + torch.complex(add["re"], add["im"])
        state = log_scan(log_lambda, b, a_star=a_star)
        return {"re": state.real, "im": state.imag}

    def readout_input(self, p, state, x):
        return state["re"] @ p["C_re"].T - state["im"] @ p["C_im"].T + x @ p["D"].T

    def diagonal_recurrence(self, params):
        """lambda (complex, one per mode): each mode's gradient shrinks by |lambda_j| per step."""
        return np.exp(-np.exp(np.asarray(params["nu_log"], dtype=np.float64))
                      + 1j * np.exp(np.asarray(params["theta_log"], dtype=np.float64)))
