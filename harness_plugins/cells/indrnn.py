"""``indrnn``: the independently recurrent network (Li, Li, Cook, Zhu & Gao 2018, "Independently
Recurrent Neural Network (IndRNN): Building A Longer and Deeper RNN").

Equation (row-vector form, x_t (B, I), h (B, H)), h_0 = 0; ``*`` is element-wise::

    h_t = relu(x_t W^T + u * h_{t-1} + b)

Parameters: weight_ih = W (H, I), weight_hh = u (H,) (the recurrent weight VECTOR: unit n sees only
its own past), bias = b (H,).

Gradient: d h_t / d h_{t-1} = diag(u * relu'(a_t)), so through n steps unit i's gradient scales as
prod u_i relu'(a): with every pre-activation positive, exactly u_i^n (the Lyapunov exponents are
log |u_i|, and :meth:`Indrnn.diagonal_recurrence` returns u). The paper keeps each unit's memory in
range by bounding |u_i|: with ReLU, |u_i| <= gamma^(1/T) keeps the gradient over T steps below
gamma; it uses gamma = 2, |u| <= 2^(1/T), on the adding problem (REFERENCES.md, "Cells beyond the
classic three"). That bound is a constraint the paper's training enforces after every optimizer
step (clipping u); it is an optimizer concern and is NOT applied in :meth:`Indrnn.step`, which
computes the cell for any u.

Inits:

- ``default``: weight_ih ~ U(-1/sqrt(H), 1/sqrt(H)) (torch's recurrent-layer default: the paper does
  not fix the input weights' init, and this makes indrnn an nn.RNN whose W_hh is diagonal),
  weight_hh = u ~ U(0, 1) (the paper's default, and that of the reference TensorFlow cell,
  batzner/indrnn), bias = 0 (as that cell).
- ``memory=T_MAX``: u ~ U(0, 2^(1/T_MAX)): initialised within the paper's bound for a memory of
  T_MAX steps (its adding-problem setting; the authors' and batzner/indrnn's addition examples
  initialise and clip u this way). T_MAX defaults to the point's steps.
- ``long_memory=T_MAX``: u ~ U(2^(-1/T_MAX), 2^(1/T_MAX)): every unit keeps at least half of its
  gradient over T_MAX steps; how the paper's code initialises the LAST layer of a deep IndRNN on
  sequential MNIST (RECURRENT_MIN = 0.5^(1/T) in its examples); here it is the only layer.
"""
from __future__ import annotations

import numpy as np

from harness.cell import Cell, CellInit, ParamSpec, StateSpec, steps_value, uniform, zeros


def _memory(init: str, keep_half: bool):
    """u ~ U(0 or 2^(-1/T_MAX), 2^(1/T_MAX))."""
    def apply(params, rng, input_size, hidden_size, value, steps) -> None:
        t_max = steps_value(init, value, steps, least=0.0)
        low = 2.0 ** (-1.0 / t_max) if keep_half else 0.0
        params["weight_hh"] = rng.uniform(low, 2.0 ** (1.0 / t_max), size=hidden_size)
    return apply


class Indrnn(Cell):
    name = "indrnn"
    description = "IndRNN: h = relu(x W^T + u * h + b), u a vector (one recurrent weight per unit)"
    reference = "Li, Li, Cook, Zhu & Gao 2018, 'Independently Recurrent Neural Network (IndRNN)', CVPR"
    params = (
        ParamSpec("weight_ih", lambda i, h: (h, i)),
        ParamSpec("weight_hh", lambda i, h: (h,), uniform(0.0, 1.0)),
        ParamSpec("bias", lambda i, h: (h,), zeros),
    )
    state = (StateSpec("h"),)
    output = "h"
    stored_per_step = 1
    inits = {
        "memory": CellInit(_memory("memory", False), "T_max", None, "u ~ U(0, 2^(1/T_MAX))",
                           "Li et al. 2018, Sec. 3.1 (|u| <= 2^(1/T) for ReLU)"),
        "long_memory": CellInit(_memory("long_memory", True), "T_max", None, "u ~ U(2^(-1/T_MAX), 2^(1/T_MAX))",
                                "Li et al. 2018 (last-layer init of its sequential MNIST code)"),
    }

    def step(self, p, state, x):
        return {"h": (x @ p["weight_ih"].T + p["weight_hh"] * state["h"] + p["bias"]).relu()}

    def diagonal_recurrence(self, params):
        """u: the step's Jacobian is diag(u * relu'(a_t)), diag(u) where every unit is active."""
        return np.asarray(params["weight_hh"], dtype=np.float64)
