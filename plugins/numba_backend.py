"""The ``numba`` backend: JIT-compiled CPU loops (plugins/numba_kernels.py) for rnn_tanh, lstm, gru.

Buffers are allocated once in ``setup`` and reused by every call, so the timed calls allocate
nothing and tracemalloc sees every buffer. Memory stays near the analytic stored activations: what
is needed only for a while (rnn_tanh's and GRU's input projection x W_ih^T, every cell's gate
gradients) lives in buffers of ``CHUNK`` steps, and the weight-gradient GEMMs run per chunk of steps.
The only parallelism is BLAS's, set from the harness's thread option (no prange around BLAS calls).
Forward and backward flush subnormal floats to zero in their thread, as TensorFlow's CPU kernels
do: a vanishing gradient in float32 turns subnormal after a few hundred steps, and x86 cores then
run every operation on it tens of times slower (LSTM at T = 1000: 1.14 s instead of 0.34 s).
Kernels are cached on disk (cache=True), so a second process loads them instead of compiling.
"""
from __future__ import annotations

import importlib.util
import time

import numpy as np

from harness import Availability, Backend, Gradients, Outputs, Problem, hookimpl
from harness.cells import cell_spec
from harness.measure.denormals import denormals_flushed, flushing_available

HARNESS_PLUGIN_API = 2
#: Steps per chunk of the input projection and of the gate gradients: at T >= 500 a chunk buffer adds
#: under 5% to the stored activations, and its GEMMs (CHUNK * B rows) stay large enough for BLAS.
CHUNK = 32


#: (rows of a, shape and dtype of b) -> the layout of b in which BLAS computes a @ b faster, in this process
_FASTER_LAYOUT: dict[tuple, str] = {}


def faster_layout(rows: int, b: np.ndarray, calls: int = 10, rounds: int = 5) -> np.ndarray:
    """``b`` laid out (C or F order) as BLAS multiplies ``a @ b`` fastest for an ``a`` of ``rows`` rows.

    The per-step GEMMs' better layout depends on the BLAS build and the CPU (the plain product was
    1.4-1.6 x faster than the transposed one on an AVX-512 Xeon with OpenBLAS's SkylakeX kernels, the
    transposed one ~10% faster on a host with its Haswell kernels), so it is timed, once per shape and
    process (so that a process's results stay deterministic), with the candidates interleaved.
    """
    key = (rows, b.shape, b.dtype.str)
    if key not in _FASTER_LAYOUT:
        candidates = {order: np.asarray(b, order=order) for order in "CF"}
        a, out = np.ones((rows, b.shape[0]), b.dtype), np.empty((rows, b.shape[1]), b.dtype)
        best = dict.fromkeys(candidates, float("inf"))
        for _ in range(rounds):
            for order, candidate in candidates.items():
                started = time.perf_counter()
                for _ in range(calls):
                    np.matmul(a, candidate, out=out)
                best[order] = min(best[order], time.perf_counter() - started)
        _FASTER_LAYOUT[key] = min(best, key=best.get)
    return np.asarray(b, order=_FASTER_LAYOUT[key])


class NumbaBackend(Backend):
    name = "numba"
    cells = ("rnn_tanh", "lstm", "gru")
    description = "Numba-JIT time loops: one recurrent GEMM + one fused pointwise loop per step"
    compiles = True

    @classmethod
    def compile_cache_env(cls, directory: str) -> dict[str, str]:
        return {"NUMBA_CACHE_DIR": directory}

    @classmethod
    def availability(cls) -> Availability:
        for module, why in (("numba", "numba is not installed"), ("scipy", "scipy is not installed "
                                                                          "(numba's np.dot needs its BLAS)")):
            if importlib.util.find_spec(module) is None:
                return Availability(False, f"{why} (pip install 'rnn-grad-harness[numba]')")
        return Availability(True)

    def __init__(self, threads: int | None = None):
        super().__init__(threads)
        import numba

        from harness_plugins import numba_kernels

        self.k = numba_kernels
        self._numba = numba
        if threads:
            numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))

    def info(self) -> dict:
        return {**super().info(), "numba": self._numba.__version__, "numba_threads": self._numba.get_num_threads(),
                "numpy": np.__version__, "blas": self.k.BLAS_NAME,
                "denormals": "flushed to zero in forward and backward (FTZ, DAZ)" if flushing_available() else "kept"}

    def compile_stats(self) -> dict:
        """Cache hits and misses per kernel signature in this process (misses mean compilation)."""
        hits = sum(sum(k.stats.cache_hits.values()) for k in self.k.KERNELS)
        misses = sum(sum(k.stats.cache_misses.values()) for k in self.k.KERNELS)
        return {"cache_hits": hits, "cache_misses": misses}

    def setup(self, problem: Problem) -> None:
        p = problem.params
        T, B, I, H = problem.shape
        G = p["weight_hh"].shape[0]
        e = self._buffer
        self.x2 = np.ascontiguousarray(problem.x.reshape(T * B, I))
        self.w_ih = np.ascontiguousarray(p["weight_ih"])
        self.w_ih_t = np.ascontiguousarray(p["weight_ih"].T)
        self.w_hh = faster_layout(B, p["weight_hh"])  # the per-step GEMMs' right-hand sides
        self.w_hh_t = faster_layout(B, p["weight_hh"].T)
        self.bias = p["bias_ih"] + p["bias_hh"]
        self.act = np.ones(G, dtype=problem.dtype)  # lstm_forward: 1/2 on the sigmoid gates i, f, o
        self.act[: 2 * H] = self.act[3 * H:] = 0.5
        self.b_ih = np.ascontiguousarray(p["bias_ih"])
        self.b_hh = np.ascontiguousarray(p["bias_hh"])
        lstm = cell_spec(problem.cell).has_cell_state
        C = min(CHUNK, T)
        # x W_ih^T (biases join in the kernels): per chunk, except LSTM's, which becomes its stored gates
        self.xp = e("xp", T if lstm else C, B, G)
        self.hs = e("hs", T + 1, B, H, zero=True)  # hs[0] = h_0 = 0: the kernels never write it
        # backward of rnn_tanh and gru no longer needs x W_ih^T: its gate gradients reuse that buffer
        self.dgi = e("dgi", C, B, G) if lstm else self.xp
        self.dh_next, self.tmp, self.rec = e("dh_next", B, H), e("tmp", B, H), e("rec", B, G)
        self.grads = {"weight_ih": e("dw_ih", G, I), "weight_hh": e("dw_hh", G, H), "bias_ih": e("db_ih", G),
                      "bias_hh": e("db_hh", G)}
        self.chunk_grads = {"weight_ih": e("cw_ih", G, I), "weight_hh": e("cw_hh", G, H), "bias": e("cb", G)}
        self.dx = e("dx", T, B, I)
        self.dh_all, self.dc_all = self._buffers.get("dh_all"), self._buffers.get("dc_all")  # per-step: on request
        if cell_spec(problem.cell).has_cell_state:
            self.cs = e("cs", T + 1, B, H, zero=True)
            self.tcs, self.dc_next = e("tcs", T, B, H), e("dc_next", B, H)
        if problem.cell == "gru":
            self.rz, self.ns, self.ghn = e("rz", T, B, 2 * H), e("ns", T, B, H), e("ghn", T, B, H)
            self.dgh = e("dgh", C, B, G)
        self._per_step = False

    def _buffer(self, name: str, *shape: int, zero: bool = False) -> np.ndarray:
        """Work buffer ``name``: the previous problem's where ``prepare`` kept it (a problem of the
        same cell, shapes and dtype: every training iteration), else a new one."""
        old = self._buffers.get(name)
        if old is None or old.shape != shape or old.dtype != self.problem.dtype:
            old = self._buffers[name] = (np.zeros if zero else np.empty)(shape, dtype=self.problem.dtype)
        return old

    def set_upstream(self, grad_h: np.ndarray) -> None:
        self.grad_h = np.ascontiguousarray(grad_h)

    def teardown(self) -> None:
        super().teardown()
        for name, value in list(vars(self).items()):
            if isinstance(value, np.ndarray) or name == "grads":
                setattr(self, name, None)
        self._buffers: dict[str, np.ndarray] = {}

    def _chunks(self) -> list[tuple[int, int]]:
        """(t0, t1) of each chunk of steps, in time order."""
        T, C = self.hs.shape[0] - 1, self.dgi.shape[0]
        return [(t0, min(t0 + C, T)) for t0 in range(0, T, C)]

    @denormals_flushed()
    def forward(self) -> None:
        cell, k = self.problem.cell, self.k
        B, G = self.xp.shape[1:]
        if cell == "lstm":  # the whole projection: the kernel turns it into the gates backward needs
            np.matmul(self.x2, self.w_ih_t, out=self.xp.reshape(-1, G))
            k.lstm_forward(k.BLAS, self.xp, self.bias, self.act, self.w_hh_t, self.hs, self.cs, self.tcs, self.rec)
            return
        for t0, t1 in self._chunks():
            xp, hs = self.xp[: t1 - t0], self.hs[t0:t1 + 1]
            np.matmul(self.x2[t0 * B:t1 * B], self.w_ih_t, out=xp.reshape(-1, G))
            if cell == "rnn_tanh":
                k.rnn_forward(k.BLAS, xp, self.bias, self.w_hh_t, hs)
            else:
                k.gru_forward(k.BLAS, xp, self.b_ih, self.w_hh_t, self.b_hh, hs, self.rz[t0:t1], self.ns[t0:t1],
                              self.ghn[t0:t1], self.rec)

    @denormals_flushed()
    def backward(self, per_step: bool = False) -> None:
        cell, k = self.problem.cell, self.k
        if per_step and self.dh_all is None:  # per-step gradients: allocated on the first untimed request
            T, B, H = self.grad_h.shape
            self.dh_all, self.dc_all = self._buffer("dh_all", T, B, H), self._buffer("dc_all", T, B, H)
        self.dh_next[:] = 0.0  # the kernels carry them from one chunk to the one before
        if cell == "lstm":
            self.dc_next[:] = 0.0
        for g in self.grads.values():
            g[:] = 0.0
        for t0, t1 in reversed(self._chunks()):
            n, s = t1 - t0, slice(t0, t1)
            dh_all = self.dh_all[s] if per_step else self.tmp[None]  # kernels write it only with per_step
            dgi = self.dgi[:n]
            if cell == "rnn_tanh":
                k.rnn_backward(k.BLAS, self.grad_h[s], self.hs[t0:t1 + 1], self.w_hh, dgi, self.dh_next, dh_all,
                               per_step)
            elif cell == "lstm":
                dc_all = self.dc_all[s] if per_step else self.tmp[None]
                k.lstm_backward(k.BLAS, self.grad_h[s], self.xp[s], self.cs[t0:t1 + 1], self.tcs[s], self.w_hh, dgi,
                                self.dh_next, self.dc_next, dh_all, dc_all, per_step)
            else:
                k.gru_backward(k.BLAS, self.grad_h[s], self.hs[t0:t1 + 1], self.rz[s], self.ns[s], self.ghn[s],
                               self.w_hh, dgi, self.dgh[:n], self.dh_next, self.tmp, dh_all, per_step)
            self._weight_gradients(t0, t1, dgi, self.dgh[:n] if cell == "gru" else dgi)
        self._per_step = per_step

    def _weight_gradients(self, t0: int, t1: int, dgi: np.ndarray, dgh: np.ndarray) -> None:
        """Add one chunk's share of the weight and bias gradients; write its steps' dL/dx."""
        B, G = dgi.shape[1:]
        H, I = self.hs.shape[2], self.x2.shape[1]
        dgi2, dgh2 = dgi.reshape(-1, G), dgh.reshape(-1, G)
        g, c = self.grads, self.chunk_grads
        np.add(g["weight_ih"], np.matmul(dgi2.T, self.x2[t0 * B:t1 * B], out=c["weight_ih"]), out=g["weight_ih"])
        np.add(g["weight_hh"], np.matmul(dgh2.T, self.hs[t0:t1].reshape(-1, H), out=c["weight_hh"]),
               out=g["weight_hh"])
        np.add(g["bias_ih"], np.sum(dgi2, axis=0, out=c["bias"]), out=g["bias_ih"])
        if dgh is not dgi:  # rnn_tanh and LSTM: both biases have the same gradient
            np.sum(dgh2, axis=0, out=c["bias"])
        np.add(g["bias_hh"], c["bias"], out=g["bias_hh"])
        np.matmul(dgi2, self.w_ih, out=self.dx[t0:t1].reshape(-1, I))

    def outputs(self) -> Outputs:
        """Read-only views of the state buffers (valid until the next forward): training reads h_t
        every iteration, and a copy of every step would cost more than the readout itself."""
        has_c = cell_spec(self.problem.cell).has_cell_state
        return Outputs(h=_read_only(self.hs[1:]), c=_read_only(self.cs[1:]) if has_c else None)

    def gradients(self) -> Gradients:
        per_step, has_c = self._per_step, cell_spec(self.problem.cell).has_cell_state
        return Gradients(
            params={n: v.copy() for n, v in self.grads.items()},
            x=self.dx.copy(),
            h=self.dh_all.copy() if per_step else None,
            c=self.dc_all.copy() if per_step and has_c else None,
        )


def _read_only(view: np.ndarray) -> np.ndarray:
    view.flags.writeable = False
    return view


@hookimpl
def harness_backends():
    return [NumbaBackend]
