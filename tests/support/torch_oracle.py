"""torch autograd in float64 as the external oracle for every cell torch defines.

Import it after ``pytest.importorskip("torch")``: a missing torch skips, a broken oracle fails.
"""
from __future__ import annotations

import numpy as np
import torch

MODULES = {"rnn_tanh": ("RNN", "RNNCell"), "lstm": ("LSTM", "LSTMCell"), "gru": ("GRU", "GRUCell")}


def _load(module, params, suffix=""):
    with torch.no_grad():
        for name, value in params.items():
            getattr(module, name + suffix).copy_(torch.from_numpy(np.asarray(value, dtype=np.float64)))


def layer(cell: str, params, x: np.ndarray, grad_h: np.ndarray):
    """h_t, c_t, parameter gradients and dL/dx from torch.nn.RNN/LSTM/GRU, with L = sum(grad_h * h)."""
    seq_len, batch, input_size = x.shape
    hidden = params["weight_hh"].shape[1]
    kwargs = {"nonlinearity": "tanh"} if cell == "rnn_tanh" else {}
    module = getattr(torch.nn, MODULES[cell][0])(input_size, hidden, **kwargs).double()
    _load(module, params, "_l0")
    xt = torch.from_numpy(x.astype(np.float64)).requires_grad_(True)
    out, _ = module(xt)
    weights = [getattr(module, n + "_l0") for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
    grads = torch.autograd.grad(out, weights + [xt], grad_outputs=torch.from_numpy(grad_h.astype(np.float64)))
    names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
    return out.detach().numpy(), {n: g.numpy() for n, g in zip(names, grads[:4])}, grads[4].numpy()


def per_step(cell: str, params, x: np.ndarray, grad_h: np.ndarray):
    """Total dL/dh_t (and dL/dc_t) by stepping torch's cell and adding a zero tensor to each state."""
    seq_len, batch, input_size = x.shape
    hidden = params["weight_hh"].shape[1]
    kwargs = {"nonlinearity": "tanh"} if cell == "rnn_tanh" else {}
    module = getattr(torch.nn, MODULES[cell][1])(input_size, hidden, **kwargs).double()
    _load(module, params)
    xt = torch.from_numpy(x.astype(np.float64))
    h = torch.zeros(batch, hidden, dtype=torch.float64)
    c = torch.zeros_like(h)
    zh = torch.zeros(seq_len, batch, hidden, dtype=torch.float64, requires_grad=True)
    zc = torch.zeros(seq_len, batch, hidden, dtype=torch.float64, requires_grad=True)
    hs, cs = [], []
    for t in range(seq_len):
        if cell == "lstm":  # stepped by hand so that c_t can take its zero before h_t = o tanh(c_t)
            gates = xt[t] @ module.weight_ih.T + module.bias_ih + h @ module.weight_hh.T + module.bias_hh
            i, f, g, o = gates.chunk(4, dim=1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g) + zc[t]
            cs.append(c)
            h = torch.sigmoid(o) * torch.tanh(c)
        else:
            h = module(xt[t], h)
        h = h + zh[t]
        hs.append(h)
    loss = (torch.stack(hs) * torch.from_numpy(grad_h.astype(np.float64))).sum()
    if cell == "lstm":
        dh, dc = torch.autograd.grad(loss, [zh, zc])
        return dh.numpy(), dc.numpy()
    (dh,) = torch.autograd.grad(loss, [zh])
    return dh.numpy(), None
