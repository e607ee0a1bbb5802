"""Roofline: the analytic FLOPs of a recurrent layer, and the GEMM engines measured under the roof.

FLOPs count the GEMMs only (formulas in docs/metrics.md): the cell says what one forward step costs
(:meth:`harness.cell.Cell.flops_per_step`: a classic cell with k gate blocks does the input and
recurrent products, 2 B kH (I + H)), and backward costs twice that (dL/dx and dW_ih, dL/dh_{t-1} and
dW_hh). The pointwise work is O(B H) per step, under 1% of the GEMMs at H >= 64.
"""
from __future__ import annotations

import ctypes
import importlib.util
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from harness.cell import Cell, as_cell
from harness.measure.blas import LETTERS, THREAD_ENV, mkl_gemms

GEMM_SIZE = 1024  # n of the n^3 product each GEMM engine is timed on: large enough to reach its best rate
GEMM_REPEATS = 5


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


def gemm_engines(threads: int, dtypes: tuple[str, ...] = ("float32", "float64")) -> dict[str, dict[str, float]]:
    """GFLOP/s per dtype of each GEMM engine present, on ``threads`` threads: NumPy's BLAS (in this
    process, with threadpoolctl), and in a child process started with ``threads`` in its environment
    (MKL reads its thread count there, once) MKL's ?gemm_ where torch's libtorch_cpu holds it,
    ``torch.mm`` and oneDNN's inner product through torch (float32). They are lines under the roof
    (measure/roof.py), never the roof: oneDNN's fused RNNs reach more than NumPy's BLAS does."""
    engines = {f"numpy ({_numpy_blas()})": numpy_gemm(threads, dtypes)}
    if importlib.util.find_spec("torch") is None:
        return engines
    env = {**os.environ, **{name: str(threads) for name in THREAD_ENV}}
    try:
        child = subprocess.run([sys.executable, "-m", __name__, *dtypes], env=env, capture_output=True, text=True,
                               timeout=300)
        return {**engines, **(json.loads(child.stdout) if child.returncode == 0 else {})}
    except (OSError, subprocess.TimeoutExpired, json.JSONDecodeError):  # the engines there go unreported
        return engines


def numpy_gemm(threads: int, dtypes: tuple[str, ...]) -> dict[str, float]:
    """GFLOP/s of NumPy's matmul on an n^3 GEMM, its thread pool limited with threadpoolctl."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=threads):
        return {dtype: _best_gflops(lambda a, b, c: np.matmul(a, b, out=c), dtype) for dtype in dtypes}


def _numpy_blas() -> str:
    """The BLAS library NumPy calls, as threadpoolctl names it (openblas, mkl, ...)."""
    from threadpoolctl import threadpool_info

    return next((pool["internal_api"] for pool in threadpool_info() if pool["user_api"] == "blas"), "unknown BLAS")


def _child_engines(dtypes: tuple[str, ...]) -> dict[str, dict[str, float]]:
    """MKL's, torch.mm's and oneDNN's GFLOP/s in this process (the child of :func:`gemm_engines`)."""
    import torch

    engines: dict[str, dict[str, float]] = {}
    mkl = {dtype: _best_gflops(gemm, dtype) for dtype in dtypes if (gemm := mkl_gemm(dtype)) is not None}
    if mkl:
        engines["mkl"] = mkl
    engines["torch.mm"] = {dtype: _best_gflops(lambda a, b, c: torch.mm(torch.from_numpy(a), torch.from_numpy(b),
                                                                        out=torch.from_numpy(c)), dtype)
                           for dtype in dtypes}
    if torch.backends.mkldnn.is_available() and "float32" in dtypes:
        def onednn(a, b, c):
            torch._C._nn.mkldnn_linear(a, b, None)  # x W^T in oneDNN's layout: the same FLOPs as a @ b

        engines["onednn"] = {"float32": _best_gflops(onednn, "float32", lambda x: torch.from_numpy(x).to_mkldnn())}
    return engines


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


def _best_gflops(gemm: Callable[[Any, Any, Any], object], dtype: str,
                 convert: Callable[[np.ndarray], Any] = lambda x: x) -> float:
    """GFLOP/s of the fastest of a few ``gemm(a, b, c)`` (c = a @ b) on n x n matrices (``convert``:
    from NumPy's arrays to the engine's own)."""
    rng = np.random.default_rng(0)
    a, b = (convert(rng.standard_normal((GEMM_SIZE, GEMM_SIZE)).astype(dtype)) for _ in range(2))
    c = np.empty((GEMM_SIZE, GEMM_SIZE), dtype)
    gemm(a, b, c)  # warm-up: thread pool start, page faults
    best = float("inf")
    for _ in range(GEMM_REPEATS):
        start = time.perf_counter()
        gemm(a, b, c)
        best = min(best, time.perf_counter() - start)
    return 2 * GEMM_SIZE**3 / best / 1e9


if __name__ == "__main__":  # the child of gemm_engines: python -m harness.measure.roofline DTYPE...
    print(json.dumps(_child_engines(tuple(sys.argv[1:]))))
