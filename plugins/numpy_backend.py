"""The ``numpy`` backend: the core's NumPy reference implementation, in float32 and float64."""
from __future__ import annotations

import numpy as np

from harness import Backend, Gradients, Outputs, Problem, hookimpl, reference
from harness.cells import CELLS

HARNESS_PLUGIN_API = 2


class NumpyBackend(Backend):
    name = "numpy"
    cells = tuple(CELLS)  # rnn_tanh, lstm, gru and gru_cho
    description = "NumPy reference: hoisted input GEMM, per-step GEMM, weight-gradient GEMMs after the loop"

    def info(self) -> dict:
        return {**super().info(), "numpy": np.__version__}

    def setup(self, problem: Problem) -> None:
        """Nothing to move: the reference works on the problem's arrays."""

    def set_upstream(self, grad_h: np.ndarray) -> None:
        self._grad_h = grad_h

    def teardown(self) -> None:
        super().teardown()
        self._acts = self._grads = self._grad_h = None

    def forward(self) -> None:
        p = self.problem
        self._acts = reference.forward(p.cell, p.params, p.x)

    def backward(self, per_step: bool = False) -> None:
        p = self.problem
        with np.errstate(over="ignore", invalid="ignore"):  # explosion is a result, not an error
            self._grads = reference.backward(p.cell, p.params, p.x, self._acts, self._grad_h, per_step)

    def outputs(self) -> Outputs:
        return reference.outputs(self.problem.cell, self._acts)

    def gradients(self) -> Gradients:
        return self._grads


@hookimpl
def harness_backends():
    return [NumpyBackend]
