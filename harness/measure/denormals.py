"""Flushing subnormal floats to zero (FTZ and DAZ) in this thread.

Vanishing gradients are the subject here, and in float32 they sink below the smallest normal number
(1.2e-38) within a few hundred steps; x86 CPUs then take a slow microcode path for every operation
on them, which made a training iteration of rnn_tanh at T = 200 fifteen times slower than its
forward + backward on random data. Training therefore flushes them to zero for good, as GPUs do by
default; a backend may flush them for the length of its own calls (:func:`denormals_flushed`), as
TensorFlow's CPU kernels do. No metric changes: a gradient at or below the smallest normal number
already counts as vanished.
"""
from __future__ import annotations

import ctypes
import functools
import platform
from collections.abc import Iterator
from contextlib import contextmanager

_MXCSR_FTZ_DAZ = 0x8040  # flush-to-zero (bit 15) and denormals-are-zero (bit 6)
_IR = """
declare void @llvm.x86.sse.stmxcsr(i8*)
declare void @llvm.x86.sse.ldmxcsr(i8*)
define i32 @get_mxcsr() {
  %p = alloca i32
  %q = bitcast i32* %p to i8*
  call void @llvm.x86.sse.stmxcsr(i8* %q)
  %v = load i32, i32* %p
  ret i32 %v
}
define void @set_mxcsr(i32 %v) {
  %p = alloca i32
  store i32 %v, i32* %p
  %q = bitcast i32* %p to i8*
  call void @llvm.x86.sse.ldmxcsr(i8* %q)
  ret void
}
"""


@functools.cache
def _mxcsr() -> tuple | None:
    """(get, set, engine) of this thread's MXCSR register, compiled once through llvmlite (the JIT
    engine must outlive the functions); None where unavailable."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return None
    try:
        import llvmlite.binding as llvm
    except ImportError:
        return None
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    module = llvm.parse_assembly(_IR)
    engine = llvm.create_mcjit_compiler(module, llvm.Target.from_default_triple().create_target_machine())
    engine.finalize_object()
    get = ctypes.CFUNCTYPE(ctypes.c_uint32)(engine.get_function_address("get_mxcsr"))
    set_ = ctypes.CFUNCTYPE(None, ctypes.c_uint32)(engine.get_function_address("set_mxcsr"))
    return get, set_, engine


@contextmanager
def flushed_while_training() -> Iterator[str]:
    """FTZ and DAZ in this thread for the block, the caller's setting restored after it (an in-process
    caller, such as ``harness check``'s training check, keeps its own); yields how, or why not
    (recorded with training points)."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        yield f"not flushed: no known way on {platform.machine()}"
        return
    if _mxcsr() is not None:
        with denormals_flushed():
            yield "flushed (MXCSR FTZ and DAZ through llvmlite)"
        return
    try:
        import torch
    except ImportError:
        yield "not flushed: needs llvmlite (numba) or torch"
        return
    if not torch.set_flush_denormal(True):
        yield "not flushed: needs llvmlite (numba) or torch"
        return
    try:
        yield "flushed (torch.set_flush_denormal)"
    finally:
        torch.set_flush_denormal(False)


def flushing_available() -> bool:
    """Whether :func:`denormals_flushed` flushes on this machine (x86 with llvmlite)."""
    return _mxcsr() is not None


@contextmanager
def denormals_flushed() -> Iterator[None]:
    """FTZ and DAZ in this thread for the length of the block, the caller's setting restored after it
    (a no-op where :func:`flushing_available` is false). Threads a library started earlier, such as
    a multi-threaded BLAS's workers, keep their own setting."""
    mxcsr = _mxcsr()
    if mxcsr is None:
        yield
        return
    get, set_, _ = mxcsr
    old = get()
    set_(old | _MXCSR_FTZ_DAZ)
    try:
        yield
    finally:
        set_(old)
