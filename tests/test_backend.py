"""The backend contract: its input checks, its abstract methods, and the NumPy backend through it."""
from __future__ import annotations

import numpy as np
import pytest

from harness import Backend, HarnessError, Problem
from harness.testing import random_problem
from harness_plugins.numpy_backend import NumpyBackend


def test_public_api_is_one_import():
    import harness

    for name in ("Backend", "Problem", "Outputs", "Gradients", "Availability", "hookimpl", "HarnessError"):
        assert hasattr(harness, name), name
    assert harness.Backend is __import__("harness.backend").backend.Backend


def test_unknown_cell_names_the_valid_ones():
    p = random_problem("lstm", (7, 3, 4, 5))
    with pytest.raises(HarnessError, match=r"unknown cell 'lstmm'; known cells: rnn_tanh, lstm, gru, gru_cho, "
                                           r"rnn_relu, indrnn, mingru, lru"):
        Problem("lstmm", p.params, p.x, p.grad_h)


def test_unsupported_cell_of_a_backend_names_the_supported_ones():
    class RnnOnly(NumpyBackend):
        name = "rnn-only"
        cells = ("rnn_tanh",)

    with pytest.raises(HarnessError, match=r"backend 'rnn-only' has no kernel for cell 'gru'; cells it runs: rnn_tanh"):
        RnnOnly().prepare(random_problem("gru", (7, 3, 4, 5)))
    assert NumpyBackend.supports("mingru", "float32").reason == (
        "backend 'numpy' has no kernel for cell 'mingru'; cells it runs: rnn_tanh, lstm, gru, gru_cho")


def test_unknown_dtype_names_the_valid_ones():
    p = random_problem("gru", (7, 3, 4, 5))
    half = {k: v.astype("float16") for k, v in p.params.items()}
    with pytest.raises(HarnessError, match=r"float32, float64.*float16"):
        Problem("gru", half, p.x.astype("float16"), p.grad_h.astype("float16"))


@pytest.mark.parametrize("which", ["x", "grad_h", "weight_hh"])
def test_mixed_float32_and_float64_arrays_are_refused(which):
    p = random_problem("gru", (7, 3, 4, 5), "float64")
    params = dict(p.params)
    x, grad_h = p.x, p.grad_h
    if which == "x":
        x = x.astype("float32")
    elif which == "grad_h":
        grad_h = grad_h.astype("float32")
    else:
        params["weight_hh"] = params["weight_hh"].astype("float32")
    with pytest.raises(HarnessError, match=r"one dtype of float32, float64; got \['float32', 'float64'\]"):
        Problem("gru", params, x, grad_h)


def test_wrong_parameter_shape_is_named():
    p = random_problem("gru", (7, 3, 4, 5))
    params = dict(p.params, weight_ih=np.zeros((15, 3)))  # I is 4, from x
    with pytest.raises(HarnessError, match=r"weight_ih must have shape \(15, 4\) for gru \(I = 4, H = 5\), "
                                           r"got \(15, 3\)"):
        Problem("gru", params, p.x, p.grad_h)


def test_wrong_upstream_shape_is_named_at_prepare_and_after_forward():
    p = random_problem("gru", (7, 3, 4, 5))
    with pytest.raises(HarnessError, match=r"grad_h must have shape \(7, 3, 5\) \(T, B, H\), got \(7, 3, 4\)"):
        Problem("gru", p.params, p.x, p.grad_h[..., :4])
    backend = NumpyBackend()
    backend.prepare(Problem("gru", p.params, p.x))
    backend.forward()
    with pytest.raises(HarnessError, match=r"got \(3, 7, 5\)"):
        backend.upstream(np.swapaxes(p.grad_h, 0, 1))


def test_a_backend_missing_forward_cannot_be_instantiated():
    class NoForward(Backend):
        name, cells = "no-forward", ("rnn_tanh",)

        def setup(self, problem): ...
        def set_upstream(self, grad_h): ...
        def backward(self, per_step=False): ...
        def outputs(self): ...
        def gradients(self): ...

    with pytest.raises(TypeError, match="forward"):
        NoForward()


def test_prepare_and_upstream_belong_to_the_core():
    with pytest.raises(TypeError, match=r"overrides prepare\(\).*override setup\(problem\) instead"):
        class Eager(NumpyBackend):  # noqa: F841
            def prepare(self, problem):
                pass
    with pytest.raises(TypeError, match=r"overrides upstream\(\).*override set_upstream\(grad_h\) instead"):
        class Early(NumpyBackend):  # noqa: F841
            def upstream(self, grad_h):
                pass


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_numpy_backend_keeps_the_dtype_and_shapes(dtype):
    p = random_problem("lstm", (5, 2, 3, 4), dtype)
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
