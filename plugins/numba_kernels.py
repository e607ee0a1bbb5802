"""Numba kernels for the time loops of every cell; imported only when the numba backend is used.

Each step does one recurrent GEMM into a preallocated buffer (``np.dot(a, b, out)``, SciPy's BLAS)
and ONE fused loop over all gate nonlinearities and the state update; backward does one fused
pointwise loop and one GEMM for dh_{t-1} per step. Nothing is allocated inside the loops. The
input projection and the weight/input gradients are large GEMMs done by the caller. Notation and
buffers follow harness/reference.py (hs[0] = h_0 = 0, hs[t] is h_{t-1} at step t).

fastmath is on except for the no-NaN/no-inf assumptions, so that explosion still yields inf.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}
jit = njit(cache=True, fastmath=FASTMATH, nogil=True)


@jit
def _sigmoid(a):
    return 0.5 * math.tanh(0.5 * a) + 0.5


@jit
def rnn_forward(xp, w_hh_t, hs):
    """xp (T, B, H) holds x W_ih^T + b_ih + b_hh."""
    T, B, H = xp.shape
    for t in range(T):
        h = hs[t + 1]
        np.dot(hs[t], w_hh_t, h)
        for b in range(B):
            for j in range(H):
                h[b, j] = math.tanh(h[b, j] + xp[t, b, j])


@jit
def rnn_backward(grad_h, hs, w_hh, dgi, dh_next, dh_all, per_step):
    T, B, H = grad_h.shape
    dh_next[:] = 0.0
    for t in range(T - 1, -1, -1):
        for b in range(B):
            for j in range(H):
                dh = grad_h[t, b, j] + dh_next[b, j]
                if per_step:
                    dh_all[t, b, j] = dh
                h = hs[t + 1, b, j]
                dgi[t, b, j] = dh * (1.0 - h * h)
        np.dot(dgi[t], w_hh, dh_next)


@jit
def lstm_forward(gates, w_hh_t, hs, cs, tcs, rec):
    """gates (T, B, 4H) holds x W_ih^T + b_ih + b_hh on entry, the activated i, f, g, o on exit."""
    T, B, G = gates.shape
    H = G // 4
    for t in range(T):
        np.dot(hs[t], w_hh_t, rec)
        for b in range(B):
            for j in range(H):
                i = _sigmoid(gates[t, b, j] + rec[b, j])
                f = _sigmoid(gates[t, b, H + j] + rec[b, H + j])
                g = math.tanh(gates[t, b, 2 * H + j] + rec[b, 2 * H + j])
                o = _sigmoid(gates[t, b, 3 * H + j] + rec[b, 3 * H + j])
                gates[t, b, j] = i
                gates[t, b, H + j] = f
                gates[t, b, 2 * H + j] = g
                gates[t, b, 3 * H + j] = o
                c = f * cs[t, b, j] + i * g
                cs[t + 1, b, j] = c
                tc = math.tanh(c)
                tcs[t, b, j] = tc
                hs[t + 1, b, j] = o * tc


@jit
def lstm_backward(grad_h, gates, cs, tcs, w_hh, dgi, dh_next, dc_next, dh_all, dc_all, per_step):
    T, B, H = grad_h.shape
    dh_next[:] = 0.0
    dc_next[:] = 0.0
    for t in range(T - 1, -1, -1):
        for b in range(B):
            for j in range(H):
                i = gates[t, b, j]
                f = gates[t, b, H + j]
                g = gates[t, b, 2 * H + j]
                o = gates[t, b, 3 * H + j]
                tc = tcs[t, b, j]
                dh = grad_h[t, b, j] + dh_next[b, j]
                dc = dh * o * (1.0 - tc * tc) + dc_next[b, j]
                if per_step:
                    dh_all[t, b, j] = dh
                    dc_all[t, b, j] = dc
                dgi[t, b, j] = dc * g * i * (1.0 - i)
                dgi[t, b, H + j] = dc * cs[t, b, j] * f * (1.0 - f)
                dgi[t, b, 2 * H + j] = dc * i * (1.0 - g * g)
                dgi[t, b, 3 * H + j] = dh * tc * o * (1.0 - o)
                dc_next[b, j] = dc * f
        np.dot(dgi[t], w_hh, dh_next)


@jit
def gru_forward(xp, w_hh_t, b_hh, hs, rz, ns, ghn, gh):
    """xp (T, B, 3H) holds x W_ih^T + b_ih; b_hh stays in the recurrent part (b_hn inside r * (...))."""
    T, B, G = xp.shape
    H = G // 3
    for t in range(T):
        np.dot(hs[t], w_hh_t, gh)
        for b in range(B):
            for j in range(H):
                r = _sigmoid(xp[t, b, j] + gh[b, j] + b_hh[j])
                z = _sigmoid(xp[t, b, H + j] + gh[b, H + j] + b_hh[H + j])
                hn = gh[b, 2 * H + j] + b_hh[2 * H + j]
                n = math.tanh(xp[t, b, 2 * H + j] + r * hn)
                rz[t, b, j] = r
                rz[t, b, H + j] = z
                ns[t, b, j] = n
                ghn[t, b, j] = hn
                hs[t + 1, b, j] = n + z * (hs[t, b, j] - n)


@jit
def gru_backward(grad_h, hs, rz, ns, ghn, w_hh, dgi, dgh, dh_next, dhz, dh_all, per_step):
    T, B, H = grad_h.shape
    dh_next[:] = 0.0
    for t in range(T - 1, -1, -1):
        for b in range(B):
            for j in range(H):
                r = rz[t, b, j]
                z = rz[t, b, H + j]
                n = ns[t, b, j]
                dh = grad_h[t, b, j] + dh_next[b, j]
                if per_step:
                    dh_all[t, b, j] = dh
                dan = dh * (1.0 - z) * (1.0 - n * n)
                dar = dan * ghn[t, b, j] * r * (1.0 - r)
                daz = dh * (hs[t, b, j] - n) * z * (1.0 - z)
                dgi[t, b, j] = dar
                dgi[t, b, H + j] = daz
                dgi[t, b, 2 * H + j] = dan
                dgh[t, b, j] = dar
                dgh[t, b, H + j] = daz
                dgh[t, b, 2 * H + j] = dan * r
                dhz[b, j] = dh * z
        np.dot(dgh[t], w_hh, dh_next)
        for b in range(B):
            for j in range(H):
                dh_next[b, j] += dhz[b, j]


KERNELS = (rnn_forward, rnn_backward, lstm_forward, lstm_backward, gru_forward, gru_backward)
