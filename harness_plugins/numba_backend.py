"""The ``numba`` backend: JIT-compiled CPU loops (harness_plugins/numba_kernels.py) for rnn_tanh, lstm, gru.

Buffers are allocated once in ``setup`` and reused by every call, so the timed calls allocate
nothing and tracemalloc sees every buffer. They are feature-major, (steps, features, batch), the
layout in which BLAS runs the per-step GEMMs fastest (harness_plugins/numba_kernels.py); the core's
(steps, batch, features) arrays are transposed on the way in (x, untimed) and out (views and
copies, untimed). Memory stays at the analytic stored activations plus a few one-step buffers: backward
keeps one step's gate gradients at a time and accumulates the weight gradients step by step.
The per-step GEMMs go through the fastest engine found (``HARNESS_NUMBA_BLAS``, harness_plugins/numba_blas.py):
the tiles compiled for this CPU on one thread, unless told otherwise.
The only parallelism is the GEMMs', set from the harness's thread option (no prange around them): the tiles
run on one thread, so a run on more (``threads`` other than 1) takes a BLAS library's threaded GEMMs.
Forward and backward flush subnormal floats to zero in their thread, as TensorFlow's CPU kernels
do: a vanishing gradient in float32 turns subnormal after a few hundred steps, and x86 cores then
run every operation on it tens of times slower (LSTM at T = 1000: 1.14 s instead of 0.34 s).
Kernels are cached on disk (cache=True), so a second process loads them instead of compiling.
"""
from __future__ import annotations

import importlib.util
import os

import numpy as np

from harness import Availability, Backend, Gradients, Outputs, Problem, hookimpl
from harness.measure.denormals import denormals_flushed, flushing_available
from harness_plugins.numba_blas import BLAS_ENV, LIBRARIES, check_blas_choice, choose_blas

HARNESS_PLUGIN_API = 3


def _batch_major(buffer: np.ndarray) -> np.ndarray:
    """A (steps, features, batch) buffer as a view in the core's (steps, batch, features) layout."""
    return buffer.transpose(0, 2, 1)


class NumbaBackend(Backend):
    name = "numba"
    cells = ("rnn_tanh", "lstm", "gru")  # its kernels; any other cell is skipped with that reason
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
        try:
            check_blas_choice(os.environ.get(BLAS_ENV, "auto"))
        except ValueError as error:
            return Availability(False, str(error))
        return Availability(True)

    def __init__(self, threads: int | None = None):
        super().__init__(threads)
        import numba

        from harness_plugins import numba_kernels

        self.k = numba_kernels
        self._numba = numba
        #: the per-step GEMMs' engine (numba_blas.LIBRARIES)
        self.engine = choose_blas(os.environ.get(BLAS_ENV, "auto"), numba_kernels.FOUND, threads)
        if threads:
            numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))

    @property
    def blas(self) -> np.integer:
        """The engine's tag: the kernels' ``blas`` argument, whose type selects the engine."""
        return LIBRARIES[self.engine].tag

    def info(self) -> dict:
        return {**super().info(), "numba": self._numba.__version__, "numba_threads": self._numba.get_num_threads(),
                "numpy": np.__version__, "blas": LIBRARIES[self.engine].description,
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
        self.hidden = H
        # hx[t] = [h_{t-1}; x_t]: one step's GEMM operand for both weights, hx[0, :H] = h_0 = 0
        self.hx = e("hx", T + 1, H + I, B, zero=True)
        _batch_major(self.hx[:T, H:])[...] = problem.x
        self.w_hx = np.ascontiguousarray(np.concatenate([p["weight_hh"], p["weight_ih"]], axis=1))
        self.w_hx_t = np.ascontiguousarray(self.w_hx.T)  # [W_hh^T; W_ih^T]
        self.w_ih, self.w_hh = self.w_hx[:, H:], self.w_hx[:, :H]
        self.w_ih_t, self.w_hh_t = self.w_hx_t[H:], self.w_hx_t[:H]
        self.bias = p["bias_ih"] + p["bias_hh"]
        self.b_ih, self.b_hh = np.ascontiguousarray(p["bias_ih"]), np.ascontiguousarray(p["bias_hh"])
        # one step's buffers: gate gradients, [dL/dh_{t-1}; dL/dx_t]
        self.dgi, self.dhx = e("dgi", G, B), e("dhx", H + I, B)
        self.dw_hx = e("dw_hx", G, H + I)  # [dW_hh | dW_ih]
        self.packed = e("packed", B, H + I)  # [h_{t-1}; x_t]^T, for the tiles' weight update
        self.db_ih = e("db_ih", G, B)  # per batch column, summed at the end
        self.dx = e("dx", T, I, B)
        self.no_steps = e("no_steps", 0, 0, 0)  # the kernels' per-step outputs when they are not asked for
        self.dh_all, self.dc_all = self._buffers.get("dh_all"), self._buffers.get("dc_all")  # per-step: on request
        if problem.cell == "lstm":  # the cell state c
            self.gates = e("gates", T, G, B)
            self.cs = e("cs", T + 1, H, B, zero=True)
            self.tcs, self.dc_next, self.projected = e("tcs", T, H, B), e("dc_next", H, B), e("projected", G, B)
        if problem.cell == "gru":
            self.rz, self.ns, self.ghn = e("rz", T, 2 * H, B), e("ns", T, H, B), e("ghn", T, H, B)
            self.xp, self.gh, self.dhz = e("xp", G, B), e("gh", G, B), e("dhz", H, B)
            self.dgh, self.db_hh = e("dgh", G, B), e("db_hh", G, B)  # its recurrent side's own gradients
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
            if isinstance(value, np.ndarray):
                setattr(self, name, None)
        self._buffers: dict[str, np.ndarray] = {}

    @denormals_flushed()
    def forward(self) -> None:
        cell, k = self.problem.cell, self.k
        if cell == "rnn_tanh":
            k.rnn_forward(self.blas, self.w_hx, self.bias, self.hx)
        elif cell == "lstm":
            k.lstm_forward(self.blas, self.w_hx, self.bias, self.hx, self.gates, self.cs, self.tcs, self.projected)
        else:
            k.gru_forward(self.blas, self.w_ih, self.b_ih, self.w_hh, self.b_hh, self.hx, self.rz, self.ns, self.ghn,
                          self.xp, self.gh)

    @denormals_flushed()
    def backward(self, per_step: bool = False) -> None:
        cell, k = self.problem.cell, self.k
        if per_step and self.dh_all is None:  # per-step gradients: allocated on the first untimed request
            shape = (self.dx.shape[0], self.hidden, self.dx.shape[2])  # (T, H, B)
            self.dh_all, self.dc_all = (self._buffer(name, *shape) for name in ("dh_all", "dc_all"))
        dh_all, dc_all = (self.dh_all, self.dc_all) if per_step else (self.no_steps, self.no_steps)
        for buffer in (self.dhx, self.dw_hx, self.db_ih):
            buffer[:] = 0.0
        if cell == "rnn_tanh":
            k.rnn_backward(self.blas, self.grad_h, self.hx, self.w_hx_t, self.dgi, self.dhx, self.dw_hx, self.db_ih,
                           self.dx, dh_all, per_step, self.packed)
        elif cell == "lstm":
            self.dc_next[:] = 0.0
            k.lstm_backward(self.blas, self.grad_h, self.hx, self.gates, self.cs, self.tcs, self.w_hx_t, self.dgi,
                            self.dhx, self.dc_next, self.dw_hx, self.db_ih, self.dx, dh_all, dc_all, per_step,
                            self.packed)
        else:
            self.db_hh[:] = 0.0
            k.gru_backward(self.blas, self.grad_h, self.hx, self.rz, self.ns, self.ghn, self.w_ih_t, self.w_hh_t,
                           self.dgi, self.dgh, self.dhx[: self.hidden], self.dhz, self.dw_hx, self.db_ih, self.db_hh,
                           self.dx, dh_all, per_step, self.packed)
        self._per_step = per_step

    def outputs(self) -> Outputs:
        """Read-only views of the state buffers (valid until the next forward): training reads h_t
        every iteration, and a copy of every step would cost more than the readout itself."""
        has_c = self.problem.cell == "lstm"
        h = self.hx[1:, : self.hidden]
        return Outputs(h=_read_only(_batch_major(h)), c=_read_only(_batch_major(self.cs[1:])) if has_c else None)

    def gradients(self) -> Gradients:
        per_step, has_c, H = self._per_step, self.problem.cell == "lstm", self.hidden
        db_ih = self.db_ih.sum(axis=1)
        # rnn_tanh and LSTM: both biases have the same gradient (the kernels accumulate only db_ih)
        db_hh = self.db_hh.sum(axis=1) if self.problem.cell == "gru" else db_ih.copy()
        return Gradients(
            params={"weight_ih": self.dw_hx[:, H:].copy(), "weight_hh": self.dw_hx[:, :H].copy(), "bias_ih": db_ih,
                    "bias_hh": db_hh},
            x=_batch_major(self.dx).copy(),
            h=_batch_major(self.dh_all).copy() if per_step else None,
            c=_batch_major(self.dc_all).copy() if per_step and has_c else None,
        )


def _read_only(view: np.ndarray) -> np.ndarray:
    view.flags.writeable = False
    return view


@hookimpl
def harness_backends():
    return [NumbaBackend]
