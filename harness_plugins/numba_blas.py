"""Which GEMM engine the numba kernels' per-step GEMMs call: the choice, the table of engines, and
their registration with LLVM.

The per-step GEMMs are small (512 x 134 @ 134 x 32), where BLAS libraries differ most. The kernels
call one of four, chosen by the backend (``HARNESS_NUMBA_BLAS``, default ``auto``: the first found on one
thread, the first BLAS library on more, :func:`choose_blas`):

- ``tiles``: register-blocked tiles compiled by LLVM for this CPU (harness_plugins/numba_tiles.py),
  found wherever numba is; one thread. On a Zen 4 core the forward and backward products run at
  96-99% of the core's roof against 79-83% for MKL and OpenBLAS (docs/performance.md,
  scripts/gemm_engines_table.py).
- ``mkl``: MKL's Fortran ?gemm_, statically linked into torch's libtorch_cpu on x86 (loaded with
  ctypes, without importing torch). 1.5-1.9 x faster than OpenBLAS on these shapes on an Intel Xeon:
  29-30 us against 47 us for 512 x 128 @ 128 x 32 and 128 x 512 @ 512 x 32.
- ``openblas``: NumPy's bundled OpenBLAS (ILP64 cblas, symbols scipy_cblas_?gemm64_): ~30% faster than
  numba's np.dot, which binds SciPy's BLAS (60 against 87 us).
- ``np.dot``: SciPy's BLAS through numba's np.dot, which takes contiguous operands only (copies).

The found engines' functions are registered with LLVM as symbols (:func:`register_gemms`, the tiles by
numba_tiles.register_tiles when the kernels load); the choice travels in the type of the ``blas``
argument of every kernel (:data:`LIBRARIES`: uint32 tiles, uint64 MKL, int64 OpenBLAS, int32 np.dot),
so each has its own compiled and cached signature (harness_plugins/numba_kernels.py).

Importing this module costs NumPy only: numba_backend.py checks the choice in ``availability()``
without importing numba, and numba_kernels.py registers the libraries when it is imported.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from harness.measure.blas import mkl_gemms, openblas_gemms

#: the engine of the per-step GEMMs: auto takes the first found
BLAS_ENV = "HARNESS_NUMBA_BLAS"


@dataclass(frozen=True)
class BlasLibrary:
    """One way to the per-step GEMMs: its ``blas`` argument and a description for the run's provenance."""

    tag: np.integer
    description: str


#: every engine the kernels can call, fastest first (on the machines measured: docs/performance.md)
LIBRARIES = {
    "tiles": BlasLibrary(np.uint32(3), "register-blocked FMA tiles compiled by LLVM for this CPU"),
    "mkl": BlasLibrary(np.uint64(2), "MKL from torch's libtorch_cpu (Fortran ?gemm_, LP64)"),
    "openblas": BlasLibrary(np.int64(1), "NumPy's OpenBLAS (cblas, ILP64)"),
    "np.dot": BlasLibrary(np.int32(0), "SciPy's BLAS through numba's np.dot"),
}
#: what ``HARNESS_NUMBA_BLAS`` may name
BLAS_CHOICES = ("auto", *LIBRARIES)


def check_blas_choice(requested: str) -> None:
    """ValueError naming the valid choices when ``requested`` is none of them."""
    if requested not in BLAS_CHOICES:
        raise ValueError(f"{BLAS_ENV}={requested!r} is not one of {', '.join(BLAS_CHOICES)}")


def choose_blas(requested: str, found: tuple[str, ...], threads: int | None = 1) -> str:
    """The engine that ``requested`` (one of BLAS_CHOICES) names among those ``found``: ValueError
    with the valid choices when it names none, or one that is not found here. ``auto`` takes the
    first found on one thread; the tiles run on one thread only, so on more (or the library's own
    default, ``threads=None``) it takes the first BLAS library, which threads its GEMMs."""
    check_blas_choice(requested)
    if requested == "auto":
        return found[0] if threads == 1 else next(name for name in found if name != "tiles")
    if requested not in found:
        raise ValueError(f"{BLAS_ENV}={requested!r}: that library is not found here (found: {', '.join(found)})")
    return requested


@functools.cache
def register_gemms() -> tuple[str, ...]:
    """Register the sgemm and dgemm of each library found here with LLVM, as harness_{name}_?gemm (the
    symbols the kernels' external functions name), once per process; returns the engines found,
    fastest first (the tiles and np.dot need nothing more than numba and SciPy)."""
    import llvmlite.binding as llvm_binding

    addresses = {"mkl": mkl_gemms(), "openblas": openblas_gemms()}
    for name, found in addresses.items():
        for kind, address in found.items():
            llvm_binding.add_symbol(f"harness_{name}_{kind}gemm", address)
    return ("tiles", *(name for name, found in addresses.items() if found), "np.dot")
