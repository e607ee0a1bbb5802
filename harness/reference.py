"""NumPy reference implementation of the classic cells: forward and backpropagation through time.

The classic cells (rnn_tanh, lstm, gru, gru_cho: :data:`HAND_WRITTEN`) have this hand-written
reference, the fast one; every other cell's float64 reference is derived from its step by autograd
(:mod:`harness.derived`, checked against this one to 1e-12 for the classic cells).
:func:`readout_forward` and :class:`DerivedBackend` pick whichever a cell has.

The structure is that of fast RNN libraries (docs/references.md, "Speed and memory"): the input
projection is one GEMM per chunk of CHUNK steps, each step does one recurrent GEMM plus pointwise
work, and the weight and input gradients are GEMMs over each chunk's CHUNK*B rows, so that beside
the stored activations only a chunk's projections and gate gradients are held. Hidden states are kept as
``hs`` of shape (T+1, B, H) with ``hs[0] = h_0 = 0`` so that ``hs[t]`` is h_{t-1} of step t.
It is the core's oracle (checked against finite differences and torch autograd) and the engine of
the ``numpy`` backend.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from harness import derived
from harness.backend import EVERY_CELL, Backend, Gradients, Outputs, Problem
from harness.cells import Params, cell_class
from harness.errors import HarnessError

#: The cells with a hand-written reference here, in torch's exact conventions.
HAND_WRITTEN = ("rnn_tanh", "lstm", "gru", "gru_cho")

#: Steps whose input projections (forward) and gate gradients (backward) are held at once: the
#: input and weight-gradient GEMMs run per chunk of CHUNK * B rows, large enough for BLAS, and
#: their buffers add a few percent to the stored activations instead of as much again.
CHUNK = 32


@dataclass
class Activations:
    """What forward keeps for backward: hidden states and per-step gate values."""

    hs: np.ndarray  # (T+1, B, H), hs[0] = 0
    saved: dict[str, np.ndarray] = field(default_factory=dict)


def _sigmoid(a: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Overflow-free logistic function: s(a) = (1 + tanh(a/2)) / 2."""
    np.multiply(a, 0.5, out=out)
    np.tanh(out, out=out)
    out += 1.0
    out *= 0.5
    return out


def _input_projection(params: Params, x: np.ndarray, fold_bias_hh: bool) -> np.ndarray:
    seq_len, batch, input_size = x.shape
    xp = (x.reshape(seq_len * batch, input_size) @ params["weight_ih"].T).reshape(seq_len, batch, -1)
    xp += params["bias_ih"]
    if fold_bias_hh:
        xp += params["bias_hh"]
    return xp


def _projected_steps(params: Params, x: np.ndarray, fold_bias_hh: bool) -> Iterator[tuple[int, np.ndarray]]:
    """(t, x_t W_ih^T + b) for every step, projected CHUNK steps at a time: one GEMM per chunk, and
    only a chunk of projections held (a cell that does not keep them as activations)."""
    for c0 in range(0, x.shape[0], CHUNK):
        xp = _input_projection(params, x[c0 : c0 + CHUNK], fold_bias_hh)
        for i in range(xp.shape[0]):
            yield c0 + i, xp[i]


def _forward_rnn_tanh(params: Params, x: np.ndarray, hs: np.ndarray, c0: np.ndarray | None) -> dict:
    w_hh_t = params["weight_hh"].T
    for t, xp in _projected_steps(params, x, fold_bias_hh=True):
        a = np.matmul(hs[t], w_hh_t, out=hs[t + 1])
        a += xp
        np.tanh(a, out=a)
    return {}


def _forward_lstm(params: Params, x: np.ndarray, hs: np.ndarray, c0: np.ndarray | None) -> dict:
    seq_len, batch, _ = x.shape
    H = hs.shape[2]
    w_hh_t = params["weight_hh"].T
    gates = _input_projection(params, x, fold_bias_hh=True)  # overwritten in place by i, f, g, o
    cs = np.zeros_like(hs)
    if c0 is not None:
        cs[0] = c0
    tcs = np.empty((seq_len, batch, H), dtype=x.dtype)
    rec = np.empty((batch, 4 * H), dtype=x.dtype)
    for t in range(seq_len):
        g = gates[t]
        g += np.matmul(hs[t], w_hh_t, out=rec)
        _sigmoid(g[:, : 2 * H], g[:, : 2 * H])
        np.tanh(g[:, 2 * H : 3 * H], out=g[:, 2 * H : 3 * H])
        _sigmoid(g[:, 3 * H :], g[:, 3 * H :])
        c = np.multiply(g[:, H : 2 * H], cs[t], out=cs[t + 1])
        c += g[:, :H] * g[:, 2 * H : 3 * H]
        np.tanh(c, out=tcs[t])
        np.multiply(g[:, 3 * H :], tcs[t], out=hs[t + 1])
    return {"gates": gates, "cs": cs, "tcs": tcs}


def _forward_gru(params: Params, x: np.ndarray, hs: np.ndarray, c0: np.ndarray | None) -> dict:
    seq_len, batch, _ = x.shape
    H = hs.shape[2]
    w_hh_t = params["weight_hh"].T
    rz = np.empty((seq_len, batch, 2 * H), dtype=x.dtype)
    ns = np.empty((seq_len, batch, H), dtype=x.dtype)
    ghn = np.empty((seq_len, batch, H), dtype=x.dtype)
    gh = np.empty((batch, 3 * H), dtype=x.dtype)
    for t, xp in _projected_steps(params, x, fold_bias_hh=False):
        np.matmul(hs[t], w_hh_t, out=gh)
        gh += params["bias_hh"]
        np.add(xp[:, : 2 * H], gh[:, : 2 * H], out=rz[t])
        _sigmoid(rz[t], rz[t])
        ghn[t] = gh[:, 2 * H :]
        n = np.multiply(rz[t, :, :H], ghn[t], out=ns[t])
        n += xp[:, 2 * H :]
        np.tanh(n, out=n)
        # h = (1 - z) n + z h_prev = n + z (h_prev - n)
        h = np.subtract(hs[t], n, out=hs[t + 1])
        h *= rz[t, :, H:]
        h += n
    return {"rz": rz, "ns": ns, "ghn": ghn}


def _forward_gru_cho(params: Params, x: np.ndarray, hs: np.ndarray, c0: np.ndarray | None) -> dict:
    """r, z from [x, h]; n = tanh(x W_in + (r * h) W_hn + b); h = (1 - z) h + z n."""
    seq_len, batch, _ = x.shape
    H = hs.shape[2]
    w_rz_t = params["weight_hh"][: 2 * H].T
    w_n_t = params["weight_hh"][2 * H :].T
    rz = np.empty((seq_len, batch, 2 * H), dtype=x.dtype)
    ns = np.empty((seq_len, batch, H), dtype=x.dtype)
    rh = np.empty((seq_len, batch, H), dtype=x.dtype)
    for t, xp in _projected_steps(params, x, fold_bias_hh=True):
        np.matmul(hs[t], w_rz_t, out=rz[t])
        rz[t] += xp[:, : 2 * H]
        _sigmoid(rz[t], rz[t])
        np.multiply(rz[t, :, :H], hs[t], out=rh[t])
        n = np.matmul(rh[t], w_n_t, out=ns[t])
        n += xp[:, 2 * H :]
        np.tanh(n, out=n)
        h = np.subtract(n, hs[t], out=hs[t + 1])
        h *= rz[t, :, H:]
        h += hs[t]
    return {"rz": rz, "ns": ns, "rh": rh}


_FORWARD: dict[str, Callable[..., dict]] = {
    "rnn_tanh": _forward_rnn_tanh, "lstm": _forward_lstm, "gru": _forward_gru, "gru_cho": _forward_gru_cho,
}


def hand_written(cell: str) -> bool:
    """Whether ``cell`` is one of :data:`HAND_WRITTEN` as the harness's built-in cells define it (a
    third-party cell of the same name, with the built-in ones disabled, is not)."""
    return cell in HAND_WRITTEN and cell_class(cell).__module__.startswith("harness_plugins.cells")


def _check_hand_written(cell: str) -> None:
    if cell not in HAND_WRITTEN:
        raise HarnessError(f"the hand-written reference has no cell {cell!r} (it has {', '.join(HAND_WRITTEN)}); "
                           f"every cell has the derived one, harness.derived")


def readout_forward(cell: str, params: Params, x: np.ndarray) -> np.ndarray:
    """What the readout sees at each step, y_1..y_T (T, B, H), in float64 from a zero state: the
    hand-written reference's h_t for the classic cells, the derived reference's y_t for the others."""
    params = {k: np.asarray(v, dtype=np.float64) for k, v in params.items()}
    x = np.asarray(x, dtype=np.float64)
    if hand_written(cell):
        return forward(cell, params, x).hs[1:]
    return derived.forward(cell_class(cell), params, x).y


def readout_trajectory(cell: str, params: Params, x: np.ndarray, at: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """:func:`readout_forward`'s y_1..y_T, and the state after the first ``at`` steps (s_at, by state
    name; s_0 = 0): where a later computation over the last steps can start instead of step 1."""
    params = {k: np.asarray(v, dtype=np.float64) for k, v in params.items()}
    x = np.asarray(x, dtype=np.float64)
    if hand_written(cell):
        acts = forward(cell, params, x)
        state = {"h": acts.hs[at].copy(), **({"c": acts.saved["cs"][at].copy()} if cell == "lstm" else {})}
        return acts.hs[1:], state
    out = derived.forward(cell_class(cell), params, x)
    return out.y, {name: value.copy() for name, value in out.previous(at).items()}


def forward(
    cell: str, params: Params, x: np.ndarray, h0: np.ndarray | None = None, c0: np.ndarray | None = None
) -> Activations:
    """Run the recurrence from h_0 (and c_0 for LSTM), zero unless given."""
    _check_hand_written(cell)
    seq_len, batch, _ = x.shape
    hs = np.zeros((seq_len + 1, batch, params["weight_hh"].shape[1]), dtype=x.dtype)
    if h0 is not None:
        hs[0] = h0
    return Activations(hs, _FORWARD[cell](params, x, hs, c0))


def outputs(cell: str, acts: Activations) -> Outputs:
    """h_1..h_T (and c_1..c_T for a cell with a cell state) as views of the activations."""
    return Outputs(h=acts.hs[1:], c=acts.saved["cs"][1:] if cell == "lstm" else None)


def _flat(a: np.ndarray) -> np.ndarray:
    return a.reshape(-1, a.shape[-1])


@dataclass
class _Backward:
    """The state one backward pass threads through the steps: per-step outputs and carried gradients."""

    grad_h: np.ndarray  # upstream dL/dh_t (T, B, H)
    dh_all: np.ndarray | None  # total dL/dh_t, when asked for
    dc_all: np.ndarray | None  # total dL/dc_t, for a cell with a cell state, when asked for
    dh_next: np.ndarray  # dL/dh_t arriving from step t + 1 (after the loop: dL/dh_0)
    dc_next: np.ndarray | None  # dL/dc_t arriving from step t + 1 (after the loop: dL/dc_0)

    def dh(self, t: int, out: np.ndarray) -> np.ndarray:
        """The total dL/dh_t: upstream plus what flows back from step t + 1 (kept if asked for)."""
        np.add(self.grad_h[t], self.dh_next, out=out)
        if self.dh_all is not None:
            self.dh_all[t] = out
        return out


# Each runs steps c1 - 1 down to c0 (a chunk), writing the gradients of the input and recurrent
# pre-activations of step t into dgi[t - c0] and dgh[t - c0] (one array where the biases add up),
# and returns the chunk's share of dW_hh.
def _backward_rnn_tanh(params: Params, acts: Activations, b: _Backward, c0: int, c1: int,
                       dgi: np.ndarray, dgh: np.ndarray) -> np.ndarray:
    hs, w_hh = acts.hs, params["weight_hh"]
    batch, H = b.dh_next.shape
    dh, tmp = np.empty((batch, H), dtype=hs.dtype), np.empty((batch, H), dtype=hs.dtype)
    for t in range(c1 - 1, c0 - 1, -1):
        da = dgi[t - c0]
        b.dh(t, dh)
        np.multiply(hs[t + 1], hs[t + 1], out=tmp)
        np.subtract(1.0, tmp, out=tmp)
        np.multiply(dh, tmp, out=da)
        np.matmul(da, w_hh, out=b.dh_next)
    return _flat(dgi).T @ _flat(hs[c0:c1])


def _backward_lstm(params: Params, acts: Activations, b: _Backward, c0: int, c1: int,
                   dgi: np.ndarray, dgh: np.ndarray) -> np.ndarray:
    hs, w_hh = acts.hs, params["weight_hh"]
    gates, cs, tcs = acts.saved["gates"], acts.saved["cs"], acts.saved["tcs"]
    batch, H = b.dh_next.shape
    dh, dc, tmp = (np.empty((batch, H), dtype=hs.dtype) for _ in range(3))
    for t in range(c1 - 1, c0 - 1, -1):
        i, f, g, o = (gates[t, :, k * H : (k + 1) * H] for k in range(4))
        tc = tcs[t]
        da = dgi[t - c0]
        b.dh(t, dh)
        # dc = dh * o * (1 - tanh(c)^2) + dc_next
        np.multiply(tc, tc, out=tmp)
        np.subtract(1.0, tmp, out=tmp)
        tmp *= o
        np.multiply(dh, tmp, out=dc)
        dc += b.dc_next
        if b.dc_all is not None:
            b.dc_all[t] = dc
        np.multiply(dc, g, out=da[:, :H])
        da[:, :H] *= i * (1.0 - i)
        np.multiply(dc, cs[t], out=da[:, H : 2 * H])
        da[:, H : 2 * H] *= f * (1.0 - f)
        np.multiply(dc, i, out=da[:, 2 * H : 3 * H])
        da[:, 2 * H : 3 * H] *= 1.0 - g * g
        np.multiply(dh, tc, out=da[:, 3 * H :])
        da[:, 3 * H :] *= o * (1.0 - o)
        np.multiply(dc, f, out=b.dc_next)
        np.matmul(da, w_hh, out=b.dh_next)
    return _flat(dgi).T @ _flat(hs[c0:c1])


def _backward_gru(params: Params, acts: Activations, b: _Backward, c0: int, c1: int,
                  dgi: np.ndarray, dgh: np.ndarray) -> np.ndarray:
    hs, w_hh = acts.hs, params["weight_hh"]
    rz, ns, ghn = acts.saved["rz"], acts.saved["ns"], acts.saved["ghn"]
    batch, H = b.dh_next.shape
    dh, dan = np.empty((batch, H), dtype=hs.dtype), np.empty((batch, H), dtype=hs.dtype)
    for t in range(c1 - 1, c0 - 1, -1):
        r, z, n = rz[t, :, :H], rz[t, :, H:], ns[t]
        di, dr = dgi[t - c0], dgh[t - c0]
        b.dh(t, dh)
        # d a_n = dh (1 - z) (1 - n^2)
        np.multiply(n, n, out=dan)
        np.subtract(1.0, dan, out=dan)
        np.multiply(dan, 1.0 - z, out=dan)
        dan *= dh
        di[:, 2 * H :] = dan
        np.multiply(dan, r, out=dr[:, 2 * H :])
        # d a_r = dan * gh_n * r (1 - r)
        np.multiply(dan, ghn[t], out=di[:, :H])
        di[:, :H] *= r * (1.0 - r)
        # d a_z = dh (h_prev - n) z (1 - z)
        np.subtract(hs[t], n, out=di[:, H : 2 * H])
        di[:, H : 2 * H] *= dh
        di[:, H : 2 * H] *= z * (1.0 - z)
        dr[:, : 2 * H] = di[:, : 2 * H]
        np.matmul(dr, w_hh, out=b.dh_next)
        b.dh_next += dh * z
    return _flat(dgh).T @ _flat(hs[c0:c1])


def _backward_gru_cho(params: Params, acts: Activations, b: _Backward, c0: int, c1: int,
                      dgi: np.ndarray, dgh: np.ndarray) -> np.ndarray:
    hs, w_hh = acts.hs, params["weight_hh"]
    rz, ns, rh = acts.saved["rz"], acts.saved["ns"], acts.saved["rh"]
    batch, H = b.dh_next.shape
    w_n, w_rz = w_hh[2 * H :], w_hh[: 2 * H]
    dh, drh = np.empty((batch, H), dtype=hs.dtype), np.empty((batch, H), dtype=hs.dtype)
    for t in range(c1 - 1, c0 - 1, -1):
        r, z, n = rz[t, :, :H], rz[t, :, H:], ns[t]
        di = dgi[t - c0]
        b.dh(t, dh)
        dan = di[:, 2 * H :]
        np.multiply(n, n, out=dan)
        np.subtract(1.0, dan, out=dan)
        dan *= z
        dan *= dh
        np.matmul(dan, w_n, out=drh)
        np.multiply(drh, hs[t], out=di[:, :H])
        di[:, :H] *= r * (1.0 - r)
        np.subtract(n, hs[t], out=di[:, H : 2 * H])
        di[:, H : 2 * H] *= dh
        di[:, H : 2 * H] *= z * (1.0 - z)
        np.matmul(di[:, : 2 * H], w_rz, out=b.dh_next)
        b.dh_next += dh * (1.0 - z)
        b.dh_next += drh * r
    return np.concatenate([_flat(dgi[:, :, : 2 * H]).T @ _flat(hs[c0:c1]),
                           _flat(dgi[:, :, 2 * H :]).T @ _flat(rh[c0:c1])])


_BACKWARD: dict[str, Callable[..., np.ndarray]] = {
    "rnn_tanh": _backward_rnn_tanh, "lstm": _backward_lstm, "gru": _backward_gru, "gru_cho": _backward_gru_cho,
}
_SEPARATE_DGH = ("gru",)  # its recurrent pre-activation gradient differs from the input one (r * (...))


def backward(
    cell: str,
    params: Params,
    x: np.ndarray,
    acts: Activations,
    grad_h: np.ndarray,
    per_step: bool = False,
    dh_after: np.ndarray | None = None,
    dc_after: np.ndarray | None = None,
) -> Gradients:
    """Backpropagation through time of ``grad_h`` (upstream dL/dh_t, (T, B, H)).

    ``dh_after`` and ``dc_after`` are the gradients arriving from beyond the last step (zero for a
    whole sequence; the next segment's dL/dh_0, dL/dc_0 when a sequence is processed in segments).
    The result carries dL/dh_0 (and dL/dc_0) for that chaining."""
    _check_hand_written(cell)
    has_c = cell == "lstm"
    batch, H = grad_h.shape[1:]

    def carried(after: np.ndarray | None) -> np.ndarray:
        return np.zeros((batch, H), dtype=x.dtype) if after is None else after.astype(x.dtype, copy=True)

    state = _Backward(
        grad_h=grad_h,
        dh_all=np.empty_like(grad_h, dtype=x.dtype) if per_step else None,
        dc_all=np.empty_like(grad_h, dtype=x.dtype) if per_step and has_c else None,
        dh_next=carried(dh_after),
        dc_next=carried(dc_after) if has_c else None,
    )
    w_ih = params["weight_ih"]
    seq_len, _, input_size = x.shape
    rows = min(CHUNK, seq_len)
    dgi = np.empty((rows, batch, w_ih.shape[0]), dtype=x.dtype)
    dgh = np.empty_like(dgi) if cell in _SEPARATE_DGH else dgi
    grads = {name: np.zeros_like(params[name], dtype=x.dtype) for name in params}
    dx = np.empty_like(x)
    for c1 in range(seq_len, 0, -rows):  # a chunk of steps at a time, from the last
        c0 = max(0, c1 - rows)
        di, dr = dgi[: c1 - c0], dgh[: c1 - c0]
        grads["weight_hh"] += _BACKWARD[cell](params, acts, state, c0, c1, di, dr)
        flat = _flat(di)
        grads["weight_ih"] += flat.T @ _flat(x[c0:c1])
        grads["bias_ih"] += flat.sum(axis=0)
        grads["bias_hh"] += _flat(dr).sum(axis=0)
        np.matmul(flat, w_ih, out=_flat(dx[c0:c1]))
    return Gradients(params=grads, x=dx, h=state.dh_all, c=state.dc_all, h0=state.dh_next, c0=state.dc_next)


def step_vjp(cell: str, params: Params, x: np.ndarray, acts: Activations, t: int, dh: np.ndarray,
             dc: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """The vector-Jacobian product of one step: (dL/dh_{t-1}, dL/dc_{t-1}) pulled back from
    ``dh`` = dL/dh_t and ``dc`` = dL/dc_t (a cell with a cell state) through step ``t`` (0-based) of
    the trajectory ``acts`` that :func:`forward` ran on ``x``, with no upstream gradient at the step.

    ``dh`` and ``dc`` are (B, H), or (B, k, H) for k vectors per sequence, each pulled back through
    its own sequence's step (the Lyapunov QR recursion, measure/dynamics.py); the results have their shape."""
    steps, batch, _ = x.shape
    hidden = acts.hs.shape[2]
    has_c = cell == "lstm"
    copies = dh.reshape(batch, -1, hidden).shape[1]
    rows = batch * copies  # sequence-major: a sequence's ``copies`` vectors are consecutive rows
    back = backward(cell, params, np.repeat(x[t : t + 1], copies, axis=1), _step_activations(acts, t, steps, copies),
                    np.zeros((1, rows, hidden), dtype=x.dtype), dh_after=dh.reshape(rows, hidden),
                    dc_after=dc.reshape(rows, hidden) if has_c else None)
    return back.h0.reshape(dh.shape), back.c0.reshape(dh.shape) if has_c else None


def _step_activations(acts: Activations, t: int, steps: int, copies: int) -> Activations:
    """Step t's activations, each sequence repeated ``copies`` times (consecutive rows)."""
    def one(a: np.ndarray) -> np.ndarray:
        extra = a.shape[0] - steps  # hs and the LSTM's cs hold the state before step 1 too
        return np.repeat(a[t : t + 1 + extra], copies, axis=1)

    return Activations(one(acts.hs), {name: one(a) for name, a in acts.saved.items()})


class ReferenceBackend(Backend):
    """This module as a backend: the engine of the ``numpy`` plugin and the conformance check's
    reference for training."""

    name = "reference"
    cells = HAND_WRITTEN

    def setup(self, problem: Problem) -> None:
        """Nothing to move: the reference works on the problem's arrays."""

    def set_upstream(self, grad_h: np.ndarray) -> None:
        self._grad_h = grad_h

    def teardown(self) -> None:
        super().teardown()
        self._acts = self._grads = self._grad_h = None

    def forward(self) -> None:
        p = self.problem
        self._acts = forward(p.cell, p.params, p.x)

    def backward(self, per_step: bool = False) -> None:
        p = self.problem
        with np.errstate(over="ignore", invalid="ignore"):  # explosion is a result, not an error
            self._grads = backward(p.cell, p.params, p.x, self._acts, self._grad_h, per_step)

    def outputs(self) -> Outputs:
        return outputs(self.problem.cell, self._acts)

    def gradients(self) -> Gradients:
        return self._grads


class DerivedBackend(Backend):
    """Any registered cell through the derived float64 reference (:mod:`harness.derived`), results
    cast to the problem's dtype: the oracle of ``harness check`` and of the training check for a cell
    without a hand-written reference. Slow (autograd in float64), never timed."""

    name = "derived"
    cells = (EVERY_CELL,)

    def setup(self, problem: Problem) -> None:
        """Nothing to move."""

    def set_upstream(self, grad_h: np.ndarray) -> None:
        self._grad_h = grad_h

    def teardown(self) -> None:
        super().teardown()
        self._out = self._grads = self._grad_h = None

    def forward(self) -> None:
        p = self.problem
        self._out = derived.forward(cell_class(p.cell), p.params, p.x)

    def backward(self, per_step: bool = False) -> None:
        p = self.problem
        with np.errstate(over="ignore", invalid="ignore"):
            g = derived.backward(cell_class(p.cell), p.params, p.x, self._grad_h)
        cast = {k: v.astype(p.dtype) for k, v in g.states.items()}
        self._grads = Gradients(params={k: v.astype(p.dtype) for k, v in g.params.items()}, x=g.x.astype(p.dtype),
                                h=cast.get("h") if per_step else None, c=cast.get("c") if per_step else None,
                                states=cast if per_step else None)

    def outputs(self) -> Outputs:
        dtype = self.problem.dtype
        states = {k: v.astype(dtype) for k, v in self._out.states.items()}
        return Outputs(h=self._out.y.astype(dtype), c=states.get("c"), states=states)

    def gradients(self) -> Gradients:
        return self._grads
