"""The backend contract's input checks and the NumPy backend's behaviour through it."""
from __future__ import annotations

import numpy as np
import pytest

from harness import HarnessError
from harness.backend import Problem
from harness_plugins.numpy_backend import NumpyBackend
from tests.helpers import make_problem


def test_unknown_cell_names_the_valid_ones():
    p = make_problem("lstm")
    with pytest.raises(HarnessError, match=r"unknown cell 'lstmm'; valid cells: rnn_tanh, lstm, gru, gru_cho"):
        Problem("lstmm", p.params, p.x, p.grad_h)


def test_unsupported_cell_of_a_backend_names_the_supported_ones():
    class RnnOnly(NumpyBackend):
        name = "rnn-only"
        cells = ("rnn_tanh",)

    with pytest.raises(HarnessError, match=r"does not support cell 'gru'; supported cells: rnn_tanh"):
        RnnOnly().prepare(make_problem("gru"))


def test_unknown_dtype_names_the_valid_ones():
    p = make_problem("gru")
    half = {k: v.astype("float16") for k, v in p.params.items()}
    with pytest.raises(HarnessError, match=r"float32, float64.*float16"):
        Problem("gru", half, p.x.astype("float16"), p.grad_h.astype("float16"))


def test_wrong_parameter_shape_is_named():
    p = make_problem("gru", H=5)
    params = dict(p.params, weight_hh=np.zeros((15, 4)))  # H is 5, from grad_h
    with pytest.raises(HarnessError, match=r"weight_hh must have shape \(15, 5\)"):
        Problem("gru", params, p.x, p.grad_h)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_numpy_backend_keeps_the_dtype_and_shapes(dtype):
    p = make_problem("lstm", T=5, B=2, I=3, H=4, dtype=dtype)
    backend = NumpyBackend()
    backend.prepare(p)
    backend.forward()
    backend.backward(per_step=True)
    out, grads = backend.outputs(), backend.gradients()
    assert out.h.shape == (5, 2, 4) and out.c.shape == (5, 2, 4) and out.h.dtype == dtype
    assert grads.x.shape == p.x.shape and grads.h.shape == (5, 2, 4) and grads.c.shape == (5, 2, 4)
    for name, value in p.params.items():
        assert grads.params[name].shape == value.shape and grads.params[name].dtype == dtype
    backend.backward()  # the timed variant keeps no per-step gradients
    assert backend.gradients().h is None
