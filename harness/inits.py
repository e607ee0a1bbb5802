"""Named initialisations of a cell's parameters: an axis of the grid (``inits = [...]``, ``--inits``).

An init is written ``NAME`` or ``NAME=VALUE``; the value is the init's one parameter:

- ``default``: torch's U(-1/sqrt(H), 1/sqrt(H)) for every weight and bias.
- ``orthogonal=GAIN`` (Saxe et al. 2014; Henaff et al. 2016): each gate's H x H block of ``weight_hh``
  is GAIN times a Haar-random orthogonal matrix; the rest as ``default``. GAIN defaults to 1.
- ``identity=GAIN`` (Le et al. 2015): each block is GAIN times the identity.
- ``linear=S`` (tanh RNN): zero input weights and biases and W_hh = S x orthogonal. With h_0 = 0 the
  state stays 0, tanh works in its linear regime and g_t shrinks (S < 1) or grows (S > 1) by exactly
  S per step: the closed form the Lyapunov estimate and the decay rate are checked against.
- ``forget_bias=B`` (LSTM; Gers et al. 2000, Jozefowicz et al. 2015): as ``default``, then the forget
  gate's biases are set so that bias_ih + bias_hh = B, half in each. B defaults to 1.
- ``chrono=T_MAX`` (LSTM, GRU; Tallec & Ollivier 2018): as ``default``, then the gate that keeps the
  state gets bias b = log(u), u ~ U(1, T_MAX - 1), and the gate that writes it -b (LSTM: forget f and
  input i; GRU: z keeps h, so b_z = b; gru_cho's keep gate is 1 - z, so b_z = -b), each split half in
  bias_ih and half in bias_hh. T_MAX defaults to the point's number of steps.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from harness.cells import CELLS, DTYPES, Params, cell_spec, param_shapes
from harness.errors import HarnessError, check_choice


@dataclass(frozen=True)
class InitKind:
    """One family of initialisations: its parameter and the cells it applies to."""

    name: str
    parameter: str | None  # what VALUE means (None: the init takes no value)
    default: float | None  # VALUE when not given (None with a parameter: the point's steps)
    cells: tuple[str, ...] = tuple(CELLS)


KINDS: dict[str, InitKind] = {
    kind.name: kind
    for kind in (
        InitKind("default", None, None),
        InitKind("orthogonal", "gain", 1.0),
        InitKind("identity", "gain", 1.0),
        InitKind("linear", "scale", 1.0, ("rnn_tanh",)),
        InitKind("forget_bias", "bias", 1.0, ("lstm",)),
        InitKind("chrono", "T_max", None, ("lstm", "gru", "gru_cho")),
    )
}


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
        return cell in KINDS[self.kind].cells


def parse(spec: str) -> Init:
    """``NAME`` or ``NAME=VALUE``; anything else is a one-line error naming the choices."""
    name, sep, text = str(spec).strip().partition("=")
    kind = KINDS[check_choice("init", name.strip(), KINDS)]
    if not sep:
        return Init(kind.name)
    if kind.parameter is None:
        raise HarnessError(f"init {kind.name!r} takes no value, got {spec!r}")
    try:
        value = float(text)
    except ValueError:
        raise HarnessError(f"init {spec!r}: its {kind.parameter} must be a number, got {text.strip()!r}") from None
    if not math.isfinite(value) or (kind.name == "chrono" and value <= 2) or (kind.name != "forget_bias" and value < 0):
        least = "above 2" if kind.name == "chrono" else "finite and not negative"
        raise HarnessError(f"init {spec!r}: its {kind.parameter} must be {least}, got {text.strip()!r}")
    return Init(kind.name, None if value == kind.default else value)  # orthogonal=1 is orthogonal


def check(specs: list[str] | tuple[str, ...], cells: tuple[str, ...]) -> tuple[str, ...]:
    """The canonical labels of ``specs``; an init that does not apply to one of ``cells`` is an error."""
    labels = []
    for spec in specs:
        init = parse(spec)
        for cell in cells:
            if not init.applies_to(cell):
                applies = ", ".join(KINDS[init.kind].cells)
                raise HarnessError(f"init {init.label!r} does not apply to cell {cell!r} (it applies to: {applies}); "
                                   f"run those cells in a suite of their own")
        if init.label in labels:
            raise HarnessError(f"init {init.label!r} is listed twice")
        labels.append(init.label)
    return tuple(labels)


def random_orthogonal(n: int, rng: np.random.Generator) -> np.ndarray:
    """A Haar-random orthogonal matrix (QR of a Gaussian with the sign fix of Mezzadri 2007)."""
    q, r = np.linalg.qr(rng.standard_normal((n, n)))
    return q * np.sign(np.diag(r))


def _set_gate_bias(params: Params, cell: str, gate: str, bias: np.ndarray | float) -> None:
    """Give ``gate`` the total bias ``bias`` (bias_ih + bias_hh), half in each."""
    hidden = params["bias_ih"].shape[0] // cell_spec(cell).gates
    k = cell_spec(cell).gate_names.index(gate)
    for name in ("bias_ih", "bias_hh"):
        params[name][k * hidden : (k + 1) * hidden] = np.asarray(bias) / 2.0


def init_params(
    cell: str,
    input_size: int,
    hidden_size: int,
    rng: np.random.Generator,
    init: str = "default",
    dtype: str = "float64",
    steps: int | None = None,
) -> Params:
    """Draw parameters in float64 by ``init`` (a spec, see the module) and cast them to ``dtype``.

    Every init first draws the default (so that one seed gives the same readout and data whatever
    the init); ``steps`` is chrono's T_max when the spec gives none."""
    spec = parse(init)
    check_choice("dtype", dtype, DTYPES)
    if not spec.applies_to(cell):
        raise HarnessError(f"init {spec.label!r} does not apply to cell {cell!r}")
    value = spec.value if spec.value is not None else KINDS[spec.kind].default
    bound = 1.0 / np.sqrt(hidden_size)
    params = {name: rng.uniform(-bound, bound, size=shape)
              for name, shape in param_shapes(cell, input_size, hidden_size).items()}
    gates = cell_spec(cell).gate_names
    if spec.kind in ("orthogonal", "identity", "linear"):
        blocks = [np.eye(hidden_size) if spec.kind == "identity" else random_orthogonal(hidden_size, rng)
                  for _ in gates]
        params["weight_hh"] = value * np.concatenate(blocks, axis=0)
    if spec.kind == "linear":
        for name in ("weight_ih", "bias_ih", "bias_hh"):
            params[name] = np.zeros_like(params[name])
    elif spec.kind == "forget_bias":
        _set_gate_bias(params, cell, "f", value)
    elif spec.kind == "chrono":
        t_max = value if value is not None else steps
        if t_max is None or t_max <= 2:
            raise HarnessError(f"init 'chrono' needs T_max above 2 (chrono=T_MAX), got {t_max!r}")
        keep = np.log(rng.uniform(1.0, t_max - 1.0, size=hidden_size))
        if cell == "lstm":
            _set_gate_bias(params, cell, "f", keep)
            _set_gate_bias(params, cell, "i", -keep)
        else:
            _set_gate_bias(params, cell, "z", keep if cell == "gru" else -keep)
    return {name: v.astype(dtype) for name, v in params.items()}
