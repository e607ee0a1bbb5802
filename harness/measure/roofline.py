"""Roofline: the analytic FLOPs of a recurrent layer and the machine's measured GEMM peak.

FLOPs count the GEMMs only (formulas in docs/metrics.md): a step of a cell with k gate blocks does
the input and recurrent products of forward, 2 B kH (I + H), and backward twice that (dL/dx and dW_ih,
dL/dh_{t-1} and dW_hh). The pointwise work is O(B H) per step, under 1% of the GEMMs at H >= 64.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from harness.cells import cell_spec

PROBE_SIZE = 1024  # n of the n^3 GEMM probe: large enough for a BLAS to reach its peak
PROBE_REPEATS = 5


@dataclass(frozen=True)
class Flops:
    """GEMM floating-point operations of one forward and of one backward pass."""

    forward: float
    backward: float

    @property
    def forward_backward(self) -> float:
        return self.forward + self.backward


def layer_flops(cell: str, steps: int, batch: int, inputs: int, hidden: int) -> Flops:
    """FLOPs of ``steps`` steps of ``cell`` on a (batch, inputs) input with ``hidden`` units."""
    forward = steps * 2.0 * batch * cell_spec(cell).gates * hidden * (inputs + hidden)
    return Flops(forward=forward, backward=2.0 * forward)


def cpu_gemm_peak(threads: int, dtypes: tuple[str, ...] = ("float32", "float64")) -> dict[str, float]:
    """GFLOP/s of NumPy's BLAS on an n^3 GEMM with ``threads`` threads, per dtype: the best of a few
    (the run's reference peak on this machine; a GPU backend reports its own)."""
    from threadpoolctl import threadpool_limits

    peak = {}
    with threadpool_limits(limits=threads):
        for dtype in dtypes:
            rng = np.random.default_rng(0)
            a, b = (rng.standard_normal((PROBE_SIZE, PROBE_SIZE)).astype(dtype) for _ in range(2))
            a @ b  # warm-up: thread pool start, page faults
            best = min(_seconds(lambda: a @ b) for _ in range(PROBE_REPEATS))
            peak[dtype] = 2 * PROBE_SIZE**3 / best / 1e9
    return peak


def _seconds(call) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start
