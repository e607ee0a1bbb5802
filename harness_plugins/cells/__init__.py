"""The harness's built-in cells, installed as ``harness_plugins.cells`` and registered through the
``harness`` entry-point group (``cells = "harness_plugins.cells"``) exactly like a third-party cell
plugin: one module per cell, each a :class:`harness.cell.Cell` subclass, offered by the
``harness_cells`` hook.

- classic cells in torch's exact conventions: ``rnn_tanh``, ``lstm``, ``gru`` (cuDNN form) and
  ``gru_cho`` (the lecture GRU);
- cells that answer vanishing gradients differently: ``rnn_relu`` (with the IRNN init), ``indrnn``,
  ``mingru``, ``lru`` and ``lru_block`` (two LRU layers in the paper's blocks: the nonlinearity one
  ``lru`` layer lacks).

Each module's docstring gives the cell's equations, parameter names and shapes and its inits,
with sources. Importing this package imports NumPy and the harness only; the steps use torch
tensors' methods, so torch is needed only when a cell is run.
"""
from __future__ import annotations

from harness.hookspecs import hookimpl
from harness_plugins.cells.gru import Gru
from harness_plugins.cells.gru_cho import GruCho
from harness_plugins.cells.indrnn import Indrnn
from harness_plugins.cells.lru import Lru
from harness_plugins.cells.lru_block import LruBlock
from harness_plugins.cells.lstm import Lstm
from harness_plugins.cells.mingru import MinGru
from harness_plugins.cells.rnn_relu import RnnRelu
from harness_plugins.cells.rnn_tanh import RnnTanh

HARNESS_PLUGIN_API = 3

CELLS = (RnnTanh, Lstm, Gru, GruCho, RnnRelu, Indrnn, MinGru, Lru, LruBlock)


@hookimpl
def harness_cells():
    return list(CELLS)
