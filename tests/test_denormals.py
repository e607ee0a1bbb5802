"""Flushing subnormal floats: in a block only, and for good (training workers)."""
from __future__ import annotations

import numpy as np
import pytest

from harness.measure.denormals import denormals_flushed, flushing_available

pytestmark = pytest.mark.skipif(not flushing_available(), reason="needs x86 and llvmlite (numba)")

TINY = np.float32(1e-38)  # a normal float32 whose tenth is subnormal


def test_the_block_flushes_and_the_callers_setting_comes_back_even_after_an_error():
    assert TINY * np.float32(0.1) > 0
    with denormals_flushed():
        assert TINY * np.float32(0.1) == 0
    assert TINY * np.float32(0.1) > 0
    with pytest.raises(ValueError), denormals_flushed():
        raise ValueError("inside")
    assert TINY * np.float32(0.1) > 0


def test_as_a_decorator_each_call_flushes():
    @denormals_flushed()
    def tenth(x):
        return x * np.float32(0.1)

    assert tenth(TINY) == 0 and tenth(TINY) == 0
    assert TINY * np.float32(0.1) > 0
