"""Numba kernels for the time loops of every cell; imported only when the numba backend is used.

Buffers are feature-major, (steps, features, batch): each step's state is a contiguous
(features, batch) matrix and every GEMM takes a weight matrix on the left, ``a_t = W h_{t-1}``.
OpenBLAS computes these small products with both operands untransposed 25-30% faster than the
batch-major ``h_{t-1} W^T`` (32x128 @ 128x512 and 32x512 @ 512x128: 33 and 38 us against 47 and 54
us with its SkylakeX kernels; 50-60 us against 67-71 us with its Haswell ones). ``hx[t]`` stacks
h_{t-1} (rows :H) over x_t (rows H:), so that rnn_tanh and LSTM compute W_hh h_{t-1} + W_ih x_t as
one GEMM with [W_hh | W_ih], and in backward dL/dh_{t-1} and dL/dx_t as one with its transpose.
hx[0, :H] = h_0 = 0.

Forward does per step its GEMM(s) into preallocated buffers (``gemm``, below) and fused loops over
the gate nonlinearities and the state update. Backward does per step the pointwise loops, then every
GEMM that step's gate gradients feed (``propagate``): so only one step's gate gradients exist at a
time, and the weight gradients are accumulated in place (``gemm_add_nt``). Nothing is allocated
inside the loops (but for the copies of the np.dot fallback and the three small arrays that hold the
by-reference arguments of a Fortran BLAS call); the tiles pack [h_{t-1}; x_t] transposed for the
weight update into a buffer of the backend's (``packed``). The upstream gradient keeps the core's
(steps, batch, features) layout and is added to the feature-major dL/dh_t step by step.

fastmath is on except for the no-NaN/no-inf assumptions, so that explosion still yields inf.
Without SVML, LLVM cannot vectorise calls to libm's tanh/exp; in float32 the kernels therefore use
a rational tanh (Eigen's ``generic_fast_tanh_float``: max relative error 2.6e-7, 2 ulp) that
vectorises, and float64 keeps ``math.tanh`` for its 1e-12 agreement with the reference.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit, types
from numba.extending import overload

from harness_plugins.numba_blas import register_gemms
from harness_plugins.numba_tiles import MR, VECTORS, register_tiles, symbol

FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}
# error_model="numpy": IEEE division (x/0 = inf) instead of Python's ZeroDivisionError check,
# which both keeps explosion a result and lets LLVM vectorise loops that divide.
JIT_OPTIONS = {"fastmath": FASTMATH, "error_model": "numpy"}
jit = njit(cache=True, nogil=True, **JIT_OPTIONS)


def _is_float32(x) -> bool:
    return isinstance(x, types.Float) and x.bitwidth == 32


def tanh(x):
    """tanh, specialised by type at compile time (see the module docstring)."""
    return math.tanh(x)


def sigmoid(x):
    """The logistic function as (1 + tanh(x/2)) / 2: no overflow, and the same tanh as above."""
    return 0.5 * math.tanh(0.5 * x) + 0.5


def one(a):
    """1 in the dtype of array ``a``: a float64 literal would widen float32 loops to float64."""
    return a.dtype.type(1)


@overload(one, jit_options=JIT_OPTIONS)
def _one(a):
    value = np.float32(1) if _is_float32(a.dtype) else 1.0
    return lambda a: value


@overload(tanh, jit_options=JIT_OPTIONS)
def _tanh(x):
    if not _is_float32(x):
        return lambda x: math.tanh(x)
    f = np.float32
    alpha = [f(v) for v in (-2.76076847742355e-16, 2.00018790482477e-13, -8.60467152213735e-11,
                            5.12229709037114e-08, 1.48572235717979e-05, 6.37261928875436e-04,
                            4.89352455891786e-03)]
    a13, a11, a9, a7, a5, a3, a1 = alpha
    b6, b4, b2, b0 = (f(1.19825839466702e-06), f(1.18534705686654e-04), f(2.26843463243900e-03),
                      f(4.89352518554385e-03))
    clamp = f(7.90531110763549805)  # tanh rounds to +-1 in float32 beyond this

    def fast_tanh(x):
        y = min(max(x, -clamp), clamp)
        y2 = y * y
        p = ((((((a13 * y2 + a11) * y2 + a9) * y2 + a7) * y2 + a5) * y2 + a3) * y2 + a1) * y
        q = ((b6 * y2 + b4) * y2 + b2) * y2 + b0
        return p / q

    return fast_tanh


@overload(sigmoid, jit_options=JIT_OPTIONS)
def _sigmoid(x):
    half = np.float32(0.5) if _is_float32(x) else 0.5
    return lambda x: half * tanh(half * x) + half


# -- GEMM engines ----------------------------------------------------------------------------------
# Which engine the per-step GEMMs call, and why: harness_plugins/numba_blas.py. The backend chooses
# it and passes its tag as the ``blas`` argument of every kernel; the tag's type selects the overload.

#: the engines found here, fastest first, their GEMMs registered with LLVM
FOUND = register_gemms()

_KINDS = {32: ("s", types.float32, np.float32), 64: ("d", types.float64, np.float64)}  # by bit width
_CBLAS = {bits: types.ExternalFunction(f"harness_openblas_{k}gemm", types.void(
    types.int32, types.int32, types.int32, types.int64, types.int64, types.int64, real, types.voidptr, types.int64,
    types.voidptr, types.int64, real, types.voidptr, types.int64)) for bits, (k, real, _) in _KINDS.items()}
_FORTRAN = {bits: types.ExternalFunction(f"harness_mkl_{k}gemm", types.void(*[types.voidptr] * 13))
            for bits, (k, _, _) in _KINDS.items()}
ROW_MAJOR, NO_TRANS, TRANS = 101, 111, 112
#: columns of one tile vector, by bit width: the tiles are registered with LLVM when this module loads
_TILE_LANES = {bits: register_tiles()[k] for bits, (k, _, _) in _KINDS.items()}
#: the tiles of one and two vectors (numba_tiles.VECTORS), by bit width
_TILES = {bits: tuple(types.ExternalFunction(symbol(k, vectors), types.void(*[types.int64] * 10))
                      for vectors in VECTORS) for bits, (k, _, _) in _KINDS.items()}


def gemm(blas, a, b, c):
    """c = a @ b, for matrices whose rows are contiguous (any row stride: a block of a buffer's rows)."""
    c[:, :] = np.dot(a, b)


def gemm_add_nt(blas, a, b, c, packed):
    """c += a @ b.T, likewise: a weight gradient accumulated one step at a time. ``packed``, a
    (b.shape[1], b.shape[0]) buffer with contiguous rows, holds b.T where the engine reads it so
    (the tiles); the BLAS libraries leave it alone."""
    c += np.dot(a, b.T)


@jit
def _leading(x, columns):
    """A matrix's row stride in elements, as BLAS wants it (at least its column count)."""
    return max(x.strides[0] // x.itemsize, columns)


def _cblas(trans_b: bool, beta: float):
    """The cblas implementation of ``c = a @ op(b) + beta c``, for an overload's types."""

    def typed(blas, a, b, c):
        ext, real = _CBLAS[a.dtype.bitwidth], _KINDS[a.dtype.bitwidth][2]
        one, beta_, op_b = real(1), real(beta), TRANS if trans_b else NO_TRANS

        def impl(blas, a, b, c):
            M, K = a.shape
            N = c.shape[1]
            ext(ROW_MAJOR, NO_TRANS, op_b, M, N, K, one, a.ctypes, _leading(a, K), b.ctypes,
                _leading(b, b.shape[1]), beta_, c.ctypes, _leading(c, N))

        return impl

    return typed


def _fortran(trans_b: bool, beta: float):
    """The Fortran-BLAS implementation of ``c = a @ op(b) + beta c``: column-major, so it computes
    c^T = op(b)^T a^T, with every argument passed by reference."""

    def typed(blas, a, b, c):
        ext, real = _FORTRAN[a.dtype.bitwidth], _KINDS[a.dtype.bitwidth][2]
        op_b = ord("T") if trans_b else ord("N")

        def impl(blas, a, b, c):
            M, K = a.shape
            N = c.shape[1]
            ops = np.array([op_b, ord("N")], dtype=np.uint8)
            ints = np.array([N, M, K, _leading(b, b.shape[1]), _leading(a, K), _leading(c, N)], dtype=np.int32)
            scalars = np.array([1, beta], dtype=real)
            ext(ops[0:].ctypes, ops[1:].ctypes, ints[0:].ctypes, ints[1:].ctypes, ints[2:].ctypes,
                scalars[0:].ctypes, b.ctypes, ints[3:].ctypes, a.ctypes, ints[4:].ctypes, scalars[1:].ctypes,
                c.ctypes, ints[5:].ctypes)

        return impl

    return typed


def _tiled(trans_b: bool, beta: float):
    """The tiles' implementation of ``c = a @ op(b) + beta c`` (harness_plugins/numba_tiles.py): row blocks
    of MR rows by column blocks of two vectors, the last ones narrower. ``op(b) = b.T`` is packed first
    into the caller's buffer (a few thousand elements per step: the tiles read B's rows as vectors).
    The buffer is the caller's, not allocated per call: where the allocator put a fresh one decided
    whether LSTM's backward ran at 60 or 100 ms (T = 500), one placement for a whole measurement."""

    def typed(blas, a, b, c, packed=None):
        narrow, wide = _TILES[a.dtype.bitwidth]
        lanes, keep = _TILE_LANES[a.dtype.bitwidth], int(beta != 0)

        @njit(**JIT_OPTIONS)
        def tiles(a, b, c):
            M, K = a.shape
            N = c.shape[1]
            s = a.itemsize
            lda, ldb, ldc = _leading(a, K), _leading(b, N), _leading(c, N)
            pa, pb, pc = a.ctypes.data, b.ctypes.data, c.ctypes.data
            for j in range(0, N, 2 * lanes):
                n = min(N - j, 2 * lanes)
                for i in range(0, M, MR):
                    m = min(MR, M - i)
                    if n > lanes:
                        wide(K, pa + i * lda * s, lda, pb + j * s, ldb, pc + (i * ldc + j) * s, ldc, m, n, keep)
                    else:
                        narrow(K, pa + i * lda * s, lda, pb + j * s, ldb, pc + (i * ldc + j) * s, ldc, m, n, keep)

        if trans_b:
            def impl(blas, a, b, c, packed):
                packed[:, :] = b.T
                tiles(a, packed, c)
        else:
            def impl(blas, a, b, c):
                tiles(a, b, c)
        return impl

    return typed


@jit
def _dot(a, b):
    """a @ b through np.dot (SciPy's BLAS), which takes contiguous operands only: copies."""
    return np.dot(np.ascontiguousarray(a), np.ascontiguousarray(b))


def _set_np_dot(blas, a, b, c):
    c[:, :] = _dot(a, b)


def _add_nt_np_dot(blas, a, b, c):
    c += _dot(a, b.T)


def _engine(blas, trans_b: bool, beta: float, np_dot):
    """The implementation of ``c = a @ op(b) + beta c`` (blas, a, b, c) that the type of ``blas`` names."""
    if blas == types.uint64:
        return _fortran(trans_b, beta)
    if blas == types.int64:
        return _cblas(trans_b, beta)
    return lambda blas, a, b, c: np_dot


@overload(gemm, jit_options=JIT_OPTIONS)
def _gemm(blas, a, b, c):
    if blas == types.uint32:
        return _tiled(False, 0.0)(blas, a, b, c)
    return _engine(blas, False, 0.0, _set_np_dot)(blas, a, b, c)


@overload(gemm_add_nt, jit_options=JIT_OPTIONS)
def _gemm_add_nt(blas, a, b, c, packed):
    if blas == types.uint32:
        return _tiled(True, 1.0)(blas, a, b, c)
    library = njit(**JIT_OPTIONS)(_engine(blas, True, 1.0, _add_nt_np_dot)(blas, a, b, c))
    return lambda blas, a, b, c, packed: library(blas, a, b, c)


@jit
def add_transposed(rows, up):
    """rows[j, b] += up[b, j]: one step of the core's (batch, features) upstream gradient added to a
    feature-major (features, batch) matrix."""
    for b in range(up.shape[0]):
        for j in range(up.shape[1]):
            rows[j, b] += up[b, j]


@jit
def propagate(blas, da, hx, w_hx_t, dw_hx, db, dx, dhx, packed):
    """Everything one step's pre-activation gradients ``da`` feed, where both projections share them
    (rnn_tanh, LSTM): [dW_hh | dW_ih] += da [h_{t-1}; x_t]^T in one GEMM, the bias gradient (per
    batch column, summed at the end), and [dh_prev; dx_t] = [W_hh^T; W_ih^T] da in another, whose
    first H rows are the recurrent part of dL/dh_{t-1}. ``packed``: (B, H + I), for gemm_add_nt."""
    H = hx.shape[0] - dx.shape[0]
    gemm_add_nt(blas, da, hx, dw_hx, packed)
    db += da
    gemm(blas, w_hx_t, da, dhx)
    dx[:, :] = dhx[H:]


@jit
def propagate_apart(blas, dgi, dgh, hx, w_ih_t, w_hh_t, dw_hx, db_ih, db_hh, dx, dh_prev, packed):
    """``propagate`` for GRU, whose two projections get different gradients: dgi those of
    W_ih x_t + b_ih, dgh those of W_hh h_{t-1} + b_hh. Four GEMMs: dW_ih += dgi x_t^T,
    dW_hh += dgh h_{t-1}^T (into the blocks of dw_hx), dx_t = W_ih^T dgi, dh_prev = W_hh^T dgh."""
    H = hx.shape[0] - dx.shape[0]
    I = dx.shape[0]
    gemm_add_nt(blas, dgi, hx[H:], dw_hx[:, H:], packed[:, :I])
    gemm_add_nt(blas, dgh, hx[:H], dw_hx[:, :H], packed[:, :H])
    db_ih += dgi
    db_hh += dgh
    gemm(blas, w_ih_t, dgi, dx)
    gemm(blas, w_hh_t, dgh, dh_prev)


# The loops index each step's (features, batch) matrices directly, innermost over the batch, and
# each loop writes one array: LLVM vectorises them. A 1-D view per feature row cost more than the
# arithmetic (numba reference-counts every view: LSTM's backward loops took 4 x as long).


@jit
def rnn_forward(blas, w_hx, bias, hx):
    """hx[t] = [h_{t-1}; x_t] (see the module docstring); bias = b_ih + b_hh."""
    H = w_hx.shape[0]
    for t in range(hx.shape[0] - 1):
        h = hx[t + 1, :H]
        gemm(blas, w_hx, hx[t], h)
        for j in range(H):
            for b in range(h.shape[1]):
                h[j, b] = tanh(h[j, b] + bias[j])


@jit
def rnn_backward(blas, grad_h, hx, w_hx_t, da, dhx, dw_hx, db, dx, dh_all, per_step, packed):
    H, B = da.shape
    one_ = one(hx)
    dh = dhx[:H]
    for t in range(grad_h.shape[0] - 1, -1, -1):
        add_transposed(dh, grad_h[t])
        if per_step:
            dh_all[t] = dh
        h = hx[t + 1]
        for j in range(H):
            for b in range(B):
                da[j, b] = dh[j, b] * (one_ - h[j, b] * h[j, b])
        propagate(blas, da, hx[t], w_hx_t, dw_hx, db, dx[t], dhx, packed)


@jit
def lstm_forward(blas, w_hx, bias, hx, gates, cs, tcs, projected):
    """gates[t] gets the activated i, f, g, o that backward needs, from W_ih x_t + W_hh h_{t-1} + bias
    (bias = b_ih + b_hh), which the GEMM writes into ``projected``: one step's (4H, B) buffer that stays
    in cache. One loop then activates the four gates of a unit and updates its state, a pass over the
    gate values fewer than activating them first (forward 48-52 against 53-59 us a step, H 128, B 32,
    T 500, three alternating rounds outside the harness)."""
    T, G, B = gates.shape
    H = G // 4
    for t in range(T):
        g, p, c_prev, c, tc, h = gates[t], projected, cs[t], cs[t + 1], tcs[t], hx[t + 1]
        gemm(blas, w_hx, hx[t], p)
        for j in range(H):
            bi, bf, bg, bo = bias[j], bias[H + j], bias[2 * H + j], bias[3 * H + j]
            for b in range(B):
                i = sigmoid(p[j, b] + bi)
                f = sigmoid(p[H + j, b] + bf)
                gg = tanh(p[2 * H + j, b] + bg)
                o = sigmoid(p[3 * H + j, b] + bo)
                g[j, b] = i
                g[H + j, b] = f
                g[2 * H + j, b] = gg
                g[3 * H + j, b] = o
                cq = f * c_prev[j, b] + i * gg
                c[j, b] = cq
                tq = tanh(cq)
                tc[j, b] = tq
                h[j, b] = o * tq


@jit
def lstm_backward(blas, grad_h, hx, gates, cs, tcs, w_hx_t, dgi, dhx, dc, dw_hx, db, dx, dh_all, dc_all, per_step,
                  packed):
    """dc carries dL/dc_t from one step to the one before, as dhx[:H] carries dL/dh_t."""
    H, B = dc.shape
    one_ = one(hx)
    dh = dhx[:H]
    for t in range(grad_h.shape[0] - 1, -1, -1):
        add_transposed(dh, grad_h[t])
        g, tc, c_prev = gates[t], tcs[t], cs[t]
        for j in range(H):
            for b in range(B):
                dc[j, b] += dh[j, b] * g[3 * H + j, b] * (one_ - tc[j, b] * tc[j, b])
        if per_step:
            dh_all[t] = dh
            dc_all[t] = dc
        for j in range(H):
            for b in range(B):
                i = g[j, b]
                dgi[j, b] = dc[j, b] * g[2 * H + j, b] * i * (one_ - i)
            for b in range(B):
                f = g[H + j, b]
                dgi[H + j, b] = dc[j, b] * c_prev[j, b] * f * (one_ - f)
            for b in range(B):
                gg = g[2 * H + j, b]
                dgi[2 * H + j, b] = dc[j, b] * g[j, b] * (one_ - gg * gg)
            for b in range(B):
                o = g[3 * H + j, b]
                dgi[3 * H + j, b] = dh[j, b] * tc[j, b] * o * (one_ - o)
            for b in range(B):
                dc[j, b] *= g[H + j, b]
        propagate(blas, dgi, hx[t], w_hx_t, dw_hx, db, dx[t], dhx, packed)


@jit
def gru_forward(blas, w_ih, b_ih, w_hh, b_hh, hx, rz, ns, ghn, xp, gh):
    """xp and gh hold one step's W_ih x_t and W_hh h_{t-1}: apart, as b_hn and the recurrent part of the
    n gate enter as r * (W_hn h + b_hn)."""
    T, H, B = ns.shape
    for t in range(T):
        gemm(blas, w_ih, hx[t, H:], xp)
        gemm(blas, w_hh, hx[t, :H], gh)
        s, hn, n, h_prev, h = rz[t], ghn[t], ns[t], hx[t], hx[t + 1]
        for j in range(2 * H):
            bj = b_ih[j] + b_hh[j]
            for b in range(B):
                s[j, b] = sigmoid(xp[j, b] + gh[j, b] + bj)
        for j in range(H):
            b_in, b_hn = b_ih[2 * H + j], b_hh[2 * H + j]
            for b in range(B):
                hn[j, b] = gh[2 * H + j, b] + b_hn
            for b in range(B):
                n[j, b] = tanh(xp[2 * H + j, b] + b_in + s[j, b] * hn[j, b])
            for b in range(B):
                h[j, b] = n[j, b] + s[H + j, b] * (h_prev[j, b] - n[j, b])


@jit
def gru_backward(blas, grad_h, hx, rz, ns, ghn, w_ih_t, w_hh_t, dgi, dgh, dh, dhz, dw_hx, db_ih, db_hh, dx, dh_all,
                 per_step, packed):
    """dgi gets the gate gradients of W_ih x_t + b_ih, dgh those of W_hh h_{t-1} + b_hh (n's times r);
    dh carries dL/dh_t from one step to the one before."""
    T, H, B = ns.shape
    one_ = one(hx)
    for t in range(T - 1, -1, -1):
        add_transposed(dh, grad_h[t])
        if per_step:
            dh_all[t] = dh
        s, n, hn, h_prev = rz[t], ns[t], ghn[t], hx[t]
        for j in range(H):
            for b in range(B):
                z, nn = s[H + j, b], n[j, b]
                dgi[2 * H + j, b] = dh[j, b] * (one_ - z) * (one_ - nn * nn)  # dL/da_n
            for b in range(B):
                r = s[j, b]
                dgi[j, b] = dgi[2 * H + j, b] * hn[j, b] * r * (one_ - r)  # dL/da_r
            for b in range(B):
                z = s[H + j, b]
                dgi[H + j, b] = dh[j, b] * (h_prev[j, b] - n[j, b]) * z * (one_ - z)  # dL/da_z
            for b in range(B):
                dgh[j, b] = dgi[j, b]
            for b in range(B):
                dgh[H + j, b] = dgi[H + j, b]
            for b in range(B):
                dgh[2 * H + j, b] = dgi[2 * H + j, b] * s[j, b]
            for b in range(B):
                dhz[j, b] = dh[j, b] * s[H + j, b]
        propagate_apart(blas, dgi, dgh, hx[t], w_ih_t, w_hh_t, dw_hx, db_ih, db_hh, dx[t], dh, packed)
        dh += dhz


KERNELS = (rnn_forward, rnn_backward, lstm_forward, lstm_backward, gru_forward, gru_backward)
