"""Recurrent cells in PyTorch's exact conventions, and their parameter initialisers.

Parameters use torch's layout so that torch autograd is an external oracle: ``weight_ih``
(G*H, I), ``weight_hh`` (G*H, H), ``bias_ih`` and ``bias_hh`` (G*H,), gate chunks in torch's order
(LSTM i, f, g, o; GRU r, z, n). ``gru_cho`` is the lecture GRU (reset applied before the recurrent
matmul, h = (1-z) h + z n): a different function with the same parameter shapes.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harness.errors import check_choice

PARAM_NAMES = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
DTYPES = ("float32", "float64")

Params = dict[str, np.ndarray]


@dataclass(frozen=True)
class CellSpec:
    """What the core needs to know of a cell; ask it rather than testing the cell's name."""

    name: str
    gate_names: tuple[str, ...]  # the row blocks of weight_ih / weight_hh, in torch's order
    has_cell_state: bool  # LSTM: a second state c_t, with its own per-step gradient dL/dc_t
    stored_per_step: int  # k in the analytic activation size T * B * k * H * itemsize

    @property
    def gates(self) -> int:
        """G: the number of gate blocks."""
        return len(self.gate_names)


CELLS: dict[str, CellSpec] = {
    spec.name: spec
    for spec in (
        CellSpec("rnn_tanh", gate_names=("h",), has_cell_state=False, stored_per_step=1),
        CellSpec("lstm", gate_names=("i", "f", "g", "o"), has_cell_state=True, stored_per_step=6),
        CellSpec("gru", gate_names=("r", "z", "n"), has_cell_state=False, stored_per_step=5),  # b_hn inside r * (...)
        CellSpec("gru_cho", gate_names=("r", "z", "n"), has_cell_state=False, stored_per_step=5),  # reset before matmul
    )
}


def cell_spec(cell: str) -> CellSpec:
    """The spec of ``cell``; an unknown name is a one-line error naming the cells."""
    return CELLS[check_choice("cell", cell, CELLS)]


def param_shapes(cell: str, input_size: int, hidden_size: int) -> dict[str, tuple[int, ...]]:
    gh = cell_spec(cell).gates * hidden_size
    return {
        "weight_ih": (gh, input_size),
        "weight_hh": (gh, hidden_size),
        "bias_ih": (gh,),
        "bias_hh": (gh,),
    }


def activation_bytes(cell: str, steps: int, batch: int, hidden_size: int, dtype: str) -> int:
    """Analytic size of the activations a BPTT implementation must keep: steps * B * k * H * itemsize."""
    k = cell_spec(cell).stored_per_step
    return steps * batch * k * hidden_size * np.dtype(dtype).itemsize
