"""The ``numba`` backend: JIT-compiled CPU loops (plugins/numba_kernels.py) for rnn_tanh, lstm, gru.

Buffers are allocated once in ``setup`` and reused by every call, so the timed calls allocate
nothing and tracemalloc sees every buffer. The only parallelism is BLAS's, set from the
harness's thread option (no prange around BLAS calls). Kernels are cached on disk (cache=True),
so a second process loads them instead of compiling.
"""
from __future__ import annotations

import importlib.util

import numpy as np

from harness import Availability, Backend, Gradients, Outputs, Problem, hookimpl
from harness.cells import cell_spec

HARNESS_PLUGIN_API = 2


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
                "numpy": np.__version__, "blas": self.k.BLAS_NAME}

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
        self.w_hh = np.asfortranarray(p["weight_hh"])  # dh_t W_hh as a transposed GEMM: ~10% faster
        self.w_hh_t = np.ascontiguousarray(p["weight_hh"].T)
        self.bias = p["bias_ih"] + p["bias_hh"]
        self.b_ih = np.ascontiguousarray(p["bias_ih"])
        self.b_hh = np.ascontiguousarray(p["bias_hh"])
        self.xp = e("xp", T, B, G)  # x W_ih^T (biases join in the kernels); LSTM overwrites it with its gates
        self.hs = e("hs", T + 1, B, H, zero=True)  # hs[0] = h_0 = 0: the kernels never write it
        # backward of rnn_tanh and gru no longer needs x W_ih^T: its gradient reuses that buffer
        self.dgi = e("dgi", T, B, G) if cell_spec(problem.cell).has_cell_state else self.xp
        self.dh_next, self.tmp, self.rec = e("dh_next", B, H), e("tmp", B, H), e("rec", B, G)
        self.grads = {"weight_ih": e("dw_ih", G, I), "weight_hh": e("dw_hh", G, H), "bias_ih": e("db_ih", G),
                      "bias_hh": e("db_hh", G)}
        self.dx = e("dx", T, B, I)
        self.dh_all, self.dc_all = self._buffers.get("dh_all"), self._buffers.get("dc_all")  # per-step: on request
        if cell_spec(problem.cell).has_cell_state:
            self.cs = e("cs", T + 1, B, H, zero=True)
            self.tcs, self.dc_next = e("tcs", T, B, H), e("dc_next", B, H)
        if problem.cell == "gru":
            self.rz, self.ns, self.ghn = e("rz", T, B, 2 * H), e("ns", T, B, H), e("ghn", T, B, H)
            self.dgh = e("dgh", T, B, G)
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

    def forward(self) -> None:
        cell, k = self.problem.cell, self.k
        np.matmul(self.x2, self.w_ih_t, out=self.xp.reshape(-1, self.xp.shape[2]))
        if cell == "rnn_tanh":
            k.rnn_forward(k.BLAS, self.xp, self.bias, self.w_hh_t, self.hs)
        elif cell == "lstm":
            k.lstm_forward(k.BLAS, self.xp, self.bias, self.w_hh_t, self.hs, self.cs, self.tcs, self.rec)
        else:
            k.gru_forward(k.BLAS, self.xp, self.b_ih, self.w_hh_t, self.b_hh, self.hs, self.rz, self.ns, self.ghn,
                          self.rec)

    def backward(self, per_step: bool = False) -> None:
        cell, k = self.problem.cell, self.k
        if per_step and self.dh_all is None:  # per-step gradients: allocated on the first untimed request
            T, B, H = self.grad_h.shape
            self.dh_all, self.dc_all = self._buffer("dh_all", T, B, H), self._buffer("dc_all", T, B, H)
        dh_all = self.dh_all if per_step else self.tmp[None]  # kernels write it only with per_step
        dc_all = self.dc_all if per_step else self.tmp[None]
        if cell == "rnn_tanh":
            k.rnn_backward(k.BLAS, self.grad_h, self.hs, self.w_hh, self.dgi, self.dh_next, dh_all, per_step)
        elif cell == "lstm":
            k.lstm_backward(k.BLAS, self.grad_h, self.xp, self.cs, self.tcs, self.w_hh, self.dgi, self.dh_next,
                            self.dc_next, dh_all, dc_all, per_step)
        else:
            k.gru_backward(k.BLAS, self.grad_h, self.hs, self.rz, self.ns, self.ghn, self.w_hh, self.dgi, self.dgh,
                           self.dh_next, self.tmp, dh_all, per_step)
        # Weight and input gradients: GEMMs over all T*B rows, after the loop.
        G, H, I = self.dgi.shape[2], self.hs.shape[2], self.x2.shape[1]
        dgi2 = self.dgi.reshape(-1, G)
        dgh2 = self.dgh.reshape(-1, G) if cell == "gru" else dgi2
        g = self.grads
        np.matmul(dgi2.T, self.x2, out=g["weight_ih"])
        np.matmul(dgh2.T, self.hs[:-1].reshape(-1, H), out=g["weight_hh"])
        np.sum(dgi2, axis=0, out=g["bias_ih"])
        np.sum(dgh2, axis=0, out=g["bias_hh"])
        np.matmul(dgi2, self.w_ih, out=self.dx.reshape(-1, I))
        self._per_step = per_step

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
