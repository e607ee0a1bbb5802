"""``mingru``: the minimal GRU of Feng, Tung, Ahmed, Bengio & Hajimirsadeghi 2024, "Were RNNs All We
Needed?" (arXiv 2410.01201), in its sequential form.

Equations (row-vector form, x_t (B, I), h (B, H)), h_0 = 0; ``*`` is element-wise::

    z_t  = sigmoid(x_t W_z^T + b_z)            # Linear_z(x_t): the gate does not see h
    h~_t = x_t W_h^T + b_h                      # Linear_h(x_t): no tanh either
    h_t  = (1 - z_t) * h_{t-1} + z_t * h~_t

Parameters (two separate Linear layers, not stacked): weight_z (H, I), bias_z (H,), weight_h
(H, I), bias_h (H,).

Gradient: the gates do not depend on h, so d h_t / d h_{t-1} = diag(1 - z_t), independent of h
(and of W_h): the gradient of unit i through n steps is prod (1 - z_{t,i}), driven by the input
alone.

Parallel form (:meth:`MinGru.scan`, run by the ``torch-cpu-scan`` / ``torch-cuda-scan`` backends).
The recurrence is linear in h with input-only coefficients, h_t = a_t * h_{t-1} + b_t with
a_t = 1 - z_t and b_t = z_t * h~_t, so every h_t comes at once from the paper's log-space scan
(Feng et al. 2024, Sec. 3 and appendix ``parallel_scan_log``; Heinsen 2023, "Efficient
parallelization of a ubiquitous sequential computation")::

    a*_t = sum_{s <= t} log a_s                  (torch.cumsum; log(1 - z) = -softplus(k) exactly)
    h_t  = exp(a*_t + logcumsumexp_{s <= t}(log b_s - a*_s))

The paper keeps b positive (its log-space minGRU passes h~ through g(v) = v + 0.5 for v >= 0,
sigmoid(v) otherwise, a different function that is not this cell). Here h~ is the plain linear map
of the sequential cell, so b may be negative: its logarithm is taken as a complex number, log|b| +
i pi for b < 0 (Heinsen's treatment of signed values), and h_t is the real part (computed as two
real scans, below). Cost: O(T)
work with a cumulative sum and a cumulative log-sum-exp over t (depth log T on parallel hardware),
in complex arithmetic: several times the FLOPs of a step; the scan pays off where steps are
latency-bound (docs/performance.md, "Scan against loop"). Precision: the exponents a*_t would reach
about -0.7 T at this init, and a float32 scan loses about |a*| x 6e-8 relative (1e-4 at T ~ 2000),
so the scan restarts them every :data:`CHUNK` = 128 steps, chaining the blocks by their last state
(T / 128 sequential steps): float32 stays near 1e-5 at any T, float64 agrees with the stepped
reference to ~1e-12. The signs of b are handled in real arithmetic (positive and negative terms in
two log-space sums; complex logarithms cost several times more on a CPU). An exactly zero b_t (h~
= 0) is replaced by the smallest normal number; its gradient there is 0, not exact.

Inits: ``default`` only: every weight and bias ~ U(-1/sqrt(I), 1/sqrt(I)), torch's nn.Linear
default for a layer from I inputs (the paper writes Linear_dh and its code uses nn.Linear), drawn
in the order weight_z, bias_z, weight_h, bias_h.
"""
from __future__ import annotations

from harness.cell import Cell, ParamSpec, StateSpec, linear_uniform


#: Steps per block of :func:`log_scan`'s real path: the exponents a*_t restart at each block, so a
#: float32 scan loses about CHUNK x |log a| x 6e-8 relative, whatever T (blocks run one after another).
CHUNK = 128


def log_scan(log_a, b, add=None, a_star=None):
    """h_t = a_t * h_{t-1} + b_t (+ add_t) over the leading axis from h_0 = 0, every t at once, by
    the log-space scan of Feng et al. 2024 / Heinsen 2023. ``log_a`` is log a_t, real or complex (a
    complex a_t rotates the state: LRU's lambda), (T, ...) or broadcastable to b; ``a_star``, when
    given, is its cumulative sum a*_t = sum_{s <= t} log a_s (computed here otherwise). b may be
    negative (real b: its positive and negative terms are scanned apart) or complex (complex
    logarithms). Returns h (T, ...): real where b and log_a are real, complex otherwise.

    Real inputs without ``a_star`` are scanned in blocks of :data:`CHUNK` steps, each block's scan
    parallel over its steps and the blocks chained by their last state (T / CHUNK sequential
    steps): the exponents stay below CHUNK x |log a|, which keeps float32 within 1e-5 at any T.
    Within a block the scan gives h_{t-1}; the last term is added exactly, h_t = b_t + a_t h_{t-1},
    so that h_1 = b_1 does not depend on a_1 even in rounding (its gradient with respect to a_1 is
    exactly 0, as the stepped cell's)."""
    import torch

    if add is not None:
        b = b + add
    if a_star is not None or b.is_complex() or log_a.is_complex() or b.shape[0] <= CHUNK:
        return _log_scan_block(torch, log_a, b, log_a.cumsum(0) if a_star is None else a_star)
    out, carry = [], None
    for start in range(0, b.shape[0], CHUNK):
        la, bb = log_a[start : start + CHUNK], b[start : start + CHUNK]
        cum = la.cumsum(0)
        h = _log_scan_block(torch, la, bb, cum)
        if carry is not None:
            h = h + cum.exp() * carry
        out.append(h)
        carry = h[-1]
    return torch.cat(out)


def _log_scan_block(torch, log_a, b, a_star):
    real = not (b.is_complex() or a_star.is_complex())
    tiny = torch.finfo(b.real.dtype if b.is_complex() else b.dtype).tiny
    safe = torch.where(b == 0, torch.full_like(b, tiny), b)[:-1]  # the scan up to T - 1: h_1 .. h_{T-1}
    a_star = a_star[:-1]
    if real:
        # signs in real arithmetic (complex logarithms cost several times more on a CPU): the
        # positive and the negative terms in two log-space sums, one logcumsumexp over both
        x = safe.abs().log() - a_star
        far = (x.detach().min() if x.numel() else 0.0) - 100.0  # log 0: e^-100 below every term, finite grads
        terms = torch.stack([torch.where(safe > 0, x, far), torch.where(safe < 0, x, far)])
        both = (a_star + torch.logcumsumexp(terms, dim=1)).exp()
        h = both[0] - both[1]
    else:
        if not safe.is_complex():
            safe = safe.to(torch.complex128 if safe.dtype == torch.float64 else torch.complex64)
        h = (a_star + torch.logcumsumexp(safe.log() - a_star, dim=0)).exp()
    return b + log_a.exp() * torch.cat([torch.zeros_like(b[:1]), h])


class MinGru(Cell):
    name = "mingru"
    description = "minGRU: z = s(x W_z^T + b_z), h~ = x W_h^T + b_h, h = (1 - z) h + z h~ (gates see x only)"
    reference = "Feng, Tung, Ahmed, Bengio & Hajimirsadeghi 2024, 'Were RNNs All We Needed?', arXiv 2410.01201"
    params = (
        ParamSpec("weight_z", lambda i, h: (h, i), linear_uniform),
        ParamSpec("bias_z", lambda i, h: (h,), linear_uniform),
        ParamSpec("weight_h", lambda i, h: (h, i), linear_uniform),
        ParamSpec("bias_h", lambda i, h: (h,), linear_uniform),
    )
    state = (StateSpec("h"),)
    output = "h"
    stored_per_step = 3  # h, z and h~ of each step

    def step(self, p, state, x):
        z = (x @ p["weight_z"].T + p["bias_z"]).sigmoid()
        h_tilde = x @ p["weight_h"].T + p["bias_h"]
        return {"h": (1 - z) * state["h"] + z * h_tilde}

    def scan(self, p, x, add=None):
        """Every h_t at once: a_t = 1 - z_t, b_t = z_t h~_t through :func:`log_scan` (module docstring)."""
        import torch.nn.functional as F

        k = x @ p["weight_z"].T + p["bias_z"]
        b = k.sigmoid() * (x @ p["weight_h"].T + p["bias_h"])
        return {"h": log_scan(-F.softplus(k), b, None if add is None else add["h"])}
