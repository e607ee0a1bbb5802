"""``gru_cho``: the lecture GRU (Cho et al. 2014): reset applied BEFORE the recurrent matmul, and
h = (1 - z) h + z n. A different function from torch's ``gru`` with the same parameter shapes.
Cho et al. write the update as h = z h + (1 - z) h~; this cell keeps the convention of Chung et al.
(2014), where z writes and 1 - z keeps: the same family of functions with z -> 1 - z (the sign of
z's pre-activation flipped), which ``chrono`` accounts for.

Equations (row-vector form, x_t (B, I), h (B, H)), h_0 = 0, gate order r, z, n; both biases of
every gate add up (b = b_ih + b_hh)::

    r = sigmoid(x_t W_ir^T + h_{t-1} W_hr^T + b_ir + b_hr)
    z = sigmoid(x_t W_iz^T + h_{t-1} W_hz^T + b_iz + b_hz)
    n = tanh(x_t W_in^T + (r * h_{t-1}) W_hn^T + b_in + b_hn)
    h_t = (1 - z) * h_{t-1} + z * n

Parameters: weight_ih (3H, I), weight_hh (3H, H), bias_ih (3H,), bias_hh (3H,) in torch's layout.
Inits as :mod:`harness.inits`: ``default``, ``orthogonal=GAIN``, ``identity=GAIN``, and
``chrono=T_MAX`` with z's total bias -log(u), u ~ U(1, T_MAX - 1) (here 1 - z keeps h).
"""
from __future__ import annotations

from harness.cell import StateSpec, TorchLayoutCell, chrono_init, identity_init, orthogonal_init, torch_rnn_params

GATES = ("r", "z", "n")


class GruCho(TorchLayoutCell):
    name = "gru_cho"
    description = "lecture GRU: n = tanh(x W_in + (r * h) W_hn + b); h = (1-z) h + z n"
    reference = "Cho et al. 2014, 'Learning phrase representations using RNN encoder-decoder'"
    params = torch_rnn_params(3)
    state = (StateSpec("h"),)
    output = "h"
    gate_names = GATES
    stored_per_step = 5
    inits = {
        "orthogonal": orthogonal_init(3),
        "identity": identity_init(3),
        "chrono": chrono_init(GATES, keep="z", write=None, keep_sign=-1.0),
    }

    def step(self, p, state, x):
        h = state["h"]
        w_hh = p["weight_hh"]
        hidden = h.shape[1]
        x_r, x_z, x_n = (x @ p["weight_ih"].T + p["bias_ih"] + p["bias_hh"]).chunk(3, 1)
        h_r, h_z = (h @ w_hh[: 2 * hidden].T).chunk(2, 1)
        r = (x_r + h_r).sigmoid()
        z = (x_z + h_z).sigmoid()
        n = (x_n + (r * h) @ w_hh[2 * hidden :].T).tanh()
        return {"h": (1 - z) * h + z * n}
