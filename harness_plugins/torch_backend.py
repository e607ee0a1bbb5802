"""The ``torch-cpu`` and ``torch-cuda`` backends: every registered cell.

Any cell runs on the generic path (:class:`GenericPath`): stepped in torch from the cell's own step
function (:meth:`harness.cell.Cell.step`), differentiated by autograd. The timed backward asks
autograd for what training needs (the parameter gradients and dL/dx) and nothing more; the exact
backward (``per_step=True``) also asks, in the same single backward pass, for the gradient of every
state tensor each step returned: the total per-step dL/ds_t of every state (dL/dh_t, LSTM's dL/dc_t,
LRU's dL/dre_t and dL/dim_t).

The classic cells torch has layers for (rnn_tanh, lstm, gru) keep their fused paths. Timed path:
the fused library layers (nn.RNN / nn.LSTM / nn.GRU: oneDNN on the CPU for float32 LSTM, cuDNN on
CUDA). Per-step gradients, which a fused kernel does not expose:

- rnn_tanh and LSTM, through the fused layer itself: the recurrent part of dL/dh_{t-1} is
  W_hh^T dL/da_t, which the layer's dL/dx already computes for an input extended by H zero features
  whose input weights are W_hh (the forward is unchanged). So g_t comes from one fused forward +
  backward (the extended layer is built once per problem layout); LSTM's dL/dc_t then follows from
  one linear recursion over the forget gates, recomputed for all steps with one GEMM from the
  layer's h (and tanh(c_t) = h_t / o_t), scanned in O(sqrt T) operations (``_suffix_scan``).
- GRU, stepped: its recurrent term r * (W_hn h + b_hn) is not a linear function of an input, so the
  same equations are stepped in torch with a zero tensor added to each h_t, whose gradient is the
  total dL/dh_t (``_stepped_backward``, also the reference the fused path is tested against).

The ``torch-cpu-scan`` and ``torch-cuda-scan`` backends run the cells that declare a parallel form
(:meth:`harness.cell.Cell.scan`: mingru and lru, by a log-space scan over t) through it
(:class:`ScanPath`), and skip every other cell with that reason, so that one run times a cell's
scan beside its stepped path: ``harness run SUITE --backends torch-cpu,torch-cpu-scan --cells
mingru,lru`` (docs/performance.md, "Scan against loop"). Their exact per-step gradients come from
the same single backward: the scan runs once more with a zero tensor added to every state (the
``add`` of Cell.scan), whose gradient is the total dL/ds_t.

The ``torch-cpu-generic`` and ``torch-cuda-generic`` backends run every cell on the generic path,
rnn_tanh, lstm and gru included, so that one run times the generic path beside the fused layers
and the hand-written exact paths: ``harness run SUITE --backends torch-cpu,torch-cpu-generic
--cells lstm --time-exact``. They are left out of ``--backends all`` (``Backend.in_all``).

torch is imported when a backend is first used, never at plugin import, so that listing plugins
stays fast and a missing torch only makes these unavailable.
"""
from __future__ import annotations

import importlib.util
import math
import os
import shutil
from typing import ClassVar

import numpy as np

from harness import Availability, Backend, Gradients, Outputs, Problem, hookimpl
from harness.backend import EVERY_CELL
from harness.cell import Cell, check_step, has_scan, label
from harness.cells import PARAM_NAMES, cell, cell_class, cell_names, from_plugin
from harness.errors import HarnessError
from harness.measure import RssMeter
from harness.reference import hand_written

HARNESS_PLUGIN_API = 3

_MODULES = {"rnn_tanh": "RNN", "lstm": "LSTM", "gru": "GRU"}


def _torch_missing() -> Availability | None:
    if importlib.util.find_spec("torch") is None:
        return Availability(False, "torch is not installed (pip install 'rnn-grad-harness[torch]')")
    return None


# One step of each cell from the hoisted input projection xp = x W_ih^T + b_ih and gh = h W_hh^T + b_hh;
# returns (h_t, c_t). For LSTM it returns sigmoid(o) as h: h = o * tanh(c) once c has received its zero.
def _rnn_tanh_step(torch, xp, gh, h, c):
    return torch.tanh(xp + gh), None


def _lstm_step(torch, xp, gh, h, c):
    i, f, g, o = (xp + gh).chunk(4, dim=1)
    return torch.sigmoid(o), torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)


def _gru_step(torch, xp, gh, h, c):
    xr, xz, xn = xp.chunk(3, dim=1)
    hr, hz, hn = gh.chunk(3, dim=1)
    r, z = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
    n = torch.tanh(xn + r * hn)
    return n + z * (h - n), None


_STEPS = {"rnn_tanh": _rnn_tanh_step, "lstm": _lstm_step, "gru": _gru_step}
#: Cells whose per-step gradients come from the fused layer (the rest are stepped; module docstring).
FUSED_PROFILE_CELLS = ("rnn_tanh", "lstm")
#: Cells with a fused torch layer (nn.RNN, nn.LSTM, nn.GRU); every other cell runs on the generic path.
FUSED_CELLS = tuple(_MODULES)


class GenericPath:
    """Any cell, stepped in torch from its step function, with autograd (the module docstring).

    ``forward`` runs the recurrence from zero states, keeping each step's state tensors (the graph)
    and y_t, what the readout sees; ``backward(grad_y, per_step)`` is one autograd backward of
    sum_t <grad_y_t, y_t> for the parameters and x, and with ``per_step`` also for every state
    tensor of every step. Results are torch tensors on the problem's device."""

    def __init__(self, torch, problem: Problem, device: str):
        self.torch = torch
        self.name = problem.cell
        self.cell = cell(problem.cell)
        cls = type(self.cell)
        T, B, I, H = problem.shape
        self.names = [s.name for s in cls.state]
        self.readout = cls.readout_input is not Cell.readout_input  # else y_t is the output state
        self.output = cls.output
        self.params = {k: torch.from_numpy(v).to(device).requires_grad_(True) for k, v in problem.params.items()}
        self.x = torch.from_numpy(problem.x).to(device).requires_grad_(True)
        dtype = getattr(torch, problem.dtype)
        self.state0 = {s.name: torch.zeros(B, s.size_for(H), dtype=dtype, device=device) for s in cls.state}
        self.checked = False  # the first step of the first forward is checked (names, shapes, dtype, device)
        self.states: list[dict] = []
        self.y = None

    def forward(self) -> None:
        torch, p, step = self.torch, self.params, self.cell.step
        states, ys = [], []
        with torch.enable_grad():
            state = self.state0
            for x_t in self.x.unbind(0):  # unbind, not x[t]: one view per step, one gradient node
                if self.checked:
                    new = step(p, state, x_t)
                else:
                    try:
                        new = check_step(self.cell, p, state, x_t)
                    except HarnessError as exc:
                        raise HarnessError(f"{exc}{from_plugin(self.name)}") from None
                    self.checked = True
                new = _own_tensors(new, state)
                states.append(new)
                if self.readout:
                    ys.append(self.cell.readout_input(p, new, x_t))
                state = new
            self.y = torch.stack(ys) if self.readout else torch.stack([s[self.output] for s in states])
        self.states = states

    def backward(self, grad_y, per_step: bool):
        """(param grads by name, dL/dx, per-step state grads by name or None), from ONE backward."""
        torch = self.torch
        inputs = [*self.params.values(), self.x]
        live = [(t, n) for t, s in enumerate(self.states) for n in self.names if s[n].requires_grad] if per_step else []
        inputs += [self.states[t][n] for t, n in live]
        with torch.enable_grad():
            grads = torch.autograd.grad(self.y, inputs, grad_outputs=grad_y, allow_unused=True)
        grads = [torch.zeros_like(i) if g is None else g for i, g in zip(inputs, grads)]
        count = len(self.params)
        params = dict(zip(self.params, grads[:count]))
        dx = grads[count]
        if not per_step:
            return params, dx, None
        found = dict(zip(live, grads[count + 1 :]))
        per_state = {}
        for n in self.names:
            zero = torch.zeros_like(self.state0[n])
            per_state[n] = torch.stack([found.get((t, n), zero) for t in range(len(self.states))])
        return params, dx, per_state

    def outputs(self) -> tuple:
        """(y, states by name), detached."""
        with self.torch.no_grad():
            return self.y.detach(), {n: self.torch.stack([s[n] for s in self.states]).detach() for n in self.names}


class ScanPath(GenericPath):
    """A cell with a parallel form (:meth:`harness.cell.Cell.scan`): every state of the sequence
    from one call, y_t from one :meth:`~harness.cell.Cell.readout_input` over all t, autograd
    backward. With ``per_step`` the scan runs again with zero tensors added to the states (its
    ``add``), in the same single backward: their gradients are the total dL/ds_t."""

    def _scan(self, add=None) -> dict:
        try:
            states = self.cell.scan(self.params, self.x, add)
        except HarnessError:
            raise
        except Exception as exc:
            raise HarnessError(f"{label(self.cell)}: scan raised {type(exc).__name__}: {exc}"
                               f"{from_plugin(self.name)}") from None
        if not self.checked:
            want = (self.x.shape[0],)
            if not isinstance(states, dict) or set(states) != set(self.names):
                got = sorted(states) if isinstance(states, dict) else type(states).__name__
                raise HarnessError(f"{label(self.cell)}: scan returned {got}, expected a dict of its states "
                                   f"{self.names}{from_plugin(self.name)}")
            for n in self.names:
                s, s0 = states[n], self.state0[n]
                if tuple(s.shape) != want + tuple(s0.shape) or s.dtype != s0.dtype or s.device != s0.device:
                    raise HarnessError(f"{label(self.cell)}: scan returned state {n} as {tuple(s.shape)} {s.dtype} on "
                                       f"{s.device}, expected {want + tuple(s0.shape)} {s0.dtype} on {s0.device} "
                                       f"(T, B, size){from_plugin(self.name)}")
            self.checked = True
        return states

    def _readout(self, states):
        return self.cell.readout_input(self.params, states, self.x) if self.readout else states[self.output]

    def forward(self) -> None:
        with self.torch.enable_grad():
            states = self._scan()
            self.y = self._readout(states)
        self.stacked = states

    def backward(self, grad_y, per_step: bool):
        torch = self.torch
        inputs = [*self.params.values(), self.x]
        y = self.y
        if per_step:
            add = {n: torch.zeros_like(self.stacked[n]).requires_grad_(True) for n in self.names}
            with torch.enable_grad():
                y = self._readout(self._scan(add))
            inputs += [add[n] for n in self.names]
        with torch.enable_grad():
            grads = torch.autograd.grad(y, inputs, grad_outputs=grad_y, allow_unused=True)
        grads = [torch.zeros_like(i) if g is None else g for i, g in zip(inputs, grads)]
        count = len(self.params)
        params = dict(zip(self.params, grads[:count]))
        per_state = dict(zip(self.names, grads[count + 1 :])) if per_step else None
        return params, grads[count], per_state

    def outputs(self) -> tuple:
        with self.torch.no_grad():
            return self.y.detach(), {n: v.detach() for n, v in self.stacked.items()}


def _own_tensors(new: dict, prev: dict) -> dict:
    """A step's states, each a tensor of its own: a state returned unchanged, one tensor under two
    names, or a leaf gets a view, so that each state of each step has its own gradient."""
    seen = {id(v) for v in prev.values()}
    out = {}
    for name, v in new.items():
        if v.requires_grad and (v.is_leaf or id(v) in seen):
            v = v.view_as(v)
        seen.add(id(v))
        out[name] = v
    return out


def _suffix_scan(torch, a, decay):
    """y_t = a_t + decay_t y_{t+1} over the leading axis (y_{T-1} = a_{T-1}), in O(sqrt T) operations
    rather than T (each a kernel launch on a GPU): steps run in K = ceil(sqrt T) chunks, scanned side by
    side with no carry-in; then each chunk's first value takes its carry from the chunk after it (one
    operation per chunk), and every value adds its carry times the product of the decays up to its
    chunk's end. Exact but for the order of the products (a few ulp)."""
    steps = a.shape[0]
    size = math.isqrt(steps - 1) + 1  # ceil(sqrt(steps))
    chunks = -(-steps // size)
    pad = chunks * size - steps  # zero steps in front: computed last, they change nothing
    y = torch.cat([a.new_zeros(pad, *a.shape[1:]), a]).unflatten(0, (chunks, size))
    m = torch.cat([decay.new_zeros(pad, *decay.shape[1:]), decay]).unflatten(0, (chunks, size))
    for k in range(size - 2, -1, -1):  # every chunk at once, without carry-in
        y[:, k].addcmul_(m[:, k], y[:, k + 1])
        m[:, k].mul_(m[:, k + 1])  # m[:, k] becomes the product of m[:, k:]: how far a carry reaches
    first = y[:, 0].clone()  # each chunk's true first value, from the last chunk back
    for c in range(chunks - 2, -1, -1):
        first[c].addcmul_(m[c, 0], first[c + 1])
    y[:-1].addcmul_(m[:-1], first[1:, None])
    return y.flatten(0, 1)[pad:]


class CudaEventClock:
    """CUDA events around a block of calls; elapsed time read after synchronising the end event."""

    def __init__(self, torch):
        self._start = torch.cuda.Event(enable_timing=True)
        self._end = torch.cuda.Event(enable_timing=True)

    def start(self) -> None:
        self._start.record()

    def stop(self) -> float:
        self._end.record()
        self._end.synchronize()
        return self._start.elapsed_time(self._end) / 1e3


class CudaMemoryMeter:
    """Peak bytes the CUDA caching allocator handed out above the baseline."""

    tool = "torch.cuda.max_memory_allocated"

    def __init__(self, torch):
        self._torch, self.peak = torch, 0

    def __enter__(self):
        self._torch.cuda.synchronize()
        self._torch.cuda.reset_peak_memory_stats()
        self._base = self._torch.cuda.memory_allocated()
        return self

    def __exit__(self, *exc):
        self._torch.cuda.synchronize()
        self.peak = max(0, self._torch.cuda.max_memory_allocated() - self._base)


class _TorchBackend(Backend):
    cells = (EVERY_CELL,)  # the fused layers for rnn_tanh, lstm and gru; every other cell on the generic path
    device: ClassVar[str]

    def __init__(self, threads: int | None = None):
        super().__init__(threads)
        import torch

        self.torch = torch
        self._wide = None  # the extended layer of the per-step path (``_wide_layer``)
        self._generic: GenericPath | None = None  # the problem's generic path, for a cell without a fused layer
        if threads:
            torch.set_num_threads(threads)

    def info(self) -> dict:
        t = self.torch
        return {**super().info(), "torch": t.__version__, "device": self.device,
                "torch_threads": t.get_num_threads(), "mkldnn": t.backends.mkldnn.is_available()}

    @staticmethod
    def fused(cell_name: str) -> bool:
        """Whether ``cell_name`` runs on a fused torch layer (else on the generic path)."""
        return cell_name in FUSED_CELLS and hand_written(cell_name)

    def setup(self, problem: Problem) -> None:
        if not self.fused(problem.cell):
            self._generic = GenericPath(self.torch, problem, self.device)
            return
        self._generic = None
        torch = self.torch
        seq_len, batch, input_size, hidden = problem.shape
        dtype = getattr(torch, problem.dtype)
        kwargs = {"nonlinearity": "tanh"} if problem.cell == "rnn_tanh" else {}
        module = getattr(torch.nn, _MODULES[problem.cell])(input_size, hidden, **kwargs)
        module = module.to(device=self.device, dtype=dtype)
        with torch.no_grad():
            for name in PARAM_NAMES:
                getattr(module, name + "_l0").copy_(torch.from_numpy(problem.params[name]))
        self.module = module
        self.weights = [getattr(module, name + "_l0") for name in PARAM_NAMES]
        self.x = torch.from_numpy(problem.x).to(self.device).requires_grad_(True)

    def set_upstream(self, grad_h: np.ndarray) -> None:
        self.grad_h = self.torch.from_numpy(grad_h).to(self.device)

    def teardown(self) -> None:
        super().teardown()
        self.module = self.weights = self.out = self.x = self.grad_h = self._grads = self._wide = None
        self._generic = None

    # -- timed path: the fused layer, or the generic one ------------------------------------------
    def forward(self) -> None:
        if self._generic is not None:
            self._generic.forward()
            return
        self.out, _ = self.module(self.x)

    def backward(self, per_step: bool = False) -> None:
        if self._generic is not None:
            self._grads = self._generic.backward(self.grad_h, per_step)
            return
        if per_step:
            fused = self.problem.cell in FUSED_PROFILE_CELLS
            self._grads = self._fused_backward() if fused else self._stepped_backward()
            return
        grads = self.torch.autograd.grad(self.out, [*self.weights, self.x], grad_outputs=self.grad_h)
        self._grads = (grads[:4], grads[4], None, None)

    # -- per-step gradients: through the fused layer, or stepped with a zero added to each state --
    def _stepped(self, zeros_h=None, zeros_c=None):
        torch = self.torch
        w_ih, w_hh, b_ih, b_hh = self.weights
        seq_len, batch, _ = self.x.shape
        hidden = w_hh.shape[1]
        # unbind, not x[t]: indexing would make autograd build a full (T, B, .) gradient per step.
        xp = (self.x @ w_ih.T + b_ih).unbind(0)
        zh = zeros_h.unbind(0) if zeros_h is not None else None
        zc = zeros_c.unbind(0) if zeros_c is not None else None
        h = torch.zeros(batch, hidden, dtype=self.x.dtype, device=self.device)
        c = torch.zeros_like(h)
        step = _STEPS[self.problem.cell]
        hs, cs = [], []
        for t in range(seq_len):
            h_new, c_new = step(torch, xp[t], h @ w_hh.T + b_hh, h, c)
            if c_new is not None:
                c = c_new if zc is None else c_new + zc[t]
                h_new = h_new * torch.tanh(c)
                cs.append(c)
            h = h_new if zh is None else h_new + zh[t]
            hs.append(h)
        return torch.stack(hs), (torch.stack(cs) if cs else None)

    def _fused_backward(self):
        """Every gradient, and the total dL/dh_t (dL/dc_t), from one fused forward + backward over
        the input extended by H zero features with input weights W_hh (see the module docstring)."""
        torch = self.torch
        w_ih, w_hh, b_ih, b_hh = self.weights
        inputs = self.x.shape[2]
        wide, x = self._wide_layer()
        with torch.no_grad():  # the current weights and input (training changes them between calls)
            wide.weight_ih_l0[:, :inputs].copy_(w_ih)
            wide.weight_ih_l0[:, inputs:].copy_(w_hh)
            for name, w in zip(("weight_hh_l0", "bias_ih_l0", "bias_hh_l0"), (w_hh, b_ih, b_hh)):
                getattr(wide, name).copy_(w)
            x[:, :, :inputs].copy_(self.x)
        with torch.enable_grad():
            out, _ = wide(x)
            params = [getattr(wide, n + "_l0") for n in PARAM_NAMES]
            d_wih, d_whh, d_bih, d_bhh, dx = torch.autograd.grad(out, [*params, x], grad_outputs=self.grad_h)
        dh = self.grad_h.clone()
        dh[:-1] += dx[1:, :, inputs:]  # W_hh^T dL/da_{t+1}: the recurrent part of dL/dh_t
        dc = self._cell_gradient(out.detach(), dh) if self.problem.cell == "lstm" else None
        return (d_wih[:, :inputs], d_whh, d_bih, d_bhh), dx[:, :, :inputs], dh, dc

    def _wide_layer(self):
        """The layer over the extended input and that input (zeros after the first I features), made
        on the device once per problem layout: building a layer costs more than a short run on a GPU."""
        if self._wide is None:
            torch = self.torch
            seq_len, batch, inputs = self.x.shape
            hidden = self.weights[1].shape[1]
            kwargs = {"nonlinearity": "tanh"} if self.problem.cell == "rnn_tanh" else {}
            wide = getattr(torch.nn, _MODULES[self.problem.cell])(
                inputs + hidden, hidden, device=self.device, dtype=self.x.dtype, **kwargs)
            x = self.x.new_zeros(seq_len, batch, inputs + hidden, requires_grad=True)
            self._wide = wide, x
        return self._wide

    def _cell_gradient(self, hs, dh):
        """LSTM's total dL/dc_t from the total dL/dh_t: dc_t = dh_t o_t (1 - tanh^2 c_t) + f_{t+1} dc_{t+1}.
        The forget and output gates of every step come from one GEMM over [x_t, h_{t-1}] (the layer's
        h), tanh(c_t) = h_t / o_t, and the recursion is a linear scan (``_suffix_scan``)."""
        torch = self.torch
        w_ih, w_hh, b_ih, b_hh = self.weights
        with torch.no_grad():
            _, w_f, _, w_o = torch.cat([w_ih, w_hh], dim=1).chunk(4)
            _, b_f, _, b_o = (b_ih + b_hh).chunk(4)
            xh = torch.cat([self.x, torch.cat([torch.zeros_like(hs[:1]), hs[:-1]])], dim=2)
            f, o = torch.sigmoid(xh @ torch.cat([w_f, w_o]).T + torch.cat([b_f, b_o])).chunk(2, dim=2)
            # dh o (1 - (h/o)^2) = dh (o - h^2 / o); an o that underflowed to 0 has h = 0 and no gradient
            dc = torch.where(o > 0, dh * (o - hs * hs / o), torch.zeros_like(o))
            decay = torch.cat([f[1:], torch.zeros_like(f[:1])])  # f_{t+1}; nothing after the last step
            return _suffix_scan(torch, dc, decay)

    def _stepped_backward(self):
        torch = self.torch
        zeros_h = torch.zeros_like(self.grad_h, requires_grad=True)
        has_c = self.problem.cell == "lstm"
        zeros_c = torch.zeros_like(self.grad_h, requires_grad=True) if has_c else None
        with torch.enable_grad():
            hs, _ = self._stepped(zeros_h, zeros_c)
            inputs = [*self.weights, self.x, zeros_h] + ([zeros_c] if has_c else [])
            grads = torch.autograd.grad(hs, inputs, grad_outputs=self.grad_h)
        return grads[:4], grads[4], grads[5], grads[6] if has_c else None

    # -- results ----------------------------------------------------------------------------------
    @staticmethod
    def _np(t):
        return None if t is None else t.detach().cpu().numpy()

    def outputs(self) -> Outputs:
        if self._generic is not None:
            y, states = self._generic.outputs()
            states = {n: self._np(v) for n, v in states.items()}
            return Outputs(h=self._np(y), c=states.get("c"), states=states)
        c = None
        if self.problem.cell == "lstm":  # the fused layer returns only the last c
            with self.torch.no_grad():
                c = self._np(self._stepped()[1])
        return Outputs(h=self._np(self.out), c=c)

    def gradients(self) -> Gradients:
        if self._generic is not None:
            params, dx, per_state = self._grads
            states = None if per_state is None else {n: self._np(v) for n, v in per_state.items()}
            readout_h = not self._generic.readout and self._generic.output == "h"
            return Gradients(params={n: self._np(g) for n, g in params.items()}, x=self._np(dx),
                             h=states.get("h") if states and readout_h else None,
                             c=states.get("c") if states else None, states=states)
        params, dx, dh, dc = self._grads
        return Gradients(params={n: self._np(g) for n, g in zip(PARAM_NAMES, params)}, x=self._np(dx),
                         h=self._np(dh), c=self._np(dc))


class TorchCPUBackend(_TorchBackend):
    name = "torch-cpu"
    device = "cpu"
    description = ("torch.nn.RNN/LSTM/GRU on the CPU (oneDNN for float32 LSTM); exact dL/dh_t through the fused layer "
                   "(rnn_tanh, LSTM) or stepped (GRU); every other cell stepped from its step function, autograd")

    @classmethod
    def availability(cls) -> Availability:
        return _torch_missing() or Availability(True)

    def memory_meter(self):
        return RssMeter()  # torch's CPU allocator is invisible to tracemalloc


class TorchCUDABackend(_TorchBackend):
    name = "torch-cuda"
    device = "cuda"
    resources = {"GPU": 1}
    description = ("torch.nn.RNN/LSTM/GRU on CUDA (cuDNN); CUDA-event timing; exact dL/dh_t through the fused layer "
                   "(rnn_tanh, LSTM) or stepped (GRU); every other cell stepped from its step function, autograd")

    @classmethod
    def availability(cls) -> Availability:
        missing = _torch_missing()
        if missing:
            return missing
        if not (os.path.exists("/proc/driver/nvidia/version") or shutil.which("nvidia-smi")):
            return Availability(False, "no CUDA GPU: no NVIDIA driver on this machine")
        import torch  # only where a driver exists

        if not torch.cuda.is_available():
            why = "torch was built without CUDA" if torch.version.cuda is None else "torch.cuda.is_available() is False"
            return Availability(False, f"no CUDA GPU: {why}")
        return Availability(True)

    def info(self) -> dict:
        t = self.torch
        return {**super().info(), "gpu": t.cuda.get_device_name(), "cuda": t.version.cuda,
                "cudnn": t.backends.cudnn.version(), "tf32_matmul": t.backends.cuda.matmul.allow_tf32,
                "tf32_cudnn": t.backends.cudnn.allow_tf32, "peak_gflops": self._gemm_peak()}

    def _gemm_peak(self, n: int = 8192) -> dict[str, float]:
        """The GPU's GEMM GFLOP/s per dtype, best of three n^3 products timed with CUDA events; float32
        with TF32 exactly when cuDNN's RNNs use it, so that the roofline compares like with like."""
        t, peak = self.torch, {}
        saved = t.backends.cuda.matmul.allow_tf32
        t.backends.cuda.matmul.allow_tf32 = t.backends.cudnn.allow_tf32
        try:
            for name in ("float32", "float64"):
                a = t.randn(n, n, device="cuda", dtype=getattr(t, name))
                a @ a
                clock, best = CudaEventClock(t), float("inf")
                for _ in range(3):
                    clock.start()
                    a @ a
                    best = min(best, clock.stop())
                peak[name] = 2 * n**3 / best / 1e9
                del a
        finally:
            t.backends.cuda.matmul.allow_tf32 = saved
            t.cuda.empty_cache()
        return peak

    def teardown(self) -> None:
        super().teardown()
        self.torch.cuda.empty_cache()  # hand cached blocks back, e.g. after an out-of-memory error

    def synchronize(self) -> None:
        self.torch.cuda.synchronize()

    def clock(self):
        return CudaEventClock(self.torch)

    def memory_meter(self):
        return CudaMemoryMeter(self.torch)


class _GenericBackend:
    """Mixin of the ``-generic`` backends: every cell on :class:`GenericPath`, the classic ones too."""

    in_all = False  # the classic cells a slower way, for comparison: run when named

    @staticmethod
    def fused(cell_name: str) -> bool:
        return False


class TorchCPUGenericBackend(_GenericBackend, TorchCPUBackend):
    name = "torch-cpu-generic"
    description = ("every cell, rnn_tanh, lstm and gru included, on the generic path (stepped from the cell's step "
                   "function, autograd) on the CPU: what a cell without a fused kernel costs; runs when named")


class TorchCUDAGenericBackend(_GenericBackend, TorchCUDABackend):
    name = "torch-cuda-generic"
    description = ("every cell, rnn_tanh, lstm and gru included, on the generic path (stepped from the cell's step "
                   "function, autograd) on CUDA, CUDA-event timing; runs when named")


class _ScanBackend:
    """Mixin of the ``-scan`` backends: the cells with a parallel form, through :class:`ScanPath`."""

    cells = ()  # every registered cell with a scan form: cell_names()
    stepped: ClassVar[str]  # the backend that runs the same cells stepped

    @classmethod
    def cell_names(cls) -> tuple[str, ...]:
        return tuple(n for n in cell_names() if has_scan(cell_class(n)))

    @classmethod
    def supports(cls, cell_name: str, dtype: str) -> Availability:
        names = cls.cell_names()
        if cell_name not in names:
            return Availability(False, f"cell {cell_name!r} has no parallel scan form (Cell.scan; {cls.stepped} runs "
                                       f"it stepped); backend {cls.name!r} runs only the cells that have one: "
                                       f"{', '.join(names) or 'none installed'}")
        return super().supports(cell_name, dtype)

    def setup(self, problem: Problem) -> None:
        self._generic = ScanPath(self.torch, problem, self.device)


class TorchCPUScanBackend(_ScanBackend, TorchCPUBackend):
    name = "torch-cpu-scan"
    stepped = "torch-cpu"
    description = ("the cells with a parallel form (Cell.scan: mingru, lru) as a log-space scan over t on the CPU, "
                   "autograd; every other cell skipped")


class TorchCUDAScanBackend(_ScanBackend, TorchCUDABackend):
    name = "torch-cuda-scan"
    stepped = "torch-cuda"
    description = ("the cells with a parallel form (Cell.scan: mingru, lru) as a log-space scan over t on CUDA, "
                   "CUDA-event timing, autograd; every other cell skipped")


@hookimpl
def harness_backends():
    return [TorchCPUBackend, TorchCUDABackend, TorchCPUScanBackend, TorchCUDAScanBackend, TorchCPUGenericBackend,
            TorchCUDAGenericBackend]
