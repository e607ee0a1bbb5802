"""``rnn_relu``: the Elman RNN with ReLU units, exactly as torch's ``nn.RNN(nonlinearity="relu")``.

Equation (row-vector form, x_t (B, I), h (B, H)), h_0 = 0::

    h_t = relu(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh)

Parameters (torch's names and layout): weight_ih (H, I), weight_hh (H, H), bias_ih (H,),
bias_hh (H,).

Inits:

- ``default``: every weight and bias ~ U(-1/sqrt(H), 1/sqrt(H)) (torch's default), drawn in the order
  weight_ih, weight_hh, bias_ih, bias_hh.
- ``irnn=STD`` (Le, Jaitly & Hinton 2015, "A Simple Way to Initialize Recurrent Networks of
  Rectified Linear Units"): weight_hh = I, bias_ih = bias_hh = 0, weight_ih ~ N(0, STD^2) with STD =
  0.001 unless given. The identity and the zero biases are the paper's IRNN definition (Sec. 2). For
  the input weights we take the paper's own choice, the Gaussian of standard deviation 0.001 with
  which its IRNN experiments initialise the non-recurrent weights (the same N(0, 0.001^2) as Keras's
  mnist_irnn example, written after the paper), rather than torch's U(-1/sqrt(H), 1/sqrt(H)):
  with tiny input weights and W_hh = I the network starts as an integrator that barely moves,
  which is what the paper trains from. ``irnn=0.1`` and the like change only that scale.
- ``identity=GAIN``: weight_hh = GAIN x I with everything else (biases too) as ``default``; the
  harness's generic init, not IRNN (its biases are not zero).
- ``orthogonal=GAIN`` (Saxe et al. 2014): weight_hh = GAIN x Haar-random orthogonal.

Jacobian of a step: d h_t / d h_{t-1} = diag(relu'(a_t)) W_hh. With ``irnn`` and every
pre-activation positive (non-negative inputs and input weights), it is the identity: h_t is the
running sum of x_t W_ih^T and the gradient g_t = ||dL/dh_t|| is constant in t.
"""
from __future__ import annotations

import math

import numpy as np

from harness.cell import CellInit, StateSpec, TorchLayoutCell, identity_init, orthogonal_init, torch_rnn_params
from harness.errors import HarnessError


def _irnn(params, rng, input_size, hidden_size, value, steps) -> None:
    if not math.isfinite(value) or value < 0:
        raise HarnessError(f"init 'irnn': its std must be finite and not negative, got {value!r}")
    params["weight_hh"] = np.eye(hidden_size)
    params["bias_ih"] = np.zeros(hidden_size)
    params["bias_hh"] = np.zeros(hidden_size)
    params["weight_ih"] = value * rng.standard_normal((hidden_size, input_size))


class RnnRelu(TorchLayoutCell):
    name = "rnn_relu"
    description = "ReLU RNN, torch nn.RNN(nonlinearity='relu'): h = relu(x W_ih^T + b_ih + h W_hh^T + b_hh)"
    reference = "Le, Jaitly & Hinton 2015 (IRNN); torch.nn.RNN"
    params = torch_rnn_params(1)
    state = (StateSpec("h"),)
    output = "h"
    gate_names = ("h",)
    stored_per_step = 1
    inits = {
        "irnn": CellInit(_irnn, "std", 0.001, "W_hh = I, zero biases, W_ih ~ N(0, STD^2)",
                         "Le, Jaitly & Hinton 2015"),
        "identity": identity_init(1),
        "orthogonal": orthogonal_init(1),
    }

    def step(self, p, state, x):
        return {"h": (x @ p["weight_ih"].T + p["bias_ih"] + state["h"] @ p["weight_hh"].T + p["bias_hh"]).relu()}
