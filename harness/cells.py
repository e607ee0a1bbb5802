"""Cells by name: what the core asks of the cell a grid point names.

Cells are plugins (:mod:`harness.cell`, the ``harness_cells`` hook): the built-in ones
(``harness_plugins.cells``: rnn_tanh, lstm, gru, gru_cho, rnn_relu, indrnn, mingru, lru, lru_block) and any
third-party one come from the plugin registry (:func:`harness.plugins.get_registry`), which is
loaded on first use, never at import. Everything the core needs of a cell it asks the cell's class:
its parameters and their shapes, its states, its inits, its recurrent matrix, its FLOPs, the
activations it stores. Nothing here tests a cell's name.

::

    cell_class("mingru")            # the Cell subclass; an unknown name is one line naming the known cells
    cell("mingru")                  # an instance (one per process)
    cell_names()                    # every registered cell, in the registry's order
    activation_bytes("lstm", T, B, H, "float32")

The classic cells keep torch's layout (``weight_ih`` (G*H, I), ``weight_hh`` (G*H, H),
``bias_ih``, ``bias_hh``); :data:`PARAM_NAMES`, :func:`param_shapes` and :func:`cell_spec` remain
for backend plugins written for plugin API 2, which ask for them by name.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from harness.cell import Cell, as_cell

DTYPES = ("float32", "float64")
#: The parameter names of the cells in torch's layout (rnn_tanh, lstm, gru, gru_cho, rnn_relu).
PARAM_NAMES = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")

Params = dict[str, np.ndarray]


def _registry():
    from harness.plugins import get_registry  # the same layer; loaded on first use, not at import

    return get_registry()


def cell_class(name: str) -> type[Cell]:
    """The class of cell ``name``; an unknown name is a one-line error naming the known cells."""
    return _registry().cell_class(name)


@functools.lru_cache(maxsize=None)
def _instance(cls: type[Cell]) -> Cell:
    return as_cell(cls)


def cell(name: str) -> Cell:
    """An instance of cell ``name`` (one per class and process: cells keep no state)."""
    return _instance(cell_class(name))


def cell_names() -> tuple[str, ...]:
    """Every registered cell, in the registry's order (built-in cells first)."""
    return tuple(_registry().cells)


def origin(name: str) -> str:
    """``plugin 'NAME' (DISTRIBUTION VERSION)`` of the plugin offering cell ``name``."""
    return _registry().cell_origin(name)


def from_plugin(name: str) -> str:
    """`` (from plugin 'NAME' (DISTRIBUTION VERSION))`` for a cell that is not built in, to end the
    messages about it with; empty for the harness's own cells."""
    record = _registry().cell_plugins.get(name)
    if record is None or record.module.startswith("harness_plugins."):
        return ""
    return f" (from {record.origin})"


def activation_bytes(cell: str, steps: int, batch: int, hidden_size: int, dtype: str) -> int:
    """Analytic size of the activations a BPTT implementation must keep: steps * B * k * H * itemsize,
    k the cell's :attr:`~harness.cell.Cell.stored_per_step`."""
    k = cell_class(cell).stored_per_step
    return steps * batch * k * hidden_size * np.dtype(dtype).itemsize


def param_shapes(cell: str, input_size: int, hidden_size: int) -> dict[str, tuple[int, ...]]:
    """The declared shape of every parameter of ``cell`` (:meth:`Cell.param_shapes`)."""
    return cell_class(cell).param_shapes(input_size, hidden_size)


@dataclass(frozen=True)
class CellSpec:
    """What plugin API 2 knew of a cell. Kept for backend plugins written for it; new code asks the
    :class:`~harness.cell.Cell` (states, gate_names, stored_per_step)."""

    name: str
    gate_names: tuple[str, ...]
    has_cell_state: bool  # a second state tensor named c (LSTM), with its own per-step gradient
    stored_per_step: int

    @property
    def gates(self) -> int:
        return len(self.gate_names)


def cell_spec(cell: str) -> CellSpec:
    """The plugin-API-2 view of cell ``cell`` (see :class:`CellSpec`)."""
    cls = cell_class(cell)
    states = [s.name for s in cls.state]
    return CellSpec(cls.name, tuple(cls.gate_names), "c" in states and cls.output != "c", cls.stored_per_step)
