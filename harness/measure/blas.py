"""The BLAS libraries a process can call besides NumPy's matmul, found on disk without importing torch.

- MKL, which torch's x86 builds link statically into ``libtorch_cpu`` (Fortran ``sgemm_``/``dgemm_``,
  LP64). It runs AVX-512 kernels where the CPU has them, while NumPy's OpenBLAS may be held to older
  ones (``OPENBLAS_CORETYPE``): the numba backend's GEMMs use it, and so does the roofline's peak.
- NumPy's bundled OpenBLAS (ILP64 cblas, ``scipy_cblas_?gemm64_``).

MKL's thread count is read from the environment when it starts (calling ``mkl_set_num_threads_local``
in torch's build crashes), so a process that uses it is started with ``THREAD_ENV`` set.
"""
from __future__ import annotations

import ctypes
import glob
import importlib.util
import os

import numpy as np

#: The variables that size the thread pools of OpenMP, the BLAS libraries and numba.
THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS",
              "VECLIB_MAXIMUM_THREADS")


#: The BLAS type letter of each dtype (sgemm, dgemm): the keys of the address tables below.
LETTERS = {"float32": "s", "float64": "d"}


def mkl_gemms() -> dict[str, int]:
    """Addresses of MKL's Fortran ``sgemm_``/``dgemm_`` by letter; {} without torch's library."""
    return _symbols(torch_mkl_paths(), {k: f"{k}gemm_" for k in LETTERS.values()})


def openblas_gemms() -> dict[str, int]:
    """Addresses of NumPy's OpenBLAS ``cblas_?gemm`` (ILP64) by letter; {} where it is not bundled."""
    return _symbols(_numpy_openblas_paths(), {k: f"scipy_cblas_{k}gemm64_" for k in LETTERS.values()})


def _symbols(paths: list[str], names: dict[str, str]) -> dict[str, int]:
    """Addresses of ``names`` (key -> symbol) in the first of ``paths`` that has them all, else {}."""
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
            return {key: ctypes.cast(getattr(lib, name), ctypes.c_void_p).value for key, name in names.items()}
        except (OSError, AttributeError):
            continue
    return {}


def torch_mkl_paths() -> list[str]:
    """Where torch's ``libtorch_cpu`` would be (its MKL inside), when torch is installed."""
    spec = importlib.util.find_spec("torch")
    return [os.path.join(d, "lib", "libtorch_cpu.so") for d in (spec.submodule_search_locations or [])] if spec else []


def _numpy_openblas_paths() -> list[str]:
    """NumPy's bundled OpenBLAS (its wheels' ``numpy.libs``)."""
    return glob.glob(os.path.join(os.path.dirname(np.__file__), os.pardir, "numpy.libs", "libscipy_openblas64_*"))
