"""The classic cells' inits as harness.inits drew them before cells were plugins, frozen here: the
cells' own draws (harness.cell.Cell.init_params, which harness.inits now delegates to) must give the
same parameters bit for bit (tests/test_cell.py)."""
from __future__ import annotations

import numpy as np

GATES = {"rnn_tanh": ("h",), "lstm": ("i", "f", "g", "o"), "gru": ("r", "z", "n"), "gru_cho": ("r", "z", "n")}
DEFAULTS = {"default": None, "orthogonal": 1.0, "identity": 1.0, "linear": 1.0, "forget_bias": 1.0, "chrono": None}


def _orthogonal(n: int, rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((n, n)))
    return q * np.sign(np.diag(r))


def _set_gate_bias(params, cell, gate, bias) -> None:
    hidden = params["bias_ih"].shape[0] // len(GATES[cell])
    k = GATES[cell].index(gate)
    for name in ("bias_ih", "bias_hh"):
        params[name][k * hidden : (k + 1) * hidden] = np.asarray(bias) / 2.0


def legacy_init_params(cell: str, input_size: int, hidden_size: int, rng: np.random.Generator, spec: str,
                       steps: int | None = None) -> dict[str, np.ndarray]:
    name, _, text = spec.partition("=")
    kind = name.strip()
    value = float(text) if text else DEFAULTS[kind]
    gh = len(GATES[cell]) * hidden_size
    bound = 1.0 / np.sqrt(hidden_size)
    shapes = {"weight_ih": (gh, input_size), "weight_hh": (gh, hidden_size), "bias_ih": (gh,), "bias_hh": (gh,)}
    params = {n: rng.uniform(-bound, bound, size=shape) for n, shape in shapes.items()}
    if kind in ("orthogonal", "identity", "linear"):
        blocks = [np.eye(hidden_size) if kind == "identity" else _orthogonal(hidden_size, rng) for _ in GATES[cell]]
        params["weight_hh"] = value * np.concatenate(blocks, axis=0)
    if kind == "linear":
        for n in ("weight_ih", "bias_ih", "bias_hh"):
            params[n] = np.zeros_like(params[n])
    elif kind == "forget_bias":
        _set_gate_bias(params, cell, "f", value)
    elif kind == "chrono":
        t_max = value if value is not None else steps
        keep = np.log(rng.uniform(1.0, t_max - 1.0, size=hidden_size))
        if cell == "lstm":
            _set_gate_bias(params, cell, "f", keep)
            _set_gate_bias(params, cell, "i", -keep)
        else:
            _set_gate_bias(params, cell, "z", keep if cell == "gru" else -keep)
    return params
