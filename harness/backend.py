"""The backend contract: one recurrent layer, forward and backward through time.

A backend implements only the recurrent layer; tasks, readout, loss, metrics, timing and
recording belong to the core, so that every backend is measured the same way. Lifecycle (the
core calls these in order; only ``forward`` and ``backward`` are ever timed)::

    backend = MyBackend(threads=1)      # in the worker process; may import torch/numba here
    backend.prepare(problem)            # core-only, untimed: checks, teardown, then your setup(problem)
    backend.forward()                   # timed: all hidden states h_1..h_T (and c_t)
    backend.upstream(grad_h)            # core-only, untimed: checks, then your set_upstream(grad_h)
    backend.backward()                  # timed: parameter gradients and dL/dx only
    backend.backward(per_step=True)     # untimed use: also the total dL/dh_t (and dL/dc_t)
    backend.outputs(); backend.gradients()   # untimed: results as NumPy arrays
    backend.teardown()                  # drop every buffer
"""
from __future__ import annotations

import abc
import functools
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from harness.cells import DTYPES, PARAM_NAMES, Params, cell_spec, param_shapes
from harness.errors import BackendError, HarnessError
from harness.measure.memory import MemoryMeter, TracemallocMeter
from harness.measure.timing import Clock, WallClock


@dataclass(frozen=True)
class Availability:
    """Whether a backend can run here, and if not, why (shown by ``harness plugins``)."""

    available: bool
    reason: str = ""

    def __bool__(self) -> bool:
        return self.available


@dataclass(frozen=True)
class Problem:
    """One forward/backward problem, in NumPy arrays of one dtype.

    ``x`` is time-major (T, B, I); ``grad_h``, when known in advance (benchmarks), is the upstream
    gradient dL/dh_t of the loss with respect to each hidden state as seen by the readout (T, B, H);
    training hands it over after forward instead (:meth:`Backend.upstream`). h_0 = c_0 = 0.
    """

    cell: str
    params: Params
    x: np.ndarray
    grad_h: np.ndarray | None = None

    def __post_init__(self):
        cell_spec(self.cell)  # an unknown cell names the valid ones
        if self.x.ndim != 3:
            raise HarnessError(f"x must be (T, B, I), got shape {self.x.shape}")
        seq_len, batch, input_size = self.x.shape
        missing = set(PARAM_NAMES) - set(self.params)
        if missing:
            raise HarnessError(f"missing parameters {sorted(missing)}; a cell has {', '.join(PARAM_NAMES)}")
        hidden = self.params["weight_hh"].shape[-1]
        if self.grad_h is not None:
            check_upstream(self.grad_h, (seq_len, batch, hidden), self.dtype)
        expected = param_shapes(self.cell, input_size, hidden)
        for name in PARAM_NAMES:
            got = self.params[name].shape
            if got != expected[name]:
                raise HarnessError(f"{name} must have shape {expected[name]} for {self.cell}, got {got}")
        arrays = (self.x, *self.params.values()) + (() if self.grad_h is None else (self.grad_h,))
        dtypes = {str(a.dtype) for a in arrays}
        if len(dtypes) != 1 or next(iter(dtypes)) not in DTYPES:
            raise HarnessError(f"all arrays must share one dtype of {', '.join(DTYPES)}; got {sorted(dtypes)}")

    @functools.cached_property
    def dtype(self) -> str:
        return str(self.x.dtype)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """(T, B, I, H)."""
        return (*self.x.shape, self.params["weight_hh"].shape[1])


def _layout(problem: Problem) -> tuple:
    """What decides a problem's buffers: cell, shapes, dtype."""
    return (problem.cell, problem.x.shape, problem.params["weight_hh"].shape, problem.dtype)


def check_upstream(grad_h: np.ndarray, shape: tuple[int, int, int], dtype: str) -> None:
    """An upstream gradient must be (T, B, H) in the problem's dtype."""
    if grad_h.shape != shape:
        raise HarnessError(f"grad_h must have shape {shape} (T, B, H), got {grad_h.shape}")
    if str(grad_h.dtype) != dtype:
        raise HarnessError(f"all arrays must share one dtype of {', '.join(DTYPES)}; got "
                           f"{sorted({dtype, str(grad_h.dtype)})}")


def check_gradients(problem: Problem, grads: Gradients, per_step: bool) -> tuple[str, ...]:
    """Validate what a backend's backward returned against the problem: every array present, of
    the right shape and dtype (else :class:`BackendError`, naming it). Returns the names of the
    tensors that hold NaN or inf (a result to report, not an error)."""
    T, B, I, H = problem.shape
    expected = {f"dL/d{name}": shape for name, shape in param_shapes(problem.cell, I, H).items()}
    got = {f"dL/d{name}": grads.params.get(name) for name in PARAM_NAMES}
    expected["dL/dx"], got["dL/dx"] = (T, B, I), grads.x
    if per_step:
        expected["dL/dh_t"], got["dL/dh_t"] = (T, B, H), grads.h
        if cell_spec(problem.cell).has_cell_state:
            expected["dL/dc_t"], got["dL/dc_t"] = (T, B, H), grads.c
    nonfinite = []
    for name, shape in expected.items():
        value = got[name]
        if value is None:
            raise BackendError(f"the backend returned no {name} (expected shape {shape})")
        value = np.asarray(value)
        if value.shape != shape:
            raise BackendError(f"the backend returned {name} of shape {value.shape}, expected {shape} for "
                               f"T, B, I, H = {problem.shape}")
        if str(value.dtype) != problem.dtype:
            raise BackendError(f"the backend returned {name} in {value.dtype}, expected {problem.dtype}")
        if not np.isfinite(value).all():
            nonfinite.append(name)
    return tuple(nonfinite)


@dataclass
class Outputs:
    h: np.ndarray  # (T, B, H): h_1 .. h_T
    c: np.ndarray | None = None  # (T, B, H) for LSTM


@dataclass
class Gradients:
    params: Params  # dL/d(weight_ih, weight_hh, bias_ih, bias_hh)
    x: np.ndarray  # (T, B, I)
    h: np.ndarray | None = None  # total dL/dh_t (T, B, H), only from backward(per_step=True)
    c: np.ndarray | None = None  # total dL/dc_t (T, B, H) for LSTM, only with per_step
    h0: np.ndarray | None = None  # dL/dh_0 (B, H), where a backend offers it (the reference does)
    c0: np.ndarray | None = None  # dL/dc_0 (B, H) for LSTM


class Backend(abc.ABC):
    """Base class of every backend. Subclass it, set the class attributes, implement the methods.

    Class attributes: ``name`` (unique, e.g. ``"numpy"``), ``cells`` and ``dtypes`` supported.
    The abstract methods must be implemented (a backend missing one cannot be instantiated);
    :meth:`prepare` and :meth:`upstream` belong to the core and cannot be overridden: put device
    work in :meth:`setup` and :meth:`set_upstream`.
    """

    #: Core-only methods and the hook a backend overrides instead.
    _CORE_METHODS = {"prepare": "setup(problem)", "upstream": "set_upstream(grad_h)"}

    name: ClassVar[str]
    cells: ClassVar[tuple[str, ...]]
    dtypes: ClassVar[tuple[str, ...]] = DTYPES
    description: ClassVar[str] = ""
    #: Whether the first call compiles (JIT): then `harness run` measures its compile time apart,
    #: cold and warm, in fresh workers (docs/metrics.md, "Compile time").
    compiles: ClassVar[bool] = False
    #: Dask worker resources a point of this backend needs (``{"GPU": 1}``): on a cluster its points
    #: go only to workers started with them (docs/cluster.md).
    resources: ClassVar[dict[str, float]] = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        for method, hook in Backend._CORE_METHODS.items():
            if method in vars(cls):
                raise TypeError(f"{cls.__qualname__} overrides {method}(), which belongs to the core; "
                                f"override {hook} instead")

    def __init__(self, threads: int | None = None):
        self.threads = threads
        self.problem: Problem | None = None

    # -- identity -------------------------------------------------------------------------------
    @classmethod
    def availability(cls) -> Availability:
        """Whether this backend can run here. Override to check packages or devices, cheaply."""
        return Availability(True)

    @classmethod
    def supports(cls, cell: str, dtype: str) -> Availability:
        if cell not in cls.cells:
            return Availability(False, f"backend {cls.name!r} does not support cell {cell!r}; "
                                       f"supported cells: {', '.join(cls.cells)}")
        if dtype not in cls.dtypes:
            return Availability(False, f"backend {cls.name!r} does not support dtype {dtype!r}; "
                                       f"supported dtypes: {', '.join(cls.dtypes)}")
        return Availability(True)

    @classmethod
    def compile_cache_env(cls, directory: str) -> dict[str, str]:
        """Environment variables that point this backend's compilation cache at ``directory``, so
        that the harness can measure a cold cache (an empty directory) and a warm one."""
        return {}

    def info(self) -> dict[str, object]:
        """Provenance of this backend: library versions, device, thread counts."""
        return {"threads": self.threads}

    # -- lifecycle ------------------------------------------------------------------------------
    def prepare(self, problem: Problem) -> None:
        """Check that the problem is supported, drop the previous one, hand it to :meth:`setup`
        (and its upstream gradient, when it carries one, to :meth:`set_upstream`).

        The previous problem's buffers are dropped (:meth:`teardown`) unless the new problem has the
        same cell, shapes and dtype: then :meth:`setup` may reuse them, as every training iteration
        does. A memory measurement calls :meth:`teardown` itself first."""
        support = self.supports(problem.cell, problem.dtype)
        if not support:
            raise HarnessError(support.reason)
        if self.problem is None or _layout(self.problem) != _layout(problem):
            self.teardown()
        self.problem = problem
        self.setup(problem)
        if problem.grad_h is not None:
            self.set_upstream(problem.grad_h)

    def upstream(self, grad_h: np.ndarray) -> None:
        """Hand the upstream gradient dL/dh_t (T, B, H) of the prepared problem to the backend, for
        the next :meth:`backward`: training computes it from forward's outputs. Untimed."""
        p = self.problem
        check_upstream(grad_h, p.x.shape[:2] + (p.shape[3],), p.dtype)
        self.set_upstream(grad_h)

    @abc.abstractmethod
    def setup(self, problem: Problem) -> None:
        """Move the problem's arrays (not its upstream gradient) to the device and allocate buffers.
        Untimed."""

    @abc.abstractmethod
    def set_upstream(self, grad_h: np.ndarray) -> None:
        """Move the upstream gradient dL/dh_t (T, B, H) to the device for the backward passes that
        follow; called after :meth:`setup`, before or after :meth:`forward`. Untimed."""

    @abc.abstractmethod
    def forward(self) -> None:
        """Compute h_1..h_T (and c_t), keeping what backward needs. Timed."""

    @abc.abstractmethod
    def backward(self, per_step: bool = False) -> None:
        """Backpropagate the upstream gradient (:meth:`set_upstream`) through time after :meth:`forward`.

        Always computes the parameter gradients and dL/dx. With ``per_step`` it also keeps the
        total gradient dL/dh_t at every step (the one flowing through the recurrence plus the
        direct part), and dL/dc_t for LSTM. The timed call passes ``per_step=False``.
        """

    def teardown(self) -> None:
        """Drop every array that ``prepare``, ``forward`` and ``backward`` keep (before a memory
        measurement, which counts from ``prepare`` on). Override when the backend keeps more."""
        self.problem = None

    @abc.abstractmethod
    def outputs(self) -> Outputs:
        """The hidden states of the last forward, as NumPy arrays (they may be read-only views that
        the next forward overwrites: the core reads them at once). Untimed."""

    @abc.abstractmethod
    def gradients(self) -> Gradients:
        """The gradients of the last backward, as NumPy arrays. Untimed."""

    # -- measurement hooks ----------------------------------------------------------------------
    def synchronize(self) -> None:
        """Wait for queued device work; a no-op for synchronous backends."""

    def clock(self) -> Clock:
        """The clock that times blocks of calls; asynchronous devices return an event clock."""
        return WallClock(self.synchronize)

    def memory_meter(self) -> MemoryMeter:
        """The meter that sees this backend's allocations (tracemalloc sees NumPy buffers)."""
        return TracemallocMeter()
