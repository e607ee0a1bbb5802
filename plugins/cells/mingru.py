"""``mingru``: the minimal GRU of Feng, Tung, Ahmed, Bengio & Hajimirsadeghi 2024, "Were RNNs All We
Needed?" (arXiv 2410.01201), in its sequential form.

Equations (row-vector form, x_t (B, I), h (B, H)), h_0 = 0; ``*`` is element-wise::

    z_t  = sigmoid(x_t W_z^T + b_z)            # Linear_z(x_t): the gate does not see h
    h~_t = x_t W_h^T + b_h                      # Linear_h(x_t): no tanh either
    h_t  = (1 - z_t) * h_{t-1} + z_t * h~_t

Parameters (two separate Linear layers, not stacked): weight_z (H, I), bias_z (H,), weight_h
(H, I), bias_h (H,).

Gradient: the gates do not depend on h, so d h_t / d h_{t-1} = diag(1 - z_t), independent of h
(and of W_h): the gradient of unit i through n steps is prod (1 - z_{t,i}), driven by the input
alone. Because the recurrence is linear in h with input-only coefficients, it also runs as a
parallel scan over t (the paper's log-space scan, Heinsen 2023); this file defines the sequential
cell that every path must match. The paper's log-space variant additionally passes h~ through
g(v) = v + 0.5 for v >= 0, sigmoid(v) otherwise, to keep it positive; that is a different
function and is not this cell.

Inits: ``default`` only: every weight and bias ~ U(-1/sqrt(I), 1/sqrt(I)), torch's nn.Linear
default for a layer from I inputs (the paper writes Linear_dh and its code uses nn.Linear), drawn
in the order weight_z, bias_z, weight_h, bias_h.
"""
from __future__ import annotations

from harness.cell import Cell, ParamSpec, StateSpec, linear_uniform


class MinGru(Cell):
    name = "mingru"
    description = "minGRU: z = s(x W_z^T + b_z), h~ = x W_h^T + b_h, h = (1 - z) h + z h~ (gates see x only)"
    reference = "Feng, Tung, Ahmed, Bengio & Hajimirsadeghi 2024, 'Were RNNs All We Needed?', arXiv 2410.01201"
    params = (
        ParamSpec("weight_z", lambda i, h: (h, i), linear_uniform),
        ParamSpec("bias_z", lambda i, h: (h,), linear_uniform),
        ParamSpec("weight_h", lambda i, h: (h, i), linear_uniform),
        ParamSpec("bias_h", lambda i, h: (h,), linear_uniform),
    )
    state = (StateSpec("h"),)
    output = "h"
    stored_per_step = 3  # h, z and h~ of each step

    def step(self, p, state, x):
        z = (x @ p["weight_z"].T + p["bias_z"]).sigmoid()
        h_tilde = x @ p["weight_h"].T + p["bias_h"]
        return {"h": (1 - z) * state["h"] + z * h_tilde}
