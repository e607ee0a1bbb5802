"""Numba kernels for the time loops of every cell; imported only when the numba backend is used.

Each step does one recurrent GEMM into a preallocated buffer (``gemm``, below) and ONE fused loop
over all gate nonlinearities and the state update; backward does one fused
pointwise loop and one GEMM for dh_{t-1} per step. Nothing is allocated inside the loops. The
input projection and the weight/input gradients are GEMMs the caller does per chunk. Notation and
buffers follow harness/reference.py (hs[0] = h_0 = 0, hs[t] is h_{t-1} at step t). A kernel may run
on a chunk of steps (slices of the time axis): backward kernels carry dh_next (and dc_next) from the
chunk after, so the caller zeroes them once before the last chunk.

fastmath is on except for the no-NaN/no-inf assumptions, so that explosion still yields inf.
Without SVML, LLVM cannot vectorise calls to libm's tanh/exp; in float32 the kernels therefore use
a rational tanh (Eigen's ``generic_fast_tanh_float``: max relative error 2.6e-7, 2 ulp) that
vectorises, and float64 keeps ``math.tanh`` for its 1e-12 agreement with the reference.
"""
from __future__ import annotations

import ctypes
import glob
import math
import os

import llvmlite.binding as llvm_binding
import numpy as np
from numba import njit, types
from numba.extending import overload

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


# -- BLAS ------------------------------------------------------------------------------------------
# numba's np.dot calls SciPy's BLAS; NumPy's bundled OpenBLAS is ~30% faster on the small per-step
# GEMMs here (32x128 @ 128x512: 60 us against 87 us on the reference machine). When NumPy ships its
# OpenBLAS (ILP64, symbols scipy_cblas_?gemm64_), the kernels call it through symbols registered with
# LLVM. The choice travels in the type of the ``blas`` argument (int64: NumPy's cblas; int32:
# np.dot), so each choice has its own compiled and cached signature.


def _numpy_cblas() -> dict[str, int]:
    """Addresses of NumPy's bundled cblas sgemm/dgemm, or {} where NumPy has no such library."""
    pattern = os.path.join(os.path.dirname(np.__file__), os.pardir, "numpy.libs", "libscipy_openblas64_*")
    for path in glob.glob(pattern):
        try:
            lib = ctypes.CDLL(path)
            return {kind: ctypes.cast(getattr(lib, f"scipy_cblas_{kind}gemm64_"), ctypes.c_void_p).value
                    for kind in ("s", "d")}
        except (OSError, AttributeError):
            continue
    return {}


_CBLAS = _numpy_cblas()
for _kind, _address in _CBLAS.items():
    llvm_binding.add_symbol(f"harness_cblas_{_kind}gemm", _address)
#: passed as the ``blas`` argument of every kernel
BLAS = np.int64(1) if _CBLAS else np.int32(0)
BLAS_NAME = "NumPy's OpenBLAS (cblas, ILP64)" if _CBLAS else "SciPy's BLAS through numba's np.dot"


def _cblas_gemm(kind: str, real):
    i32, i64, ptr = types.int32, types.int64, types.voidptr
    return types.ExternalFunction(f"harness_cblas_{kind}gemm",
                                  types.void(i32, i32, i32, i64, i64, i64, real, ptr, i64, ptr, i64, real, ptr, i64))


_GEMM = {32: _cblas_gemm("s", types.float32), 64: _cblas_gemm("d", types.float64)}
ROW_MAJOR, NO_TRANS, TRANS = 101, 111, 112


def gemm(blas, a, b, c):
    """c = a @ b for C-contiguous a and c and a C- or F-contiguous b."""
    np.dot(a, b, c)


@overload(gemm, jit_options=JIT_OPTIONS)
def _gemm(blas, a, b, c):
    if blas != types.int64:
        return lambda blas, a, b, c: np.dot(a, b, c)
    ext = _GEMM[a.dtype.bitwidth]
    real = np.float32 if a.dtype.bitwidth == 32 else np.float64
    one, zero = real(1), real(0)
    trans_b = TRANS if b.layout == "F" else NO_TRANS

    def impl(blas, a, b, c):
        M, K = a.shape
        N = b.shape[1]
        ldb = K if trans_b == TRANS else N
        ext(ROW_MAJOR, NO_TRANS, trans_b, M, N, K, one, a.ctypes, K, b.ctypes, ldb, zero, c.ctypes, N)

    return impl


# Inner loops run over one batch row at a time through 1-D row views, and each loop touches few
# arrays: LLVM vectorises such loops (its runtime alias checks stay cheap), the fused 3-D form not.


@jit
def rnn_forward(blas, xp, bias, w_hh_t, hs):
    """xp (T, B, H) holds x W_ih^T; bias is b_ih + b_hh (added here, in the fused loop)."""
    T, B, H = xp.shape
    for t in range(T):
        gemm(blas, hs[t], w_hh_t, hs[t + 1])
        for b in range(B):
            h, x = hs[t + 1, b], xp[t, b]
            for j in range(H):
                h[j] = tanh(h[j] + x[j] + bias[j])


@jit
def rnn_backward(blas, grad_h, hs, w_hh, dgi, dh_next, dh_all, per_step):
    T, B, H = grad_h.shape
    one_ = one(grad_h)
    for t in range(T - 1, -1, -1):
        for b in range(B):
            up, nxt, h, da = grad_h[t, b], dh_next[b], hs[t + 1, b], dgi[t, b]
            for j in range(H):
                nxt[j] += up[j]
            if per_step:
                dh_all[t, b] = nxt
            for j in range(H):
                da[j] = nxt[j] * (one_ - h[j] * h[j])
        gemm(blas, dgi[t], w_hh, dh_next)


@jit
def lstm_forward(blas, gates, bias, act, w_hh_t, hs, cs, tcs, rec):
    """gates (T, B, 4H) holds x W_ih^T on entry, the activated i, f, g, o on exit; bias = b_ih + b_hh.

    One loop activates all four gates: act is 1/2 on the sigmoid gates and 1 on the tanh gate, and
    a tanh(a x) + 1 - a is sigmoid(x) (as ``sigmoid`` computes it) or tanh(x) exactly; three loops
    over the gate blocks were twice as slow (LLVM vectorised only some of them)."""
    T, B, G = gates.shape
    H = G // 4
    one_ = one(gates)
    for t in range(T):
        gemm(blas, hs[t], w_hh_t, rec)
        for b in range(B):
            g, r = gates[t, b], rec[b]
            for j in range(G):
                a = act[j]
                g[j] = a * tanh(a * (g[j] + r[j] + bias[j])) + (one_ - a)
            i, f, gg, o = g[:H], g[H:2 * H], g[2 * H:3 * H], g[3 * H:]
            c_prev, c, tc, h = cs[t, b], cs[t + 1, b], tcs[t, b], hs[t + 1, b]
            for j in range(H):
                c[j] = f[j] * c_prev[j] + i[j] * gg[j]
                tc[j] = tanh(c[j])
                h[j] = o[j] * tc[j]


@jit
def lstm_backward(blas, grad_h, gates, cs, tcs, w_hh, dgi, dh_next, dc_next, dh_all, dc_all, per_step):
    T, B, H = grad_h.shape
    one_ = one(grad_h)
    for t in range(T - 1, -1, -1):
        for b in range(B):
            g, tc, c_prev, da = gates[t, b], tcs[t, b], cs[t, b], dgi[t, b]
            i, f, gg, o = g[:H], g[H:2 * H], g[2 * H:3 * H], g[3 * H:]
            di, df, dg, do = da[:H], da[H:2 * H], da[2 * H:3 * H], da[3 * H:]
            dh, dc, up = dh_next[b], dc_next[b], grad_h[t, b]
            for j in range(H):
                dh[j] += up[j]
            for j in range(H):
                dc[j] += dh[j] * o[j] * (one_ - tc[j] * tc[j])
            if per_step:
                dh_all[t, b] = dh
                dc_all[t, b] = dc
            # one output per loop: a loop writing all four gate gradients was not vectorised
            for j in range(H):
                di[j] = dc[j] * gg[j] * i[j] * (one_ - i[j])
            for j in range(H):
                df[j] = dc[j] * c_prev[j] * f[j] * (one_ - f[j])
            for j in range(H):
                dg[j] = dc[j] * i[j] * (one_ - gg[j] * gg[j])
            for j in range(H):
                do[j] = dh[j] * tc[j] * o[j] * (one_ - o[j])
            for j in range(H):
                dc[j] *= f[j]
        gemm(blas, dgi[t], w_hh, dh_next)


@jit
def gru_forward(blas, xp, b_ih, w_hh_t, b_hh, hs, rz, ns, ghn, gh):
    """xp (T, B, 3H) holds x W_ih^T; b_hh stays in the recurrent part (b_hn inside r * (...))."""
    T, B, G = xp.shape
    H = G // 3
    for t in range(T):
        gemm(blas, hs[t], w_hh_t, gh)
        for b in range(B):
            x, g, s = xp[t, b], gh[b], rz[t, b]
            for j in range(2 * H):
                s[j] = sigmoid(x[j] + b_ih[j] + g[j] + b_hh[j])
            hn, n, h, h_prev = ghn[t, b], ns[t, b], hs[t + 1, b], hs[t, b]
            for j in range(H):
                hn[j] = g[2 * H + j] + b_hh[2 * H + j]
            for j in range(H):
                n[j] = tanh(x[2 * H + j] + b_ih[2 * H + j] + s[j] * hn[j])
            for j in range(H):
                h[j] = n[j] + s[H + j] * (h_prev[j] - n[j])


@jit
def gru_backward(blas, grad_h, hs, rz, ns, ghn, w_hh, dgi, dgh, dh_next, dhz, dh_all, per_step):
    T, B, H = grad_h.shape
    one_ = one(grad_h)
    for t in range(T - 1, -1, -1):
        for b in range(B):
            s, n, hn, h_prev = rz[t, b], ns[t, b], ghn[t, b], hs[t, b]
            dh, up, di, dr, keep = dh_next[b], grad_h[t, b], dgi[t, b], dgh[t, b], dhz[b]
            for j in range(H):
                dh[j] += up[j]
            if per_step:
                dh_all[t, b] = dh
            for j in range(H):
                r, z = s[j], s[H + j]
                dan = dh[j] * (one_ - z) * (one_ - n[j] * n[j])
                dar = dan * hn[j] * r * (one_ - r)
                daz = dh[j] * (h_prev[j] - n[j]) * z * (one_ - z)
                di[j] = dar
                di[H + j] = daz
                di[2 * H + j] = dan
                dr[j] = dar
                dr[H + j] = daz
                dr[2 * H + j] = dan * r
                keep[j] = dh[j] * z
        gemm(blas, dgh[t], w_hh, dh_next)
        dh_next += dhz


KERNELS = (rnn_forward, rnn_backward, lstm_forward, lstm_backward, gru_forward, gru_backward)
