"""``lru_block``: two LRU layers in the blocks of Orvieto et al. 2023 ("Resurrecting Recurrent Neural
Networks for Long Sequences", Fig. 1): the nonlinearity that one ``lru`` layer lacks, for tasks a
linear filter of the inputs cannot solve (the adding problem's sum of products, ``lru``'s docstring).

A block is the recurrence followed by the paper's position-wise nonlinearity, GELU then a GLU, with
a skip connection where its input and output widths agree::

    block(u) = GLU(GELU(LRU(u))) (+ u),     GLU(v) = (v W_a^T + b_a) * sigmoid(v W_b^T + b_b)

and this cell stacks two: z_t = block_1(u_t) (I -> H, no skip), out_t = block_2(z_t) + z_t
(H -> H). The readout sees out_t. Each LRU layer is exactly ``lru`` (same parameters, same ring
init, :mod:`harness_plugins.cells.lru`), with the suffix 1 or 2; the GLU's (2H, H) weight and (2H,)
bias are drawn as nn.Linear's default, U(-1/sqrt(H), 1/sqrt(H)). Left out of the paper's block: the
normalisation before the LRU and dropout (a training regulariser), which do not change what the
block can express. The state is (re1, im1, re2, im2), four (B, H) tensors.

Gradient: the first layer's modes decay by exactly |lambda1_j| per step as in ``lru``; the second
layer's state also depends on the first through z_t, so the state Jacobian is block triangular
(not diagonal): no closed-form decay rate is recorded, the Lyapunov exponents are measured.
"""
from __future__ import annotations

import math

import numpy as np

from harness.cell import Cell, CellInit, ParamSpec, StateSpec, normal
from harness_plugins.cells import lru




def _layer(k: int, width_in) -> tuple[ParamSpec, ...]:
    """The parameters of LRU layer ``k`` reading an input of ``width_in(I, H)`` features."""
    std_in = lambda i, h: 1.0 / math.sqrt(2 * width_in(i, h))  # noqa: E731
    return (
        ParamSpec(f"nu_log{k}", lambda i, h: (h,), lru._default_nu_log),
        ParamSpec(f"theta_log{k}", lambda i, h: (h,), lru._default_theta_log),
        ParamSpec(f"gamma_log{k}", lambda i, h: (h,), lambda rng, i, h: np.zeros(h)),
        ParamSpec(f"B_re{k}", lambda i, h: (h, width_in(i, h)), normal(std_in, text="N(0, 1/(2 n_in))")),
        ParamSpec(f"B_im{k}", lambda i, h: (h, width_in(i, h)), normal(std_in, text="N(0, 1/(2 n_in))")),
        ParamSpec(f"C_re{k}", lambda i, h: (h, h), normal(lambda i, h: 1.0 / math.sqrt(h), text="N(0, 1/H)")),
        ParamSpec(f"C_im{k}", lambda i, h: (h, h), normal(lambda i, h: 1.0 / math.sqrt(h), text="N(0, 1/H)")),
        ParamSpec(f"D{k}", lambda i, h: (h, width_in(i, h)),
                  normal(lambda i, h: 1.0 / math.sqrt(width_in(i, h)), text="N(0, 1/n_in)")),
        ParamSpec(f"glu_weight{k}", lambda i, h: (2 * h, h)),
        ParamSpec(f"glu_bias{k}", lambda i, h: (2 * h,)),
    )


def _layers(apply_one):
    """Apply an lru init to both layers: lru's inits name its parameters without a suffix."""
    def apply(params, rng, input_size, hidden_size, value, steps) -> None:
        for k in (1, 2):
            names = ("nu_log", "theta_log", "gamma_log")
            view = {name: params[f"{name}{k}"] for name in names}
            apply_one(view, rng, input_size, hidden_size, value, steps)
            for name in names:
                params[f"{name}{k}"] = view[name]
    return apply


def _inits() -> dict[str, CellInit]:
    """``lru``'s inits, each applied to both layers (the same ring, drawn per layer)."""
    return {name: CellInit(_layers(init.apply), init.parameter, init.default, f"{init.description}, both layers",
                           init.source) for name, init in lru.Lru.inits.items()}


class LruBlock(Cell):
    name = "lru_block"
    description = "two LRU blocks (Orvieto et al. 2023): z = GLU(GELU(LRU1(u))), out = GLU(GELU(LRU2(z))) + z"
    reference = lru.Lru.reference + ", Fig. 1 (the block)"
    params = _layer(1, lambda i, h: i) + _layer(2, lambda i, h: h)
    state = (StateSpec("re1"), StateSpec("im1"), StateSpec("re2"), StateSpec("im2"))
    output = None
    stored_per_step = 8  # two complex states, two GLU inputs and gates
    inits = _inits()

    @staticmethod
    def _recur(p, k: int, re, im, u):
        modulus = (-p[f"nu_log{k}"].exp()).exp()
        theta = p[f"theta_log{k}"].exp()
        l_re, l_im = modulus * theta.cos(), modulus * theta.sin()
        gamma = p[f"gamma_log{k}"].exp()
        return (l_re * re - l_im * im + gamma * (u @ p[f"B_re{k}"].T),
                l_re * im + l_im * re + gamma * (u @ p[f"B_im{k}"].T))

    @staticmethod
    def _block_out(p, k: int, re, im, u):
        """GLU(GELU(y)) for the layer's output y = Re(C x) + D u."""
        import torch

        y = re @ p[f"C_re{k}"].T - im @ p[f"C_im{k}"].T + u @ p[f"D{k}"].T
        a, b = (torch.nn.functional.gelu(y) @ p[f"glu_weight{k}"].T + p[f"glu_bias{k}"]).chunk(2, dim=1)
        return a * b.sigmoid()

    def step(self, p, state, x):
        re1, im1 = self._recur(p, 1, state["re1"], state["im1"], x)
        z = self._block_out(p, 1, re1, im1, x)
        re2, im2 = self._recur(p, 2, state["re2"], state["im2"], z)
        return {"re1": re1, "im1": im1, "re2": re2, "im2": im2}

    def readout_input(self, p, state, x):
        z = self._block_out(p, 1, state["re1"], state["im1"], x)
        return self._block_out(p, 2, state["re2"], state["im2"], z) + z
