"""Roofline: the analytic FLOPs of a recurrent layer and the machine's measured GEMM peak.

FLOPs count the GEMMs only (formulas in docs/metrics.md): the cell says what one forward step costs
(:meth:`harness.cell.Cell.flops_per_step`: a classic cell with k gate blocks does the input and
recurrent products, 2 B kH (I + H)), and backward costs twice that (dL/dx and dW_ih, dL/dh_{t-1} and
dW_hh). The pointwise work is O(B H) per step, under 1% of the GEMMs at H >= 64.
"""
from __future__ import annotations

import ctypes
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from harness.cell import Cell, as_cell
from harness.measure.blas import LETTERS, THREAD_ENV, mkl_gemms, torch_mkl_paths

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


def layer_flops(cell: Cell | type[Cell], steps: int, batch: int, inputs: int, hidden: int) -> Flops:
    """FLOPs of ``steps`` steps of ``cell`` (a :class:`~harness.cell.Cell`) on a (batch, inputs) input
    with ``hidden`` units: its :meth:`~harness.cell.Cell.flops_per_step`, and backward twice forward."""
    forward = steps * float(as_cell(cell).flops_per_step(batch, inputs, hidden))
    return Flops(forward=forward, backward=2.0 * forward)


def cpu_gemm_peak(threads: int, dtypes: tuple[str, ...] = ("float32", "float64")) -> dict[str, float]:
    """This machine's CPU GEMM peak in GFLOP/s per dtype on ``threads`` threads: the best of NumPy's
    BLAS and of MKL where torch's libtorch_cpu holds it (the numba backend's GEMMs run on it, and
    NumPy's OpenBLAS may be held to older kernels: a peak below what a backend reaches would put it
    above 100%). A GPU backend reports its own."""
    peak = numpy_gemm_peak(threads, dtypes)
    for dtype, value in mkl_gemm_peak(threads, dtypes).items():
        peak[dtype] = max(peak[dtype], value)
    return peak


def numpy_gemm_peak(threads: int, dtypes: tuple[str, ...]) -> dict[str, float]:
    """GFLOP/s of NumPy's matmul on an n^3 GEMM, its thread pool limited with threadpoolctl."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=threads):
        return {dtype: _best_gflops(lambda a, b, c: np.matmul(a, b, out=c), dtype) for dtype in dtypes}


def mkl_gemm_peak(threads: int, dtypes: tuple[str, ...]) -> dict[str, float]:
    """GFLOP/s of MKL's ?gemm_ on an n^3 GEMM, measured in a child process started with ``threads``
    in its environment (MKL reads its thread count there, once); {} where there is no MKL to load or
    the child fails (NumPy's peak then stands alone)."""
    if not any(os.path.exists(path) for path in torch_mkl_paths()):
        return {}
    env = {**os.environ, **{name: str(threads) for name in THREAD_ENV}}
    try:
        child = subprocess.run([sys.executable, "-m", __name__, *dtypes], env=env, capture_output=True, text=True,
                               timeout=120)
        return json.loads(child.stdout) if child.returncode == 0 else {}
    except (OSError, subprocess.TimeoutExpired, json.JSONDecodeError):
        return {}


def _mkl_gemm_peak(dtypes: tuple[str, ...]) -> dict[str, float]:
    """MKL's GFLOP/s in this process (the child of :func:`mkl_gemm_peak`)."""
    gemms = {dtype: mkl_gemm(dtype) for dtype in dtypes}
    return {dtype: _best_gflops(gemm, dtype) for dtype, gemm in gemms.items() if gemm is not None}


def mkl_gemm(dtype: str) -> Callable[[np.ndarray, np.ndarray, np.ndarray], None] | None:
    """c = a @ b for square C-contiguous matrices through MKL's Fortran ?gemm_ (None without MKL).
    Fortran is column-major, so it computes c^T = b^T a^T, with every argument by reference."""
    address = mkl_gemms().get(LETTERS[dtype])
    if address is None:
        return None
    fortran = ctypes.CFUNCTYPE(None, *[ctypes.c_void_p] * 13)(address)
    real = np.ctypeslib.as_ctypes_type(np.dtype(dtype))

    def gemm(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> None:
        op, n, one, zero = ctypes.c_char(b"N"), ctypes.c_int(len(a)), real(1), real(0)
        at = ctypes.addressof
        fortran(at(op), at(op), at(n), at(n), at(n), at(one), b.ctypes.data, at(n), a.ctypes.data, at(n), at(zero),
                c.ctypes.data, at(n))

    return gemm


def _best_gflops(gemm: Callable[[np.ndarray, np.ndarray, np.ndarray], object], dtype: str) -> float:
    """GFLOP/s of the fastest of a few ``gemm(a, b, c)`` (c = a @ b) on n x n matrices."""
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((PROBE_SIZE, PROBE_SIZE)).astype(dtype) for _ in range(2))
    c = np.empty_like(a)
    gemm(a, b, c)  # warm-up: thread pool start, page faults
    best = float("inf")
    for _ in range(PROBE_REPEATS):
        start = time.perf_counter()
        gemm(a, b, c)
        best = min(best, time.perf_counter() - start)
    return 2 * PROBE_SIZE**3 / best / 1e9


if __name__ == "__main__":  # the child of mkl_gemm_peak: python -m harness.measure.roofline DTYPE...
    print(json.dumps(_mkl_gemm_peak(tuple(sys.argv[1:]))))
