"""``gru``: the GRU exactly as torch's ``nn.GRU`` (cuDNN's form: b_hn inside r * (...)).

Equations (row-vector form, x_t (B, I), h (B, H)), h_0 = 0, gate order r, z, n::

    r = sigmoid(x_t W_ir^T + b_ir + h_{t-1} W_hr^T + b_hr)
    z = sigmoid(x_t W_iz^T + b_iz + h_{t-1} W_hz^T + b_hz)
    n = tanh(x_t W_in^T + b_in + r * (h_{t-1} W_hn^T + b_hn))
    h_t = (1 - z) * n + z * h_{t-1}

This is Keras's reset_after=True and ONNX's linear_before_reset=1; the lecture form (reset before
the matmul) is the separate cell ``gru_cho``. Parameters (torch's names and layout): weight_ih
(3H, I), weight_hh (3H, H), bias_ih (3H,), bias_hh (3H,).

Inits (the same draws as :func:`harness.inits.init_params`): ``default`` U(-1/sqrt(H), 1/sqrt(H));
``orthogonal=GAIN``, ``identity=GAIN`` per (H, H) block of weight_hh; ``chrono=T_MAX`` (Tallec &
Ollivier 2018): z keeps h, so z's total bias is log(u), u ~ U(1, T_MAX - 1), half in each bias.
"""
from __future__ import annotations

from harness.cell import StateSpec, TorchLayoutCell, chrono_init, identity_init, orthogonal_init, torch_rnn_params

GATES = ("r", "z", "n")


class Gru(TorchLayoutCell):
    name = "gru"
    description = "GRU, torch nn.GRU (cuDNN form): n = tanh(x W_in + b_in + r * (h W_hn + b_hn)); h = (1-z) n + z h"
    reference = "Cho et al. 2014; torch.nn.GRU"
    params = torch_rnn_params(3)
    state = (StateSpec("h"),)
    output = "h"
    gate_names = GATES
    stored_per_step = 5
    inits = {
        "orthogonal": orthogonal_init(3),
        "identity": identity_init(3),
        "chrono": chrono_init(GATES, keep="z", write=None),
    }

    def step(self, p, state, x):
        h = state["h"]
        i_r, i_z, i_n = (x @ p["weight_ih"].T + p["bias_ih"]).chunk(3, 1)
        h_r, h_z, h_n = (h @ p["weight_hh"].T + p["bias_hh"]).chunk(3, 1)
        r = (i_r + h_r).sigmoid()
        z = (i_z + h_z).sigmoid()
        n = (i_n + r * h_n).tanh()
        return {"h": (1 - z) * n + z * h}
