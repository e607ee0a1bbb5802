"""``lstm``: the LSTM exactly as torch's ``nn.LSTM`` (no peepholes, gate order i, f, g, o).

Equations (row-vector form, x_t (B, I), h, c (B, H)), h_0 = c_0 = 0::

    a = x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh          # (B, 4H), chunks i, f, g, o
    c_t = sigmoid(f) * c_{t-1} + sigmoid(i) * tanh(g)
    h_t = sigmoid(o) * tanh(c_t)

State: h (the output the readout sees) and c, each of size H; both get a total per-step gradient
(dL/dh_t, dL/dc_t). Parameters (torch's names and layout): weight_ih (4H, I), weight_hh (4H, H),
bias_ih (4H,), bias_hh (4H,).

Inits (the same draws, in the same order, as :func:`harness.inits.init_params`):

- ``default``: every weight and bias ~ U(-1/sqrt(H), 1/sqrt(H)).
- ``orthogonal=GAIN``, ``identity=GAIN``: each of the four (H, H) blocks of weight_hh.
- ``forget_bias=B`` (Gers et al. 2000; Jozefowicz et al. 2015): the forget gate's total bias
  bias_ih + bias_hh = B, half in each (B may be negative).
- ``chrono=T_MAX`` (Tallec & Ollivier 2018): b = log(u), u ~ U(1, T_MAX - 1); forget bias b,
  input bias -b, each split half/half; T_MAX defaults to the point's steps.
"""
from __future__ import annotations

import math

from harness.cell import CellInit, StateSpec, TorchLayoutCell, chrono_init, identity_init, orthogonal_init
from harness.cell import set_gate_bias, torch_rnn_params
from harness.errors import HarnessError

GATES = ("i", "f", "g", "o")


def _forget_bias(params, rng, input_size, hidden_size, value, steps) -> None:
    if not math.isfinite(value):
        raise HarnessError(f"init 'forget_bias': its bias must be finite, got {value!r}")
    set_gate_bias(params, GATES, "f", value)


class Lstm(TorchLayoutCell):
    name = "lstm"
    description = "LSTM, torch nn.LSTM: gates i, f, g, o; c = s(f) c + s(i) tanh(g); h = s(o) tanh(c)"
    reference = "Hochreiter & Schmidhuber 1997; Gers et al. 2000; torch.nn.LSTM"
    params = torch_rnn_params(4)
    state = (StateSpec("h"), StateSpec("c"))
    output = "h"
    gate_names = GATES
    stored_per_step = 6
    inits = {
        "orthogonal": orthogonal_init(4),
        "identity": identity_init(4),
        "forget_bias": CellInit(_forget_bias, "bias", 1.0, "forget gate's bias_ih + bias_hh = B",
                                "Gers et al. 2000; Jozefowicz et al. 2015"),
        "chrono": chrono_init(GATES, keep="f", write="i"),
    }

    def step(self, p, state, x):
        a = x @ p["weight_ih"].T + p["bias_ih"] + state["h"] @ p["weight_hh"].T + p["bias_hh"]
        i, f, g, o = a.chunk(4, 1)
        c = f.sigmoid() * state["c"] + i.sigmoid() * g.tanh()
        return {"h": o.sigmoid() * c.tanh(), "c": c}
