"""The numba backend's GEMM tiles (harness_plugins/numba_tiles.py) against NumPy's matmul in float64:
every edge a tile has (rows fewer than MR, columns that end inside a vector, no inner dimension),
blocks of larger buffers (row strides, offsets), and nothing written outside the block."""
import numpy as np
import pytest

pytest.importorskip("numba")

from harness_plugins import numba_kernels  # noqa: E402
from harness_plugins.numba_blas import LIBRARIES  # noqa: E402
from harness_plugins.numba_tiles import MR  # noqa: E402

TILES = LIBRARIES["tiles"].tag
LANES = {"float32": numba_kernels._TILE_LANES[32], "float64": numba_kernels._TILE_LANES[64]}
TOL = {"float64": 1e-12, "float32": 1e-5}  # relative to the sum of |terms| of each element


@numba_kernels.jit
def _set(blas, a, b, c):
    numba_kernels.gemm(blas, a, b, c)


@numba_kernels.jit
def _add_nt(blas, a, b, c):
    numba_kernels.gemm_add_nt(blas, a, b, c, np.empty((b.shape[1], b.shape[0]), b.dtype))


def _block(rng, rows, cols, dtype, margin=3):
    """A (rows, cols) block in the middle of a larger buffer (so its row stride exceeds its width),
    and the buffer, filled with NaN outside the block."""
    buffer = np.full((rows + 2 * margin, cols + 2 * margin + 5), np.nan, dtype=dtype)
    block = buffer[margin: margin + rows, margin: margin + cols]
    block[...] = rng.standard_normal((rows, cols))
    return block, buffer


def _shapes(dtype):
    lanes = LANES[dtype]
    ms = sorted({1, MR - 1, MR, MR + 1, 2 * MR + 1})
    ns = sorted({1, lanes - 1, lanes, lanes + 1, 2 * lanes, 2 * lanes + 3, 5 * lanes - 2})
    return [(m, n, k) for m in ms for n in ns for k in (0, 1, 7)]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("product", ["c = a @ b", "c += a @ b.T"])
def test_tiles_compute_each_product_on_every_edge_and_write_only_the_block(product, dtype):
    """``gemm`` (forward's and backward's products) and ``gemm_add_nt`` (a weight gradient's step,
    with b packed transposed first)."""
    rng = np.random.default_rng(0)
    accumulate = product == "c += a @ b.T"
    for m, n, k in _shapes(dtype):
        a, _ = _block(rng, m, k, dtype)
        b, _ = _block(rng, *((n, k) if accumulate else (k, n)), dtype)
        c, c_buffer = _block(rng, m, n, dtype)
        before = c.astype(np.float64) if accumulate else np.zeros((m, n))
        op_b, outside = (b.T if accumulate else b).astype(np.float64), np.isnan(c_buffer)
        (_add_nt if accumulate else _set)(TILES, a, b, c)
        expected = before + a.astype(np.float64) @ op_b
        scale = np.abs(before) + np.abs(a).astype(np.float64) @ np.abs(op_b) + np.finfo(np.float64).tiny
        assert np.all(np.abs(c - expected) <= TOL[dtype] * scale), (m, n, k)
        assert np.isnan(c_buffer[outside]).all(), f"written outside the block at m={m}, n={n}, k={k}"

