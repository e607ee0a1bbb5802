"""The derived float64 reference: forward, BPTT and one-step vector-Jacobian products of ANY cell,
from its :class:`~harness.cell.Cell` declaration alone, by torch autograd of its step.

::

    from harness import derived
    out = derived.forward(cell, params, x)                # x (T, B, I)
    out.states["h"], out.y                                # (T, B, size) each state, (T, B, H) readout input
    g = derived.backward(cell, params, x, grad_y)         # grad_y = dL/dy_t (T, B, H)
    g.params["weight_hh"], g.x                            # dL/dparam, dL/dx (T, B, I)
    g.states["h"], g.states["c"], g.states0["h"]          # TOTAL dL/ds_t (T, B, size), dL/ds_0 (B, size)
    v_prev = derived.step_vjp(cell, params, out.previous(t), x[t], v)   # J_t^T v, J_t = ds_t/ds_{t-1}

- ``cell`` is a Cell subclass or instance; ``params`` NumPy arrays by name (cast to float64);
  everything is computed in float64 on the CPU and returned as float64 NumPy arrays.
- The loss is L = sum_t <grad_y[t], y_t> (+ <grad_final[s], s_T> for the gradient arriving from
  beyond the last step, when a sequence is processed in segments: it enters s_T as the next
  segment's first step would see it, as ``dh_after``/``dc_after`` do in :mod:`harness.reference`),
  y_t = cell.readout_input(p, s_t, x_t).
- The total per-step gradient dL/ds_t of a state tensor (the harness's dL/dh_t and dL/dc_t) is the
  gradient with respect to the tensor the step returned, through every use of it: the readout,
  the next step, and the other states of the same step computed from it (LSTM's h_t =
  o * tanh(c_t), so dL/dc_t includes the path through h_t, exactly as the hand-written reference
  defines it). It is read from ONE autograd backward over the whole sequence, each step's state
  tensors retaining their gradients; not from T separate backward calls.
- :func:`step_vjp` is the backward dynamics of the Lyapunov QR recursion: delta_{t-1} = J_t^T
  delta_t over the state vector s = (every state tensor, in the cell's declared order); ``v`` may
  carry K vectors per sequence (K, B, size) -- the columns of a QR frame -- in one call.
- Every step's result is checked (:func:`harness.cell.check_step`) on the first step, and the
  parameters are checked to be present, of the declared shapes and finite
  (:func:`harness.cell.check_params`): a broken cell is a one-line HarnessError naming it.

torch is imported when a function is first called, never at import.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from harness.cell import Cell, as_cell, check_cell_class, check_params, check_readout, check_step, label, one_line
from harness.errors import HarnessError

if TYPE_CHECKING:
    import torch

Params = dict[str, np.ndarray]


@dataclass
class DerivedOutputs:
    """A forward pass: every state tensor after each step and the readout input y_t."""

    states: dict[str, np.ndarray]  # name -> (T, B, size): s_1 .. s_T
    y: np.ndarray  # (T, B, H): what the readout sees at each step
    initial: dict[str, np.ndarray] = field(default_factory=dict)  # name -> (B, size): s_0

    def previous(self, t: int) -> dict[str, np.ndarray]:
        """The state step ``t`` (0-based) starts from: s_0 for t = 0, else the states after step t-1."""
        return {n: (self.initial[n] if t == 0 else s[t - 1]) for n, s in self.states.items()}

    def final(self) -> dict[str, np.ndarray]:
        return {n: s[-1] for n, s in self.states.items()}


@dataclass
class DerivedGradients:
    """A backward pass: dL/dparam, dL/dx and the TOTAL per-step gradient of every state tensor."""

    params: dict[str, np.ndarray]  # name -> dL/dparam, the parameter's shape
    x: np.ndarray  # (T, B, I)
    states: dict[str, np.ndarray]  # name -> total dL/ds_t (T, B, size), t = 1 .. T
    states0: dict[str, np.ndarray]  # name -> dL/ds_0 (B, size): what flows out of the first step


def _torch():
    import torch

    return torch


def _checked(cell: Cell | type[Cell]) -> Cell:
    check_cell_class(cell if isinstance(cell, type) else type(cell))
    return as_cell(cell)


def _float64(cell: Cell, params: Mapping[str, Any], x: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray, int]:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 3:
        raise HarnessError(f"x must be (T, B, I), got shape {x.shape}")
    params = {k: np.asarray(v, dtype=np.float64) for k, v in params.items()}
    hidden = cell.hidden_size(params, x.shape[2])
    check_params(cell, params, x.shape[2], hidden)
    return params, x, hidden


def _leaves(arrays: Mapping[str, np.ndarray], grad: bool) -> dict[str, torch.Tensor]:
    torch = _torch()
    return {k: torch.tensor(v, dtype=torch.float64, requires_grad=grad) for k, v in arrays.items()}


def _initial_state(cell: Cell, batch: int, hidden: int, state0: Mapping[str, np.ndarray] | None,
                   ) -> dict[str, np.ndarray]:
    sizes = cell.state_sizes(hidden)
    state0 = dict(state0 or {})
    unknown = sorted(set(state0) - set(sizes))
    if unknown:
        raise HarnessError(f"{label(cell)}: state0 names {unknown} that are not its states ({', '.join(sizes)})")
    out = {}
    for name, size in sizes.items():
        value = np.zeros((batch, size)) if name not in state0 else np.asarray(state0[name], dtype=np.float64)
        if value.shape != (batch, size):
            raise HarnessError(f"{label(cell)}: state0 {name} must be (B, size) = {(batch, size)}, got {value.shape}")
        out[name] = value
    return out


def _run(cell: Cell, p: dict[str, torch.Tensor], xs: torch.Tensor, s0: dict[str, torch.Tensor],
         hidden: int, retain: bool) -> tuple[list[dict[str, torch.Tensor]], list[torch.Tensor]]:
    """The recurrence in torch: states after each step (retaining their grads if asked) and y_t."""
    states, ys = [], []
    state = s0
    steps, batch = xs.shape[0], xs.shape[1]
    for t in range(steps):
        x_t = xs[t]
        if t == 0:
            new = check_step(cell, p, state, x_t)
        else:
            try:
                new = cell.step(p, state, x_t)
            except Exception as exc:  # a step that fails later on (data-dependent) is named too
                raise HarnessError(f"{label(cell)}: step raised at step {t + 1}: {one_line(exc)}") from None
        if retain:
            new = _retained(new, state)
        try:
            y = cell.readout_input(p, new, x_t)
        except Exception as exc:
            raise HarnessError(f"{label(cell)}: readout_input raised at step {t + 1}: {one_line(exc)}") from None
        if t == 0:
            check_readout(cell, y, batch, hidden, xs.dtype)
        states.append(new)
        ys.append(y)
        state = new
    return states, ys


def _retained(new: dict[str, torch.Tensor], prev: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The step's state tensors, each keeping its .grad after backward.

    The grad is kept on the very tensor the step returned, so that it collects every use of it: the
    readout, the next step, and the other states of the same step computed from it (LSTM's
    h_t = o tanh(c_t): dL/dc_t includes the path through h_t, as in the hand-written reference). A
    tensor that is not a fresh node of this step (a state returned unchanged, one tensor under two
    names, a leaf) gets a view of its own instead, so that each name and step has its own grad."""
    seen = {id(v) for v in prev.values()}
    out = {}
    for name, v in new.items():
        if not v.requires_grad:  # a state that depends on nothing that is differentiated
            out[name] = v
            continue
        if v.is_leaf or id(v) in seen:
            v = v.view_as(v)
        seen.add(id(v))
        v.retain_grad()
        out[name] = v
    return out


def forward(cell: Cell | type[Cell], params: Mapping[str, np.ndarray], x: np.ndarray,
            state0: Mapping[str, np.ndarray] | None = None) -> DerivedOutputs:
    """Run the recurrence from ``state0`` (zero for every state not given) in float64."""
    torch = _torch()
    cell = _checked(cell)
    params, x, hidden = _float64(cell, params, x)
    s0 = _initial_state(cell, x.shape[1], hidden, state0)
    with torch.no_grad():
        states, ys = _run(cell, _leaves(params, False), torch.from_numpy(x), _leaves(s0, False), hidden, False)
    names = [s.name for s in cell.state]
    return DerivedOutputs(
        states={n: torch.stack([s[n] for s in states]).numpy() for n in names},
        y=torch.stack(ys).numpy(),
        initial=s0,
    )


def backward(cell: Cell | type[Cell], params: Mapping[str, np.ndarray], x: np.ndarray, grad_y: np.ndarray,
             state0: Mapping[str, np.ndarray] | None = None,
             grad_final: Mapping[str, np.ndarray] | None = None) -> DerivedGradients:
    """BPTT of L = sum_t <grad_y[t], y_t> (+ <grad_final[s], s_T>) in float64: one forward with
    autograd and one backward call. Returns dL/dparam, dL/dx, total dL/ds_t and dL/ds_0."""
    torch = _torch()
    cell = _checked(cell)
    params, x, hidden = _float64(cell, params, x)
    steps, batch, _ = x.shape
    grad_y = np.asarray(grad_y, dtype=np.float64)
    if grad_y.shape != (steps, batch, hidden):
        raise HarnessError(f"grad_y must be (T, B, H) = {(steps, batch, hidden)}, got {grad_y.shape}")
    s0 = _initial_state(cell, batch, hidden, state0)
    after = _initial_state(cell, batch, hidden, grad_final) if grad_final else None
    p = _leaves(params, True)
    xs = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    s0_t = _leaves(s0, True)
    names = [s.name for s in cell.state]
    with torch.enable_grad():
        states, ys = _run(cell, p, xs, s0_t, hidden, True)
        outputs, grads = [torch.stack(ys)], [torch.from_numpy(grad_y)]
        if after is not None:
            for n in names:
                outputs.append(states[-1][n])
                grads.append(torch.from_numpy(after[n]))
        torch.autograd.backward(outputs, grads)

    def grad_of(t: torch.Tensor) -> np.ndarray:
        return np.zeros(tuple(t.shape)) if t.grad is None else t.grad.numpy()

    return DerivedGradients(
        params={k: grad_of(v) for k, v in p.items()},
        x=grad_of(xs),
        states={n: np.stack([grad_of(s[n]) for s in states]) for n in names},
        states0={n: grad_of(s0_t[n]) for n in names},
    )


def step_vjp(cell: Cell | type[Cell], params: Mapping[str, np.ndarray], state_prev: Mapping[str, np.ndarray],
             x_t: np.ndarray, v: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """J_t^T v for one step, J_t = d s_t / d s_{t-1} at (``state_prev``, ``x_t``), in float64.

    ``state_prev``: name -> (B, size); ``x_t``: (B, I); ``v``: name -> (B, size), or (K, B, size)
    for K vectors per sequence (a QR frame's columns; the result has the same leading K). A state
    missing from ``v`` counts as zero. Returns name -> the same shape as v's."""
    torch = _torch()
    cell = _checked(cell)
    x_t = np.asarray(x_t, dtype=np.float64)
    if x_t.ndim != 2:
        raise HarnessError(f"x_t must be (B, I), got shape {x_t.shape}")
    params = {k: np.asarray(val, dtype=np.float64) for k, val in params.items()}
    hidden = cell.hidden_size(params, x_t.shape[1])
    check_params(cell, params, x_t.shape[1], hidden)
    batch = x_t.shape[0]
    sizes = cell.state_sizes(hidden)
    prev = _initial_state(cell, batch, hidden, state_prev)
    given = {n: np.asarray(a, dtype=np.float64) for n, a in v.items()}
    unknown = sorted(set(given) - set(sizes))
    if unknown:
        raise HarnessError(f"{label(cell)}: v names {unknown} that are not its states ({', '.join(sizes)})")
    ndims = {a.ndim for a in given.values()} or {2}
    if len(ndims) != 1 or ndims.pop() not in (2, 3):
        raise HarnessError("v must hold (B, size) or (K, B, size) arrays, all alike")
    k = next(iter(given.values())).shape[0] if given and next(iter(given.values())).ndim == 3 else None
    lead = (k,) if k is not None else ()
    vs = {}
    for n, size in sizes.items():
        a = given.get(n, np.zeros(lead + (batch, size)))
        if a.shape != lead + (batch, size):
            raise HarnessError(f"{label(cell)}: v[{n!r}] must have shape {lead + (batch, size)}, got {a.shape}")
        vs[n] = a.reshape(-1, size)  # (K * B, size), k-major
    reps = k or 1
    p = _leaves(params, False)
    xs = torch.from_numpy(np.tile(x_t, (reps, 1)))
    s_prev = _leaves({n: np.tile(a, (reps, 1)) for n, a in prev.items()}, True)
    with torch.enable_grad():
        new = check_step(cell, p, s_prev, xs)
        names = list(sizes)
        live = [n for n in names if new[n].requires_grad]
        got = dict(zip(names, [None] * len(names)))
        if live:
            pulled = torch.autograd.grad([new[n] for n in live], [s_prev[n] for n in names],
                                         [torch.from_numpy(vs[n]) for n in live], allow_unused=True)
            got = dict(zip(names, pulled))
    result = {}
    for n, g in got.items():
        arr = np.zeros((reps * batch, sizes[n])) if g is None else g.numpy()
        result[n] = arr.reshape(lead + (batch, sizes[n]))
    return result
