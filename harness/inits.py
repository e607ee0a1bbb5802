"""Named initialisations of a cell's parameters: an axis of the grid (``inits = [...]``, ``--inits``).

An init is written ``NAME`` or ``NAME=VALUE``; the value is the init's one parameter. The inits a
cell accepts are the cell's own (:attr:`harness.cell.Cell.inits`, ``default`` first), and drawing
is the cell's (:meth:`harness.cell.Cell.init_params`): this module parses the spellings, checks that
an init applies to every cell of a grid, and casts. An init's own draws come from a stream of their
own (harness/streams.py), so one seed gives every init the same default draws. The classic cells' inits:

- ``default``: torch's U(-1/sqrt(H), 1/sqrt(H)) for every weight and bias (each cell's declared
  default; minGRU's nn.Linear draws, LRU's ring, ...).
- ``orthogonal=GAIN`` (Saxe et al. 2014; Henaff et al. 2016): each gate's H x H block of ``weight_hh``
  is GAIN times a Haar-random orthogonal matrix; the rest as ``default``. GAIN defaults to 1.
- ``identity=GAIN``: each block is GAIN times the identity, the W_hh of Le et al.'s (2015) IRNN
  without the rest of it (ReLU units and zero biases: rnn_relu's ``irnn`` is the IRNN).
- ``linear=S`` (tanh RNN): zero input weights and biases and W_hh = S x orthogonal. With h_0 = 0 the
  state stays 0, tanh works in its linear regime and g_t shrinks (S < 1) or grows (S > 1) by exactly
  S per step: the closed form the Lyapunov estimate and the decay rate are checked against.
- ``forget_bias=B`` (LSTM; Gers et al. 2000, Jozefowicz et al. 2015): as ``default``, then the forget
  gate's biases are set so that bias_ih + bias_hh = B, half in each. B defaults to 1.
- ``chrono=T_MAX`` (LSTM, GRU; Tallec & Ollivier 2018): as ``default``, then the gate that keeps the
  state gets bias b = log(u), u ~ U(1, T_MAX - 1), and the gate that writes it -b (LSTM: forget f and
  input i; GRU: z keeps h, so b_z = b; gru_cho's keep gate is 1 - z, so b_z = -b), each split half in
  bias_ih and half in bias_hh. T_MAX defaults to the point's number of steps.

Other cells bring their own (``irnn`` for rnn_relu, ``memory`` for indrnn, ``radius`` for lru, ...):
``harness plugins`` lists them, and each cell's module documents them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from harness.cell import check_params, label, one_line
from harness.cells import DTYPES, Params, cell, cell_class, from_plugin
from harness.errors import HarnessError, check_choice


@dataclass(frozen=True)
class InitKind:
    """One family of initialisations: its parameter and the cells it applies to."""

    name: str
    parameter: str | None  # what VALUE means (None: the init takes no value)
    default: float | None  # VALUE when not given (None with a parameter: the point's steps)
    cells: tuple[str, ...] = ()


def kinds() -> dict[str, InitKind]:
    """Every init some registered cell accepts, ``default`` first, then in the order the cells (in the
    registry's order) declare them; its parameter as the first cell declaring it names it."""
    from harness.plugins import get_registry

    found: dict[str, InitKind] = {"default": InitKind("default", None, None)}
    for name, cls in get_registry().cells.items():
        for init in cls.init_names():
            spec = cls.inits.get(init)
            kind = found.get(init) or InitKind(init, spec.parameter if spec else None, spec.default if spec else None)
            found[init] = InitKind(kind.name, kind.parameter, kind.default, kind.cells + (name,))
    return found


def __getattr__(name: str):
    """``KINDS``: :func:`kinds`, read from the registry when asked for (PEP 562)."""
    if name == "KINDS":
        return kinds()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


#: The classic inits' ranges, checked when an init is parsed (the cells check again when drawing).
_NOT_NEGATIVE = ("orthogonal", "identity", "linear")


@dataclass(frozen=True)
class Init:
    """A parsed init: its kind and value (None: the kind's default)."""

    kind: str
    value: float | None = None

    @property
    def label(self) -> str:
        """The canonical spelling: what results, asv params and tables show."""
        return self.kind if self.value is None else f"{self.kind}={self.value:g}"

    def applies_to(self, cell: str) -> bool:
        return self.kind in cell_class(cell).init_names()


def parse(spec: str) -> Init:
    """``NAME`` or ``NAME=VALUE``; anything else is a one-line error naming the choices."""
    name, sep, text = str(spec).strip().partition("=")
    known = kinds()
    kind = known[check_choice("init", name.strip(), known)]
    if not sep:
        return Init(kind.name)
    if kind.parameter is None:
        raise HarnessError(f"init {kind.name!r} takes no value, got {spec!r}")
    try:
        value = float(text)
    except ValueError:
        raise HarnessError(f"init {spec!r}: its {kind.parameter} must be a number, got {text.strip()!r}") from None
    if not math.isfinite(value) or (kind.name == "chrono" and value <= 2) or (kind.name in _NOT_NEGATIVE
                                                                               and value < 0):
        least = "above 2" if kind.name == "chrono" else "finite and not negative" if kind.name in _NOT_NEGATIVE \
            else "finite"
        raise HarnessError(f"init {spec!r}: its {kind.parameter} must be {least}, got {text.strip()!r}")
    return Init(kind.name, None if value == kind.default else value)  # orthogonal=1 is orthogonal


def check(specs: list[str] | tuple[str, ...], cells: tuple[str, ...]) -> tuple[str, ...]:
    """The canonical labels of ``specs``; an init that does not apply to one of ``cells``, or whose
    value the cell refuses (tried on a tiny draw), is an error."""
    labels = []
    for spec in specs:
        init = parse(spec)
        for name in cells:
            if not init.applies_to(name):
                applies = ", ".join(kinds()[init.kind].cells)
                raise HarnessError(f"init {init.label!r} does not apply to cell {name!r} (it applies to: {applies}); "
                                   f"run those cells in a suite of their own")
            if init.value is not None:  # the cell's own range check, now rather than in every worker
                init_params(name, 2, 3, np.random.default_rng(0), init.label, steps=100)
        if init.label in labels:
            raise HarnessError(f"init {init.label!r} is listed twice")
        labels.append(init.label)
    return tuple(labels)


def random_orthogonal(n: int, rng: np.random.Generator) -> np.ndarray:
    """A Haar-random orthogonal matrix (QR of a Gaussian with the sign fix of Mezzadri 2007)."""
    q, r = np.linalg.qr(rng.standard_normal((n, n)))
    return q * np.sign(np.diag(r))


def init_params(
    cell_name: str,
    input_size: int,
    hidden_size: int,
    rng: np.random.Generator,
    init: str = "default",
    dtype: str = "float64",
    steps: int | None = None,
    init_rng: np.random.Generator | None = None,
) -> Params:
    """Draw parameters in float64 by ``init`` (a spec, see the module) with the cell's own
    :meth:`~harness.cell.Cell.init_params`, check them (every declared parameter, of its shape,
    finite) and cast them to ``dtype``.

    Every init first draws the default from ``rng``, then its own numbers from ``init_rng`` (``rng``
    when None): with the streams of harness/streams.py one seed gives the same default draws, data and
    readout whatever the init. ``steps`` is the T_max of an init that takes one (chrono) when the spec
    gives none.
    A cell whose init raises or draws NaN is a one-line error naming the cell and its plugin."""
    spec = parse(init)
    check_choice("dtype", dtype, DTYPES)
    if not spec.applies_to(cell_name):
        raise HarnessError(f"init {spec.label!r} does not apply to cell {cell_name!r}")
    layer = cell(cell_name)
    try:
        params = layer.init_params(input_size, hidden_size, rng, spec.kind, spec.value, steps, init_rng)
        check_params(layer, params, input_size, hidden_size)
    except HarnessError as exc:
        raise HarnessError(f"{exc}{from_plugin(cell_name)}") from None
    except Exception as exc:  # a third-party init that fails in its own way
        raise HarnessError(f"{label(layer)}: init {spec.label!r} raised {one_line(exc)}"
                           f"{from_plugin(cell_name)}") from None
    return {name: np.asarray(v, dtype=np.float64).astype(dtype) for name, v in params.items()}
