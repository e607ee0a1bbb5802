"""The backend contract: one recurrent layer, forward and backward through time.

A backend implements only the recurrent layer; tasks, readout, loss, metrics, timing and
recording belong to the core, so that every backend is measured the same way. Lifecycle (the
core calls these in order; only ``forward`` and ``backward`` are ever timed)::

    backend = MyBackend(threads=1)      # in the worker process; may import torch/numba here
    backend.prepare(problem)            # core-only, untimed: checks, teardown, then your setup(problem)
    backend.forward()                   # timed: every state after each step, and the readout input y_t
    backend.upstream(grad_h)            # core-only, untimed: checks, then your set_upstream(grad_h)
    backend.backward()                  # timed: parameter gradients and dL/dx only
    backend.backward(per_step=True)     # untimed use: also the total dL/ds_t of every state tensor
    backend.outputs(); backend.gradients()   # untimed: results as NumPy arrays
    backend.teardown()                  # drop every buffer

The layer is a cell (:mod:`harness.cell`, looked up by name in the plugin registry): its
parameters, named states (``h``; LSTM's ``h, c``; LRU's ``re, im``) and the (B, H) tensor the
readout sees each step, y_t (the output state, or the cell's ``readout_input``). The upstream
gradient is dL/dy_t (T, B, H); the per-step gradients are the TOTAL dL/ds_t of every state tensor.
A backend names the cells it runs in ``cells`` (``EVERY_CELL``: every registered cell, from its
step function); the others are skipped with the reason :meth:`Backend.supports` gives.
"""
from __future__ import annotations

import abc
import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from harness.cell import Cell, check_params, label
from harness.cells import DTYPES, Params, cell_class, cell_names
from harness.errors import BackendError, HarnessError
from harness.measure.memory import MemoryMeter, TracemallocMeter
from harness.measure.timing import Clock, WallClock

#: In ``Backend.cells``: the backend runs every registered cell (a generic path from the cell's step).
EVERY_CELL = "*"


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

    ``cell`` names a registered cell; ``params`` holds its declared parameters, of the shapes it
    declares for I (from x) and H. ``x`` is time-major (T, B, I); ``grad_h``, when known in advance
    (benchmarks), is the upstream gradient dL/dy_t of the loss with respect to what the readout sees
    at each step (T, B, H): the cell's output state (h), or its readout input; training hands it
    over after forward instead (:meth:`Backend.upstream`). Every state starts at 0.
    """

    cell: str
    params: Params
    x: np.ndarray
    grad_h: np.ndarray | None = None

    def __post_init__(self):
        cls = cell_class(self.cell)  # an unknown cell names the known ones
        if self.x.ndim != 3:
            raise HarnessError(f"x must be (T, B, I), got shape {self.x.shape}")
        seq_len, batch, input_size = self.x.shape
        check_params(cls, self.params, input_size, None)  # the declared names, no more, no less
        hidden = self.hidden
        if self.grad_h is not None:
            check_upstream(self.grad_h, (seq_len, batch, hidden), self.dtype)
        arrays = (self.x, *self.params.values()) + (() if self.grad_h is None else (self.grad_h,))
        dtypes = {str(getattr(a, "dtype", type(a).__name__)) for a in arrays}
        if len(dtypes) != 1 or next(iter(dtypes)) not in DTYPES:
            raise HarnessError(f"all arrays must share one dtype of {', '.join(DTYPES)}; got {sorted(dtypes)}")

    @functools.cached_property
    def dtype(self) -> str:
        return str(self.x.dtype)

    @functools.cached_property
    def hidden(self) -> int:
        """H: the hidden size the parameters' shapes declare (a parameter whose shape fits no H is a
        one-line error naming it and the shape it must have)."""
        return _hidden_size(cell_class(self.cell), self.params, self.x.shape[2])

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """(T, B, I, H)."""
        return (*self.x.shape, self.hidden)

    @property
    def cell_class(self) -> type[Cell]:
        return cell_class(self.cell)


def _hidden_size(cls: type[Cell], params: Params, input_size: int) -> int:
    """The H for which every parameter has its declared shape; where none does, the H most of them
    fit, and the error names the first parameter that does not."""
    shapes = {spec.name: tuple(np.shape(params[spec.name])) for spec in cls.params}
    dims = {d for shape in shapes.values() for d in shape}
    candidates = sorted({d // k for d in dims for k in range(1, 9) if d % k == 0 and d // k > 0})
    fits = {h: sum(shapes[s.name] == s.shape_for(input_size, h) for s in cls.params) for h in candidates}
    if not fits:
        raise HarnessError(f"{label(cls)}: no hidden size H fits the parameter shapes {shapes} for I = {input_size}")
    best = max(fits.values())
    hidden = min(h for h, n in fits.items() if n == best)
    if best < len(cls.params):
        for spec in cls.params:
            want = spec.shape_for(input_size, hidden)
            if shapes[spec.name] != want:
                raise HarnessError(f"{spec.name} must have shape {want} for {cls.name} (I = {input_size}, "
                                   f"H = {hidden}), got {shapes[spec.name]}")
    return hidden


def _layout(problem: Problem) -> tuple:
    """What decides a problem's buffers: cell, shapes, dtype."""
    return (problem.cell, problem.x.shape, tuple(np.shape(v) for v in problem.params.values()), problem.dtype)


def check_upstream(grad_h: np.ndarray, shape: tuple[int, int, int], dtype: str) -> None:
    """An upstream gradient must be (T, B, H) in the problem's dtype."""
    if grad_h.shape != shape:
        raise HarnessError(f"grad_h must have shape {shape} (T, B, H), got {grad_h.shape}")
    if str(grad_h.dtype) != dtype:
        raise HarnessError(f"all arrays must share one dtype of {', '.join(DTYPES)}; got "
                           f"{sorted({dtype, str(grad_h.dtype)})}")


def check_gradients(problem: Problem, grads: Gradients, per_step: bool) -> tuple[str, ...]:
    """Validate what a backend's backward returned against the problem: every array present, of
    the right shape and dtype (else :class:`BackendError`, naming it). With ``per_step``, the total
    per-step gradient of every state tensor of the cell (dL/dh_t, dL/dc_t, ...). Returns the names
    of the tensors that hold NaN or inf (a result to report, not an error)."""
    T, B, I, H = problem.shape
    cls = problem.cell_class
    expected = {f"dL/d{name}": shape for name, shape in cls.param_shapes(I, H).items()}
    got = {f"dL/d{name}": grads.params.get(name) for name in cls.param_shapes(I, H)}
    expected["dL/dx"], got["dL/dx"] = (T, B, I), grads.x
    if per_step:
        per_state = state_gradients(cls, grads)
        for name, size in cls.state_sizes(H).items():
            expected[f"dL/d{name}_t"], got[f"dL/d{name}_t"] = (T, B, size), per_state.get(name)
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
    """A forward pass. ``h`` is what the readout sees at each step, y_1..y_T (T, B, H): the cell's
    output state (h_1..h_T for the classic cells), or its readout input. ``states`` holds every
    state tensor after each step by name, (T, B, size) each (plugin API 3); a backend written for
    API 2 fills ``h`` and, for LSTM, ``c`` (c_1..c_T) instead, which mean the states h and c."""

    h: np.ndarray  # (T, B, H): the readout's input y_1 .. y_T
    c: np.ndarray | None = None  # (T, B, H) for LSTM
    states: dict[str, np.ndarray] | None = None  # every state tensor by name, (T, B, size)


@dataclass
class Gradients:
    """A backward pass: dL/d(every parameter) by name, dL/dx, and with ``per_step`` the TOTAL
    per-step gradient of every state tensor, ``states`` by name (plugin API 3), or ``h`` and ``c``
    (API 2: dL/dh_t, and dL/dc_t for LSTM)."""

    params: Params  # dL/dparam by name, for every declared parameter
    x: np.ndarray  # (T, B, I)
    h: np.ndarray | None = None  # total dL/dh_t (T, B, H), only from backward(per_step=True)
    c: np.ndarray | None = None  # total dL/dc_t (T, B, H) for LSTM, only with per_step
    h0: np.ndarray | None = None  # dL/dh_0 (B, H), where a backend offers it (the reference does)
    c0: np.ndarray | None = None  # dL/dc_0 (B, H) for LSTM
    states: dict[str, np.ndarray] | None = None  # total dL/ds_t of every state tensor by name (T, B, size)


def _by_state(cls: type[Cell], states: Mapping[str, np.ndarray] | None, h, c) -> dict[str, np.ndarray | None]:
    names = [s.name for s in cls.state]
    if states is not None:
        return {n: states.get(n) for n in names}
    legacy = {"h": h, "c": c}
    return {n: legacy.get(n) for n in names}


def output_states(cell: type[Cell] | Cell, out: Outputs) -> dict[str, np.ndarray | None]:
    """Every state tensor of a forward pass by the cell's names: ``out.states``, or (a backend
    written for plugin API 2) ``h`` and ``c``."""
    return _by_state(cell if isinstance(cell, type) else type(cell), out.states, out.h, out.c)


def state_gradients(cell: type[Cell] | Cell, grads: Gradients) -> dict[str, np.ndarray | None]:
    """The total per-step gradient of every state tensor by the cell's names: ``grads.states``, or
    (a backend written for plugin API 2) ``h`` and ``c``."""
    return _by_state(cell if isinstance(cell, type) else type(cell), grads.states, grads.h, grads.c)


class Backend(abc.ABC):
    """Base class of every backend. Subclass it, set the class attributes, implement the methods.

    Class attributes: ``name`` (unique, e.g. ``"numpy"``), ``cells`` and ``dtypes`` supported
    (``cells = (EVERY_CELL,)``: every registered cell, for a backend that runs a cell from its step).
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
    #: Whether ``--backends all`` includes it. False for a variant that runs another backend's cells
    #: a slower way for comparison (``torch-cpu-generic``): it runs when named.
    in_all: ClassVar[bool] = True

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
    def cell_names(cls) -> tuple[str, ...]:
        """The cells this backend runs: ``cells``, with ``EVERY_CELL`` standing for every registered cell."""
        if EVERY_CELL in cls.cells:
            return cell_names()
        return tuple(cls.cells)

    @classmethod
    def supports(cls, cell: str, dtype: str) -> Availability:
        names = cls.cell_names()
        if cell not in names:
            return Availability(False, f"backend {cls.name!r} has no kernel for cell {cell!r}; "
                                       f"cells it runs: {', '.join(names)}")
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
        """Hand the upstream gradient dL/dy_t (T, B, H) of the prepared problem to the backend, for
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
        """Compute every state after each step and the readout input y_t (h_1..h_T, and c_t for
        LSTM), keeping what backward needs. Timed."""

    @abc.abstractmethod
    def backward(self, per_step: bool = False) -> None:
        """Backpropagate the upstream gradient (:meth:`set_upstream`) through time after :meth:`forward`.

        Always computes the parameter gradients and dL/dx. With ``per_step`` it also keeps the
        total gradient of every state tensor at every step (the one flowing through the recurrence
        plus the direct part): dL/dh_t, dL/dc_t for LSTM, ``Gradients.states`` for any cell. The
        timed call passes ``per_step=False``.
        """

    def teardown(self) -> None:
        """Drop every array that ``prepare``, ``forward`` and ``backward`` keep (before a memory
        measurement, which counts from ``prepare`` on). Override when the backend keeps more."""
        self.problem = None

    @abc.abstractmethod
    def outputs(self) -> Outputs:
        """The readout input and states of the last forward, as NumPy arrays (they may be read-only views that
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
