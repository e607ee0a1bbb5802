"""The cell contract: what a recurrent cell declares, so that the core can derive everything else.

A cell is a class (one file, offered through the ``harness_cells`` hook, see
:mod:`harness.hookspecs`) with class attributes and ONE method, :meth:`Cell.step`, written once in
torch operations. From that declaration alone the core derives the float64 reference forward and
BPTT, the total per-step gradient of every state tensor, and the one-step vector-Jacobian product
of the Lyapunov QR recursion (:mod:`harness.derived`); spectra where the cell has a recurrent
matrix (:meth:`Cell.recurrent_matrix`) and the closed-form decay rate where its state Jacobian is
diagonal and input independent (:meth:`Cell.diagonal_recurrence`); the analytic activation size
(:attr:`Cell.stored_per_step`) and the roofline's FLOPs (:meth:`Cell.flops_per_step`)::

    from harness.cell import Cell, ParamSpec, StateSpec, zeros

    class Elman(Cell):
        name = "elman"
        description = "h_t = tanh(x_t W^T + h_{t-1} U^T + b)"
        reference = "Elman 1990, Finding structure in time"
        params = (
            ParamSpec("W", lambda I, H: (H, I)),        # default init: U(-1/sqrt(H), 1/sqrt(H))
            ParamSpec("U", lambda I, H: (H, H)),
            ParamSpec("b", lambda I, H: (H,), zeros),
        )
        state = (StateSpec("h"),)                      # size H unless StateSpec("h", size=...)
        output = "h"                                   # the state tensor the readout sees

        def step(self, p, state, x):                   # x (B, I), state[...] (B, size)
            return {"h": (x @ p["W"].T + state["h"] @ p["U"].T + p["b"]).tanh()}

Conventions:

- Shapes are functions of (I, H): input size and hidden size. States are (B, size(H)) tensors,
  named; a complex state is two real tensors (LRU's ``re`` and ``im``). Every state starts at 0
  unless given. The readout sees a (B, H) tensor each step: the state named by :attr:`Cell.output`,
  or what :meth:`Cell.readout_input` returns for a cell whose output is not a state tensor.
- :meth:`Cell.step` receives torch tensors (parameters, previous state, input at one step) of one
  dtype and device and returns the new state as a dict with exactly the state's names. It must
  use differentiable torch operations only (no in-place writes to its inputs, no NumPy): the
  derived reference differentiates it with autograd. Prefer tensor methods (``a.sigmoid()``,
  ``a.tanh()``, ``a.relu()``, ``a.chunk(k, 1)``) so the cell's module need not import torch; a
  cell module must never import torch at import time (``harness plugins`` stays fast and a missing
  torch only disables what needs it).
- Parameters are drawn in float64 by :meth:`Cell.init_params`: every :class:`ParamSpec`'s own init,
  in declaration order, then the named init's :attr:`CellInit.apply` in place, from a generator of
  its own (harness/streams.py: one seed gives the same declared draws, readout and data whatever the
  init). A cell may
  define ``inits["default"]`` to finish the default draw (LRU derives gamma from lambda). A named
  init is written ``NAME`` or ``NAME=VALUE`` on the command line, as in :mod:`harness.inits`.
- Contract violations are one-line :class:`~harness.errors.HarnessError` s that name the cell and
  the module it comes from: :func:`check_cell_class`, :func:`check_params`, :func:`check_step`,
  :func:`registered_cells` (a name offered twice).

API (what the core and a cell author use)::

    ParamSpec(name, shape(I, H), init=None)            # init: f(rng, I, H) -> array, or a Draw
    StateSpec(name, size(H)=H)
    CellInit(apply(params, rng, I, H, value, steps), parameter=None, default=None, description, source)
    Cell    attributes: name, params, state, output, inits, gate_names, stored_per_step,
                        description, reference
            step(p, state, x) -> state                  readout_input(p, state, x) -> (B, H)
            flops_per_step(B, I, H)                     recurrent_matrix(params) / recurrent_blocks(params)
            diagonal_recurrence(params)                 init_params(I, H, rng, init, value, steps)
            scan(p, x_all, add=None) -> states (optional: a parallel form over t; has_scan(cell))
            init_names()  hidden_size(params, I)  state_sizes(H)  param_shapes(I, H)
    has_scan(cell)
    check_cell_class(cls)  check_params(cell, params, I, H)  check_step(cell, p, state, x)
    check_readout(cell, y, B, H, dtype)  validate_cell(cell, ...)  registered_cells(results, names)
    helpers: Draw, uniform, normal, zeros, torch_uniform, linear_uniform, random_orthogonal,
             torch_rnn_params(G), TorchLayoutCell, orthogonal_init(G), identity_init(G),
             chrono_init(gates, keep, write), set_gate_bias, steps_value, label, one_line, as_cell

This module imports only NumPy and :mod:`harness.errors`; torch is imported inside the functions
that need it.
"""
from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from harness.errors import SAFE_NAME, HarnessError, message

if TYPE_CHECKING:
    import torch

Shape = Callable[[int, int], tuple[int, ...]]
ParamInit = Callable[[np.random.Generator, int, int], np.ndarray]
Params = dict[str, np.ndarray]


# -- initialisers for ParamSpec.init -----------------------------------------------------------------
@dataclass(frozen=True)
class Draw:
    """A shape-aware initialiser: ``fn(rng, shape, I, H)`` -> array of ``shape``. ParamSpec passes
    its own shape to a Draw; a plain function is called as ``init(rng, I, H)`` instead."""

    fn: Callable[[np.random.Generator, tuple[int, ...], int, int], np.ndarray]
    text: str  # what it draws, for docs and ``harness plugins``

    def __call__(self, rng: np.random.Generator, shape: tuple[int, ...], input_size: int,
                 hidden_size: int) -> np.ndarray:
        return self.fn(rng, shape, input_size, hidden_size)


def _bound(value: float | Callable[[int, int], float], input_size: int, hidden_size: int) -> float:
    return float(value(input_size, hidden_size) if callable(value) else value)


def uniform(low: float | Callable[[int, int], float], high: float | Callable[[int, int], float],
            text: str = "") -> Draw:
    """U(low, high); either bound may be a function of (I, H)."""
    return Draw(lambda rng, shape, i, h: rng.uniform(_bound(low, i, h), _bound(high, i, h), size=shape),
                text or f"U({low}, {high})")


def normal(std: float | Callable[[int, int], float], mean: float = 0.0, text: str = "") -> Draw:
    """N(mean, std^2); ``std`` may be a function of (I, H)."""
    return Draw(lambda rng, shape, i, h: mean + _bound(std, i, h) * rng.standard_normal(shape),
                text or f"N({mean}, {std}^2)")


#: torch's recurrent-layer default, U(-1/sqrt(H), 1/sqrt(H)) (nn.RNN, nn.LSTM, nn.GRU): the default
#: of every ParamSpec.
torch_uniform = uniform(lambda i, h: -1.0 / math.sqrt(h), lambda i, h: 1.0 / math.sqrt(h),
                        "U(-1/sqrt(H), 1/sqrt(H))")
#: nn.Linear's default for a layer from I inputs: U(-1/sqrt(I), 1/sqrt(I)), weights and biases.
linear_uniform = uniform(lambda i, h: -1.0 / math.sqrt(i), lambda i, h: 1.0 / math.sqrt(i),
                         "U(-1/sqrt(I), 1/sqrt(I))")
#: All zeros; draws nothing.
zeros = Draw(lambda rng, shape, i, h: np.zeros(shape), "0")


def random_orthogonal(n: int, rng: np.random.Generator) -> np.ndarray:
    """A Haar-random orthogonal matrix (QR of a Gaussian with the sign fix of Mezzadri 2007); the
    same draws as :func:`harness.inits.random_orthogonal`."""
    q, r = np.linalg.qr(rng.standard_normal((n, n)))
    return q * np.sign(np.diag(r))


@dataclass(frozen=True)
class ParamSpec:
    """One parameter: its name, its shape as a function of (I, H), and its default initialisation.

    ``init`` is a plain function ``init(rng, I, H)`` returning an array of the shape, or a
    :class:`Draw` (:func:`uniform`, :func:`normal`, :data:`zeros`, :data:`linear_uniform`), which
    is given the shape. None means :data:`torch_uniform`, torch's U(-1/sqrt(H), 1/sqrt(H))."""

    name: str
    shape: Shape
    init: ParamInit | Draw | None = None

    def shape_for(self, input_size: int, hidden_size: int) -> tuple[int, ...]:
        return tuple(int(n) for n in self.shape(input_size, hidden_size))

    def draw(self, rng: np.random.Generator, input_size: int, hidden_size: int) -> np.ndarray:
        """The default value: float64, of the declared shape."""
        shape = self.shape_for(input_size, hidden_size)
        init = self.init or torch_uniform
        if isinstance(init, Draw):
            value = init(rng, shape, input_size, hidden_size)
        else:
            value = init(rng, input_size, hidden_size)
        value = np.asarray(value, dtype=np.float64)
        if value.shape != shape:
            raise HarnessError(f"the default init of parameter {self.name} returned shape {value.shape}, "
                               f"expected {shape}")
        return value

    def describe_init(self) -> str:
        init = self.init or torch_uniform
        return init.text if isinstance(init, Draw) else getattr(init, "__doc__", None) or getattr(init, "__name__", "?")


def _hidden(hidden_size: int) -> int:
    return hidden_size


@dataclass(frozen=True)
class StateSpec:
    """One state tensor: its name and its size as a function of H (default: H)."""

    name: str
    size: Callable[[int], int] = _hidden

    def size_for(self, hidden_size: int) -> int:
        return int(self.size(hidden_size))


@dataclass(frozen=True)
class CellInit:
    """A named initialisation (``NAME`` or ``NAME=VALUE``), applied after the default draws.

    ``apply(params, rng, I, H, value, steps)`` changes the float64 ``params`` in place; ``value`` is
    VALUE, or ``default`` when not given; with a ``parameter`` and no ``default`` it is None and the
    init uses ``steps`` (the point's sequence length) instead. Bad values raise HarnessError."""

    apply: Callable[..., None]
    parameter: str | None = None  # what VALUE means (None: the init takes no value)
    default: float | None = None  # VALUE when not given (None with a parameter: the point's steps)
    description: str = ""
    source: str = ""  # where it comes from (paper, section)


class Cell:
    """Base class of every recurrent cell. Subclass it, set the class attributes, write :meth:`step`.

    Class attributes:

    - ``name``: unique, a safe file name (``lstm``, ``mingru``); ``description``, ``reference``
      (the paper); shown by ``harness plugins`` and the docs.
    - ``params``: tuple of :class:`ParamSpec`; ``state``: tuple of :class:`StateSpec`.
    - ``output``: the state tensor the readout sees (size H); None when :meth:`readout_input` is
      overridden instead.
    - ``inits``: named initialisations beyond ``default`` (:class:`CellInit`); ``default`` itself
      is the :class:`ParamSpec` inits (plus ``inits["default"]`` where a cell defines one).
    - ``gate_names``: the (H, H) row blocks of :meth:`recurrent_matrix`, for spectra.
    - ``stored_per_step``: k in the analytic activation size T * B * k * H * itemsize.
    """

    name: ClassVar[str]
    params: ClassVar[tuple[ParamSpec, ...]]
    state: ClassVar[tuple[StateSpec, ...]] = (StateSpec("h"),)
    output: ClassVar[str | None] = "h"
    inits: ClassVar[dict[str, CellInit]] = {}
    gate_names: ClassVar[tuple[str, ...]] = ("h",)
    stored_per_step: ClassVar[int] = 1
    description: ClassVar[str] = ""
    reference: ClassVar[str] = ""

    # -- the one method a cell must write ---------------------------------------------------------
    def step(self, p: dict[str, torch.Tensor], state: dict[str, torch.Tensor],
             x: torch.Tensor) -> dict[str, torch.Tensor]:
        """One step: the new state from the previous one and the input x_t (B, I), in torch ops."""
        raise NotImplementedError(f"cell {getattr(self, 'name', type(self).__name__)!r} does not define step()")

    def readout_input(self, p: dict[str, torch.Tensor], state: dict[str, torch.Tensor],
                      x: torch.Tensor) -> torch.Tensor:
        """What the readout sees at a step, (B, H), from the NEW state and that step's input.

        By default the state tensor :attr:`output`; override it for a cell whose output is not a
        state tensor (LRU: y_t = Re(C x_t) + D u_t)."""
        return state[self.output]

    # -- derived quantities a cell may override ---------------------------------------------------
    def flops_per_step(self, batch: int, input_size: int, hidden_size: int) -> float:
        """GEMM FLOPs of one forward step (backward counts twice this, as in
        :func:`harness.measure.roofline.layer_flops`). Default: every 2-D parameter (rows, cols) is
        multiplied once per step by a (B, cols) operand, 2 * B * rows * cols; the pointwise work is
        not counted. For the classic cells that is 2 B G H (I + H)."""
        total = 0.0
        for spec in self.params:
            shape = spec.shape_for(input_size, hidden_size)
            if len(shape) == 2:
                total += 2.0 * batch * shape[0] * shape[1]
        return total

    def recurrent_matrix(self, params: Mapping[str, np.ndarray]) -> np.ndarray | None:
        """The (len(gate_names) * H, H) recurrent weight whose (H, H) blocks get spectra
        (:meth:`recurrent_blocks`); None for a cell without one (diagonal recurrences)."""
        return None

    def diagonal_recurrence(self, params: Mapping[str, np.ndarray]) -> np.ndarray | None:
        """Where d s_t / d s_{t-1} is diagonal (per mode) and the same at every step: its diagonal
        (complex for a complex state, one value per mode), from which the decay rate is predicted
        in closed form: -log10 max |value| decades per step. None otherwise."""
        return None

    # -- optional: a parallel form of the whole sequence -----------------------------------------
    def scan(self, p: dict[str, torch.Tensor], x: torch.Tensor,
             add: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        """Every state of the sequence at once, for a cell whose recurrence runs as a parallel scan
        over t (a linear recurrence with input-only coefficients: mingru, lru). Optional: a cell
        that defines it (:func:`has_scan`) also runs on the ``torch-cpu-scan`` / ``torch-cuda-scan``
        backends, timed beside its stepped path.

        ``x`` is the whole input (T, B, I); the result is a dict with exactly the state's names, each
        (T, B, size): s_1 .. s_T, the SAME values as stepping :meth:`step` from zero states (to
        rounding). ``add``, when given, holds one (T, B, size) tensor per state, added to that state
        after each step, before the next step uses it (s_t = step(s_{t-1}, x_t) + add_t; for a linear
        recurrence s_t = a_t * s_{t-1} + b_t, add it to b_t): the backend passes zeros and reads the
        total per-step gradient dL/ds_t as the gradient with respect to ``add_t``. Differentiable
        torch operations only, as :meth:`step`. The scan backends call :meth:`readout_input` ONCE
        with (T, B, size) states and the (T, B, I) input, so a cell with a scan form writes its
        readout to broadcast over a leading time axis (matrix products and element-wise ops do)."""
        raise NotImplementedError(f"cell {getattr(self, 'name', type(self).__name__)!r} has no scan form")

    # -- provided by the base class ---------------------------------------------------------------
    def recurrent_blocks(self, params: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The (H, H) blocks of :meth:`recurrent_matrix` by :attr:`gate_names`; {} without one."""
        w = self.recurrent_matrix(params)
        if w is None:
            return {}
        w = np.asarray(w, dtype=np.float64)
        return dict(zip(self.gate_names, np.split(w, len(self.gate_names))))

    @classmethod
    def state_sizes(cls, hidden_size: int) -> dict[str, int]:
        return {s.name: s.size_for(hidden_size) for s in cls.state}

    @classmethod
    def param_shapes(cls, input_size: int, hidden_size: int) -> dict[str, tuple[int, ...]]:
        return {p.name: p.shape_for(input_size, hidden_size) for p in cls.params}

    @classmethod
    def init_names(cls) -> tuple[str, ...]:
        """Every init this cell accepts: ``default`` first."""
        return ("default",) + tuple(n for n in cls.inits if n != "default")

    def init_params(self, input_size: int, hidden_size: int, rng: np.random.Generator, init: str = "default",
                    value: float | None = None, steps: int | None = None,
                    init_rng: np.random.Generator | None = None) -> Params:
        """Draw float64 parameters: every :class:`ParamSpec`'s init in order from ``rng``, then
        ``init``'s :class:`CellInit` (``default``'s where the cell defines one) from ``init_rng``
        (``rng`` when None). With two generators every init of a cell starts from the same declared
        draws (harness/streams.py). ``value`` is the init's VALUE (None: its default); ``steps`` the
        point's sequence length, for inits that use it."""
        if init not in self.init_names():
            raise HarnessError(f"{label(self)}: unknown init {init!r}; its inits: {', '.join(self.init_names())}")
        params = {}
        for spec in self.params:
            try:
                params[spec.name] = spec.draw(rng, input_size, hidden_size)
            except HarnessError as exc:
                raise HarnessError(f"{label(self)}: {exc}") from None
        named = self.inits.get(init)
        if named is not None:
            if value is not None and named.parameter is None:
                raise HarnessError(f"{label(self)}: init {init!r} takes no value, got {value!r}")
            named.apply(params, rng if init_rng is None else init_rng, input_size, hidden_size,
                        named.default if value is None else value, steps)
        elif value is not None:
            raise HarnessError(f"{label(self)}: init {init!r} takes no value, got {value!r}")
        return params

    def hidden_size(self, params: Mapping[str, Any], input_size: int) -> int:
        """H of ``params`` for inputs of size I: the one H for which every parameter has its
        declared shape (else a one-line HarnessError naming the cell)."""
        check_params(self, params, input_size, None)  # names first
        dims = {int(d) for v in params.values() for d in np.shape(v)}
        candidates = sorted({d // k for d in dims for k in range(1, 9) if d % k == 0 and d // k > 0})
        fits = [h for h in candidates
                if all(tuple(np.shape(params[s.name])) == s.shape_for(input_size, h) for s in self.params)]
        if len(fits) != 1:
            got = {s.name: tuple(np.shape(params[s.name])) for s in self.params}
            what = "no hidden size H fits" if not fits else f"several hidden sizes ({fits}) fit"
            raise HarnessError(f"{label(self)}: {what} the parameter shapes {got} for I = {input_size}")
        return fits[0]


def label(cell: Cell | type[Cell]) -> str:
    """``cell 'NAME' (module)``: how every error names a cell and where it comes from."""
    cls = cell if isinstance(cell, type) else type(cell)
    name = getattr(cls, "name", None)
    return f"cell {name if isinstance(name, str) else cls.__qualname__!r} ({cls.__module__})"


def one_line(exc: BaseException) -> str:
    """An exception as one line: ``Type: message`` with the message's whitespace collapsed."""
    text = " ".join(message(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def has_scan(cell: Cell | type[Cell]) -> bool:
    """Whether ``cell`` defines the optional parallel form :meth:`Cell.scan`."""
    cls = cell if isinstance(cell, type) else type(cell)
    return getattr(cls, "scan", Cell.scan) is not Cell.scan


def as_cell(cell: Cell | type[Cell]) -> Cell:
    """An instance of ``cell`` (classes are instantiated without arguments)."""
    if isinstance(cell, Cell):
        return cell
    if isinstance(cell, type) and issubclass(cell, Cell):
        try:
            return cell()
        except Exception as exc:
            raise HarnessError(f"{label(cell)}: cannot be instantiated without arguments: {one_line(exc)}") from None
    raise HarnessError(f"{cell!r} is not a harness.cell.Cell subclass")


# -- validation: one-line errors naming the cell ----------------------------------------------------
def check_cell_class(cls: Any) -> type[Cell]:
    """Check a class offered as a cell: a :class:`Cell` subclass with a safe unique-per-cell name,
    ParamSpecs and StateSpecs with unique names, an output that is a state (or an overridden
    readout_input), a step, and CellInits. Returns it; else a one-line HarnessError naming it."""
    if not (isinstance(cls, type) and issubclass(cls, Cell)):
        raise HarnessError(f"{cls!r} is offered as a cell but is not a harness.cell.Cell subclass")
    name = getattr(cls, "name", None)
    where = label(cls)
    if not isinstance(name, str) or not SAFE_NAME.fullmatch(name):
        raise HarnessError(f"{where}: its name must be letters, digits, '.', '_' and '-', starting with a letter "
                           f"or digit, got {name!r}")
    params, state = getattr(cls, "params", None), getattr(cls, "state", None)
    if not isinstance(params, tuple) or not all(isinstance(p, ParamSpec) for p in params):
        raise HarnessError(f"{where}: params must be a tuple of ParamSpec, got {params!r}")
    if not isinstance(state, tuple) or not state or not all(isinstance(s, StateSpec) for s in state):
        raise HarnessError(f"{where}: state must be a non-empty tuple of StateSpec, got {state!r}")
    for kind, names in (("parameter", [p.name for p in params]), ("state", [s.name for s in state])):
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise HarnessError(f"{where}: {kind} name(s) {', '.join(map(repr, twice))} declared twice")
    if cls.step is Cell.step:
        raise HarnessError(f"{where}: defines no step(self, p, state, x)")
    try:
        arity = len(inspect.signature(cls.step).parameters)
    except (TypeError, ValueError):
        arity = 4
    if arity != 4:
        raise HarnessError(f"{where}: step must take (self, p, state, x), got {arity} arguments")
    if cls.readout_input is Cell.readout_input and cls.output not in {s.name for s in state}:
        raise HarnessError(f"{where}: output {cls.output!r} is not one of its states "
                           f"({', '.join(s.name for s in state)}); name one or override readout_input()")
    inits = getattr(cls, "inits", {})
    if not isinstance(inits, dict) or not all(isinstance(k, str) and isinstance(v, CellInit) for k, v in inits.items()):
        raise HarnessError(f"{where}: inits must be a dict of name -> CellInit")
    bad = [k for k in inits if not SAFE_NAME.fullmatch(k) or "=" in k]
    if bad:
        raise HarnessError(f"{where}: init name(s) {bad} are not safe names")
    if not isinstance(cls.stored_per_step, int) or cls.stored_per_step < 1:
        raise HarnessError(f"{where}: stored_per_step must be a positive int, got {cls.stored_per_step!r}")
    return cls


def check_params(cell: Cell | type[Cell], params: Mapping[str, Any], input_size: int,
                 hidden_size: int | None) -> None:
    """Every declared parameter present (and no other); with ``hidden_size``, also each of its
    declared shape and finite. A one-line HarnessError naming the cell and the parameter."""
    cls = cell if isinstance(cell, type) else type(cell)
    where = label(cls)
    declared = [s.name for s in cls.params]
    missing, extra = [n for n in declared if n not in params], sorted(set(params) - set(declared))
    if missing or extra:
        raise HarnessError(f"{where}: parameters {sorted(params)} do not match its declared ones {declared}"
                           f"{f' (missing {missing})' if missing else ''}{f' (unknown {extra})' if extra else ''}")
    if hidden_size is None:
        return
    for spec in cls.params:
        want, got = spec.shape_for(input_size, hidden_size), tuple(np.shape(params[spec.name]))
        if want != got:
            raise HarnessError(f"{where}: parameter {spec.name} has shape {got}, expected {want} for "
                               f"I = {input_size}, H = {hidden_size}")
    for spec in cls.params:
        value = params[spec.name]
        finite = bool(value.isfinite().all()) if hasattr(value, "isfinite") else bool(np.isfinite(value).all())
        if not finite:
            raise HarnessError(f"{where}: parameter {spec.name} holds NaN or inf")


def check_step(cell: Cell | type[Cell], p: Mapping[str, Any], state: Mapping[str, Any], x: Any) -> dict[str, Any]:
    """Call ``cell.step`` once and check what it returns: a dict with exactly the declared state
    names, each a tensor of the previous state's shape (B, size), dtype and device. Returns it; a
    step that raises or returns anything else is a one-line HarnessError naming the cell."""
    cell = as_cell(cell)
    where = label(cell)
    try:
        new = cell.step(dict(p), dict(state), x)
    except Exception as exc:
        raise HarnessError(f"{where}: step raised {one_line(exc)}") from None
    if not isinstance(new, Mapping):
        raise HarnessError(f"{where}: step returned {type(new).__name__}, expected a dict of its states "
                           f"({', '.join(s.name for s in cell.state)})")
    want = [s.name for s in cell.state]
    if set(new) != set(want):
        raise HarnessError(f"{where}: step returned the states {sorted(new)}, expected {want}")
    for name in want:
        got, prev = new[name], state[name]
        if not hasattr(got, "shape") or not hasattr(got, "dtype"):
            raise HarnessError(f"{where}: step returned state {name} as {type(got).__name__}, expected a tensor")
        if tuple(got.shape) != tuple(prev.shape):
            raise HarnessError(f"{where}: step returned state {name} of shape {tuple(got.shape)}, expected "
                               f"{tuple(prev.shape)} (B, size)")
        if got.dtype != prev.dtype:
            raise HarnessError(f"{where}: step returned state {name} in {got.dtype}, expected {prev.dtype}")
        if getattr(got, "device", None) != getattr(prev, "device", None):
            raise HarnessError(f"{where}: step returned state {name} on {got.device}, expected {prev.device}")
    return dict(new)


def check_readout(cell: Cell | type[Cell], y: Any, batch: int, hidden_size: int, dtype: Any) -> None:
    """The readout input of one step must be a (B, H) tensor of the state's dtype."""
    where = label(cell)
    if not hasattr(y, "shape") or tuple(y.shape) != (batch, hidden_size):
        raise HarnessError(f"{where}: readout_input returned shape {tuple(getattr(y, 'shape', ()))}, expected "
                           f"({batch}, {hidden_size}) (B, H)")
    if y.dtype != dtype:
        raise HarnessError(f"{where}: readout_input returned {y.dtype}, expected {dtype}")


def validate_cell(cell: Cell | type[Cell], input_size: int = 3, hidden_size: int = 4, batch: int = 2,
                  steps: int = 8, seed: int = 0, dtype: str = "float64") -> None:
    """Smoke-check a cell end to end on a tiny problem (what ``harness check`` can run first): its
    class, every init (finite parameters of the declared shapes), and one step and readout with
    each init, in ``dtype`` on the CPU. Raises the first one-line HarnessError."""
    import torch

    cls = check_cell_class(cell if isinstance(cell, type) else type(cell))
    cell = as_cell(cell)
    tdtype = getattr(torch, dtype)
    rng = np.random.default_rng(seed)
    x = torch.as_tensor(rng.standard_normal((batch, input_size)), dtype=tdtype)
    for init in cls.init_names():
        try:
            params = cell.init_params(input_size, hidden_size, np.random.default_rng(seed), init, steps=steps)
        except HarnessError:
            raise
        except Exception as exc:
            raise HarnessError(f"{label(cls)}: init {init!r} raised {one_line(exc)}") from None
        check_params(cls, params, input_size, hidden_size)
        p = {k: torch.as_tensor(v, dtype=tdtype) for k, v in params.items()}
        state = {s.name: torch.zeros(batch, s.size_for(hidden_size), dtype=tdtype) for s in cls.state}
        new = check_step(cell, p, state, x)
        try:
            y = cell.readout_input(p, new, x)
        except Exception as exc:
            raise HarnessError(f"{label(cls)}: readout_input raised {one_line(exc)}") from None
        check_readout(cls, y, batch, hidden_size, tdtype)


def registered_cells(pm_results: Iterable[Sequence[type[Cell]] | None],
                     plugin_names: Sequence[str] | None = None) -> dict[str, type[Cell]]:
    """The cells offered by every plugin, by name: ``pm_results`` is what ``harness_cells`` returned,
    one list per plugin (in pluggy's order), ``plugin_names`` the plugins' names in the same order
    (used in messages only). Each class is checked (:func:`check_cell_class`); a name offered twice
    is a HarnessError naming both offers. To record a bad plugin without stopping the others (as
    harness.plugins does for backends), call :func:`check_cell_class` on each plugin's classes
    first and leave that plugin's list out."""
    results = list(pm_results)
    names = list(plugin_names) if plugin_names is not None else [None] * len(results)
    found: dict[str, type[Cell]] = {}
    offered_by: dict[str, str] = {}
    for plugin, classes in zip(names, results):
        for cls in classes or ():
            check_cell_class(cls)
            where = f"{cls.__module__}.{cls.__qualname__}" + (f" (plugin {plugin!r})" if plugin else "")
            if cls.name in found:
                if found[cls.name] is cls:
                    continue  # one class offered twice by the same module is one cell
                raise HarnessError(f"cell {cls.name!r} is offered twice: by {offered_by[cls.name]} and by {where}; "
                                   f"uninstall or disable one (HARNESS_DISABLE_PLUGINS)")
            found[cls.name] = cls
            offered_by[cls.name] = where
    return found


# -- shared inits for cells in torch's layout (weight_hh of (G*H, H), bias_ih/bias_hh of (G*H,)) --
def _blocks(cell_gates: int, hidden_size: int, make: Callable[[], np.ndarray]) -> np.ndarray:
    return np.concatenate([make() for _ in range(cell_gates)], axis=0)


def orthogonal_init(gates: int) -> CellInit:
    """``orthogonal=GAIN`` (Saxe et al. 2014): each (H, H) block of weight_hh is GAIN times a
    Haar-random orthogonal matrix; the rest as default. The same draws as harness.inits."""
    def apply(params: Params, rng, input_size, hidden_size, value, steps) -> None:
        _non_negative("orthogonal", value)
        params["weight_hh"] = value * _blocks(gates, hidden_size, lambda: random_orthogonal(hidden_size, rng))
    return CellInit(apply, "gain", 1.0, "each H x H block of weight_hh = GAIN x Haar-random orthogonal",
                    "Saxe, McClelland, Ganguli 2014")


def identity_init(gates: int) -> CellInit:
    """``identity=GAIN`` (Le et al. 2015): each block of weight_hh is GAIN times the identity; the
    rest (biases included) as default."""
    def apply(params: Params, rng, input_size, hidden_size, value, steps) -> None:
        _non_negative("identity", value)
        params["weight_hh"] = value * _blocks(gates, hidden_size, lambda: np.eye(hidden_size))
    return CellInit(apply, "gain", 1.0, "each H x H block of weight_hh = GAIN x I; biases as default",
                    "Le, Jaitly, Hinton 2015")


def torch_rnn_params(gates: int) -> tuple[ParamSpec, ...]:
    """The parameters of a cell in torch's nn.RNN/LSTM/GRU layout with ``gates`` gate blocks:
    weight_ih (G*H, I), weight_hh (G*H, H), bias_ih (G*H,), bias_hh (G*H,), each U(-1/sqrt(H),
    1/sqrt(H)), drawn in that order (the draws of harness.inits.init_params)."""
    return (
        ParamSpec("weight_ih", lambda i, h: (gates * h, i)),
        ParamSpec("weight_hh", lambda i, h: (gates * h, h)),
        ParamSpec("bias_ih", lambda i, h: (gates * h,)),
        ParamSpec("bias_hh", lambda i, h: (gates * h,)),
    )


class TorchLayoutCell(Cell):
    """A cell in torch's layout (:func:`torch_rnn_params`): its recurrent matrix is weight_hh, one
    (H, H) block per name in ``gate_names``."""

    def recurrent_matrix(self, params: Mapping[str, np.ndarray]) -> np.ndarray | None:
        return np.asarray(params["weight_hh"], dtype=np.float64)


def set_gate_bias(params: Params, gates: tuple[str, ...], gate: str, bias: np.ndarray | float) -> None:
    """Give ``gate`` the total bias ``bias`` (bias_ih + bias_hh), half in each (torch's layout)."""
    hidden = params["bias_ih"].shape[0] // len(gates)
    k = gates.index(gate)
    for name in ("bias_ih", "bias_hh"):
        params[name][k * hidden : (k + 1) * hidden] = np.asarray(bias) / 2.0


def _non_negative(init: str, value: float) -> None:
    if not math.isfinite(value) or value < 0:
        raise HarnessError(f"init {init!r}: its value must be finite and not negative, got {value!r}")


def steps_value(init: str, value: float | None, steps: int | None, least: float = 2.0) -> float:
    """An init's T_max: its VALUE, else the point's ``steps``; above ``least``."""
    t_max = value if value is not None else steps
    if t_max is None or not math.isfinite(t_max) or t_max <= least:
        raise HarnessError(f"init {init!r} needs T_max above {least:g} ({init}=T_MAX), got {t_max!r}")
    return float(t_max)


def chrono_init(gates: tuple[str, ...], keep: str, write: str | None, keep_sign: float = 1.0) -> CellInit:
    """``chrono=T_MAX`` (Tallec & Ollivier 2018): b = log(u), u ~ U(1, T_MAX - 1); the gate that
    keeps the state gets keep_sign * b, the gate that writes it (if any) -b; each total bias split
    half in bias_ih, half in bias_hh. The same draws as harness.inits."""
    def apply(params: Params, rng, input_size, hidden_size, value, steps) -> None:
        t_max = steps_value("chrono", value, steps)
        b = np.log(rng.uniform(1.0, t_max - 1.0, size=hidden_size))
        set_gate_bias(params, gates, keep, keep_sign * b)
        if write is not None:
            set_gate_bias(params, gates, write, -b)
    return CellInit(apply, "T_max", None, "keep-gate bias log U(1, T_MAX - 1) (write gate: minus it)",
                    "Tallec & Ollivier 2018, 'Can recurrent neural networks warp time?'")

