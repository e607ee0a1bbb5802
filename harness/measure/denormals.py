"""Flushing subnormal floats to zero (FTZ and DAZ) in this thread.

Vanishing gradients are the subject here, and in float32 they sink below the smallest normal number
(1.2e-38) within a few hundred steps; x86 CPUs then take a slow microcode path for every operation
on them, which made a training iteration of rnn_tanh at T = 200 fifteen times slower than its
forward + backward on random data. Training therefore flushes them to zero, as GPUs do by default.
No metric changes: a gradient at or below the smallest normal number already counts as vanished.
"""
from __future__ import annotations

import ctypes
import platform

_MXCSR_FTZ_DAZ = 0x8040  # flush-to-zero (bit 15) and denormals-are-zero (bit 6)
_IR = f"""
declare void @llvm.x86.sse.stmxcsr(i8*)
declare void @llvm.x86.sse.ldmxcsr(i8*)
define void @flush_denormals() {{
  %p = alloca i32
  %q = bitcast i32* %p to i8*
  call void @llvm.x86.sse.stmxcsr(i8* %q)
  %v = load i32, i32* %p
  %w = or i32 %v, {_MXCSR_FTZ_DAZ}
  store i32 %w, i32* %p
  call void @llvm.x86.sse.ldmxcsr(i8* %q)
  ret void
}}
"""
_KEEP = []  # the JIT engine must outlive the function pointer


def _with_llvmlite() -> None:
    import llvmlite.binding as llvm

    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    module = llvm.parse_assembly(_IR)
    engine = llvm.create_mcjit_compiler(module, llvm.Target.from_default_triple().create_target_machine())
    engine.finalize_object()
    _KEEP.append(engine)
    ctypes.CFUNCTYPE(None)(engine.get_function_address("flush_denormals"))()


def flush_denormals() -> str:
    """Set FTZ and DAZ for this thread; returns how, or why not (recorded with training points)."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return f"not flushed: no known way on {platform.machine()}"
    try:
        _with_llvmlite()
        return "flushed (MXCSR FTZ and DAZ through llvmlite)"
    except ImportError:
        pass
    try:
        import torch

        if torch.set_flush_denormal(True):
            return "flushed (torch.set_flush_denormal)"
    except ImportError:
        pass
    return "not flushed: needs llvmlite (numba) or torch"
