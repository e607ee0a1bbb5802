"""``rnn_tanh``: the Elman RNN exactly as torch's ``nn.RNN(nonlinearity="tanh")``.

Equation (row-vector form, x_t (B, I), h (B, H)), h_0 = 0::

    h_t = tanh(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh)

Parameters (torch's names and layout): weight_ih (H, I), weight_hh (H, H), bias_ih (H,),
bias_hh (H,).

Inits (the same draws, in the same order, as :func:`harness.inits.init_params`):

- ``default``: every weight and bias ~ U(-1/sqrt(H), 1/sqrt(H)) (torch's default), drawn in the order
  weight_ih, weight_hh, bias_ih, bias_hh.
- ``orthogonal=GAIN`` (Saxe et al. 2014): weight_hh = GAIN x a Haar-random orthogonal matrix.
- ``identity=GAIN``: weight_hh = GAIN x I, the rest (biases too) as default: the IRNN's W_hh (Le et
  al. 2015) on tanh units with random biases, not the IRNN (that is rnn_relu's ``irnn``).
- ``linear=S``: zero input weights and biases and weight_hh = S x orthogonal; with h_0 = 0 the state
  stays 0, tanh works in its linear regime and g_t shrinks (S < 1) or grows (S > 1) by exactly S
  per step.

Jacobian of a step: d h_t / d h_{t-1} = diag(1 - h_t^2) W_hh (Bengio et al. 1994; Pascanu et al. 2013).
"""
from __future__ import annotations

import numpy as np

from harness.cell import CellInit, StateSpec, TorchLayoutCell, identity_init, orthogonal_init, random_orthogonal
from harness.cell import torch_rnn_params


def _linear(params, rng, input_size, hidden_size, value, steps) -> None:
    if not np.isfinite(value) or value < 0:
        from harness.errors import HarnessError

        raise HarnessError(f"init 'linear': its scale must be finite and not negative, got {value!r}")
    params["weight_hh"] = value * random_orthogonal(hidden_size, rng)
    for name in ("weight_ih", "bias_ih", "bias_hh"):
        params[name] = np.zeros_like(params[name])


class RnnTanh(TorchLayoutCell):
    name = "rnn_tanh"
    description = "Elman RNN, torch nn.RNN(nonlinearity='tanh'): h = tanh(x W_ih^T + b_ih + h W_hh^T + b_hh)"
    reference = "Elman 1990; torch.nn.RNN"
    params = torch_rnn_params(1)
    state = (StateSpec("h"),)
    output = "h"
    gate_names = ("h",)
    stored_per_step = 1
    inits = {
        "orthogonal": orthogonal_init(1),
        "identity": identity_init(1),
        "linear": CellInit(_linear, "scale", 1.0, "zero input weights and biases, W_hh = S x orthogonal: "
                           "g_t changes by exactly S per step"),
    }

    def step(self, p, state, x):
        return {"h": (x @ p["weight_ih"].T + p["bias_ih"] + state["h"] @ p["weight_hh"].T + p["bias_hh"]).tanh()}
