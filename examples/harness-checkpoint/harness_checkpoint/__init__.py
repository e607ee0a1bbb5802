"""The ``checkpoint`` backend: NumPy BPTT with gradient checkpointing (Chen et al. 2016).

Forward keeps, every k ~ sqrt(T) steps, only the state the recurrence restarts from (h, and c for
LSTM), plus the last segment's activations; backward recomputes one segment's activations at a
time from its checkpoint and backpropagates through it, carrying dL/dh and dL/dc across segment
boundaries. Activations therefore take O(sqrt T) steps of memory instead of O(T), for about one
extra forward pass of time. The hidden states h_1..h_T are materialised only when asked for
(``outputs()``, untimed, by the same recomputation): the harness's readout and loss do not consume
them inside the timed region. The arithmetic is harness's NumPy reference, run segment by segment.
"""
from __future__ import annotations

import math

import numpy as np

from harness import Backend, Gradients, Outputs, Problem, hookimpl, reference
from harness.cells import cell_spec

HARNESS_PLUGIN_API = 3  # the plugin-API version this plugin was written for (states by name)


def segment_length(seq_len: int) -> int:
    """k = ceil(sqrt(T)): sqrt(T) checkpoints and segments of sqrt(T) steps (Chen et al. 2016)."""
    return max(1, math.ceil(math.sqrt(seq_len)))


class CheckpointBackend(Backend):
    name = "checkpoint"
    cells = ("rnn_tanh", "lstm", "gru", "gru_cho")
    description = "NumPy BPTT with gradient checkpointing every ~sqrt(T) steps (Chen et al. 2016)"

    def setup(self, problem: Problem) -> None:
        T = problem.x.shape[0]
        k = segment_length(T)
        self.segments = [(start, min(start + k, T)) for start in range(0, T, k)]

    def set_upstream(self, grad_h: np.ndarray) -> None:
        self.grad_h = grad_h

    def teardown(self) -> None:
        super().teardown()
        self.checkpoints = self.last = self._grads = self.grad_h = None

    def _segment(self, index: int, h0, c0):
        start, stop = self.segments[index]
        p = self.problem
        return reference.forward(p.cell, p.params, p.x[start:stop], h0=h0, c0=c0)

    def forward(self) -> None:
        p = self.problem
        self.checkpoints = []
        h0 = c0 = None
        for index in range(len(self.segments)):
            self.checkpoints.append((h0, c0))
            acts = self._segment(index, h0, c0)
            h0 = acts.hs[-1].copy()
            c0 = acts.saved["cs"][-1].copy() if cell_spec(p.cell).has_cell_state else None
        self.last = acts  # the last segment's activations are still needed: keep, do not recompute

    def backward(self, per_step: bool = False) -> None:
        p = self.problem
        T, B, I, H = p.shape
        grads = {name: np.zeros_like(value) for name, value in p.params.items()}
        dx = np.empty_like(p.x)
        dh_all = np.empty((T, B, H), dtype=p.dtype) if per_step else None
        dc_all = np.empty((T, B, H), dtype=p.dtype) if per_step and cell_spec(p.cell).has_cell_state else None
        dh_after = dc_after = None
        for index in range(len(self.segments) - 1, -1, -1):
            start, stop = self.segments[index]
            acts = self.last if index == len(self.segments) - 1 else self._segment(index, *self.checkpoints[index])
            with np.errstate(over="ignore", invalid="ignore"):
                g = reference.backward(p.cell, p.params, p.x[start:stop], acts, self.grad_h[start:stop], per_step,
                                       dh_after=dh_after, dc_after=dc_after)
            for name in grads:
                grads[name] += g.params[name]
            dx[start:stop] = g.x
            if per_step:
                dh_all[start:stop] = g.h
                if dc_all is not None:
                    dc_all[start:stop] = g.c
            dh_after, dc_after = g.h0, g.c0
        states = {"h": dh_all, **({"c": dc_all} if dc_all is not None else {})} if per_step else None
        self._grads = Gradients(params=grads, x=dx, states=states)

    def outputs(self) -> Outputs:
        """Untimed: h_t (and c_t) rebuilt segment by segment from the checkpoints."""
        segments = [self._segment(i, *self.checkpoints[i]) for i in range(len(self.segments))]
        h = np.concatenate([acts.hs[1:] for acts in segments])
        has_c = cell_spec(self.problem.cell).has_cell_state
        states = {"h": h, **({"c": np.concatenate([acts.saved["cs"][1:] for acts in segments])} if has_c else {})}
        return Outputs(h=h, states=states)  # h: what the readout sees; states: every state tensor by name

    def gradients(self) -> Gradients:
        return self._grads


@hookimpl
def harness_backends():
    return [CheckpointBackend]
