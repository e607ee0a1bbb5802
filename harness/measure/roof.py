"""The roof: a CPU core's floating-point limit, which no engine can exceed.

A GEMM library is a poor yardstick for "% of peak": NumPy's OpenBLAS may be held to older kernels
(OPENBLAS_CORETYPE), MKL skips its fastest paths on AMD, and oneDNN beats both, so a backend can read
above 100%. The roof is measured instead with a microkernel that does nothing but fused multiply-adds:
``chains`` independent vector accumulators, each ``a = a * m + c`` per iteration, compiled for this
CPU by LLVM (llvmlite, numba's compiler) at every vector width the CPU has, and the best width wins.
The chains hide the FMA latency (latency x pipes <= chains), and the accumulators stay in registers,
so the loop runs at the core's FMA throughput: 2 FLOPs per lane per FMA. With ``threads`` threads,
each runs the kernel on its own (ctypes releases the interpreter lock during the call).
"""
from __future__ import annotations

import ctypes
import functools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

ELEMENTS = {"float32": ("float", ctypes.c_float, 32), "float64": ("double", ctypes.c_double, 64)}
SECONDS = 0.01  # one timed call of the kernel on each thread: short, so that the best of
REPEATS = 20  # these many is likely to have run without another process on its core
M, C = 0.999, 1e-3  # a = a * M + C stays finite and normal: it tends to C / (1 - M) = 1


@dataclass(frozen=True)
class Kernel:
    """The compiled microkernel for one dtype and vector width: ``run(n)`` does ``n`` iterations and
    returns the sum of the chains' first lanes (a check that the work was done)."""

    dtype: str
    bits: int
    chains: int
    run: Callable[[int], float]
    engine: Any = field(repr=False, default=None)  # the compiled code lives as long as its engine

    @property
    def flops_per_iteration(self) -> int:
        return 2 * self.chains * self.bits // ELEMENTS[self.dtype][2]


def vector_widths() -> tuple[int, ...]:
    """The vector widths (bits) this CPU's floating-point units take: 128 always (SSE2, NEON), 256
    with AVX2 and FMA, 512 with AVX-512F."""
    features = _llvm().get_host_cpu_features()
    return (128, *((256,) if features.get("avx2") and features.get("fma") else ()),
            *((512,) if features.get("avx512f") else ()))


def _chains(bits: int) -> int:
    """Independent accumulators: enough for every core we know (FMA latency 4-5 cycles x 2-4 pipes),
    few enough to stay in registers (x86 before AVX-512 has 16 vector registers, the others 32)."""
    features = _llvm().get_host_cpu_features()
    return 24 if bits == 512 or not features.get("sse2") else 12


def ir(dtype: str, bits: int, chains: int) -> str:
    """LLVM IR of ``void kernel(i64 n, T m, T c, T* out)``: ``chains`` accumulators of ``bits`` bits,
    each multiplied by m and added to c ``n`` times (``contract``: fused into an FMA where the CPU has
    one), then their first lanes summed into ``*out``."""
    elem, _, size = ELEMENTS[dtype]
    lanes = bits // size
    vt = f"<{lanes} x {elem}>"
    lines = [f"define void @kernel(i64 %n, {elem} %m, {elem} %c, ptr %out) #0 {{", "entry:"]
    for name in ("m", "c"):
        lines += [f"  %{name}0 = insertelement {vt} poison, {elem} %{name}, i32 0",
                  f"  %{name}v = shufflevector {vt} %{name}0, {vt} poison, <{lanes} x i32> zeroinitializer"]
    lines += ["  br label %loop", "loop:", "  %i = phi i64 [0, %entry], [%next, %loop]"]
    lines += [f"  %a{k} = phi {vt} [%cv, %entry], [%b{k}, %loop]" for k in range(chains)]
    for k in range(chains):
        lines += [f"  %p{k} = fmul contract {vt} %a{k}, %mv", f"  %b{k} = fadd contract {vt} %p{k}, %cv"]
    lines += ["  %next = add i64 %i, 1", "  %done = icmp uge i64 %next, %n",
              "  br i1 %done, label %exit, label %loop", "exit:", f"  %s0 = extractelement {vt} %b0, i32 0"]
    for k in range(1, chains):
        lines += [f"  %e{k} = extractelement {vt} %b{k}, i32 0", f"  %s{k} = fadd {elem} %s{k - 1}, %e{k}"]
    lines += [f"  store {elem} %s{chains - 1}, ptr %out", "  ret void", "}",
              f'attributes #0 = {{ "min-legal-vector-width"="{bits}" "prefer-vector-width"="{bits}" }}']
    return "\n".join(lines)


@functools.cache
def kernel(dtype: str, bits: int) -> Kernel:
    """The microkernel for ``dtype`` at ``bits``, compiled for this CPU (kept for the process)."""
    chains = _chains(bits)
    engine = host_engine(ir(dtype, bits, chains))
    real = ELEMENTS[dtype][1]
    function = ctypes.CFUNCTYPE(None, ctypes.c_int64, real, real, ctypes.POINTER(real))(
        engine.get_function_address("kernel"))

    def run(n: int) -> float:
        out = real()
        function(n, M, C, ctypes.byref(out))
        return out.value

    return Kernel(dtype, bits, chains, run, engine)


def host_engine(ir_text: str) -> Any:
    """LLVM IR compiled for this CPU (its name and features, -O3): an execution engine whose
    functions' addresses stay valid as long as it lives."""
    llvm = _llvm()
    module = llvm.parse_assembly(ir_text)
    module.verify()
    machine = llvm.Target.from_default_triple().create_target_machine(
        cpu=llvm.get_host_cpu_name(), features=llvm.get_host_cpu_features().flatten(), opt=3)
    engine = llvm.create_mcjit_compiler(module, machine)
    engine.finalize_object()
    return engine


def kernel_gflops(k: Kernel, threads: int) -> float:
    """GFLOP/s of ``k`` on ``threads`` threads at once: the best of :data:`REPEATS` calls of about
    :data:`SECONDS` each, the iteration count calibrated on one thread."""
    start = time.perf_counter()
    k.run(1 << 16)
    n = max(1 << 16, int((1 << 16) * SECONDS / max(time.perf_counter() - start, 1e-9)))
    best = float("inf")
    for _ in range(REPEATS):
        barrier = threading.Barrier(threads + 1)

        def work():
            barrier.wait()
            k.run(n)

        workers = [threading.Thread(target=work) for _ in range(threads)]
        for w in workers:
            w.start()
        barrier.wait()
        start = time.perf_counter()
        for w in workers:
            w.join()
        best = min(best, time.perf_counter() - start)
    return threads * n * k.flops_per_iteration / best / 1e9


def cpu_roof(threads: int, dtypes: tuple[str, ...] = ("float32", "float64")) -> dict[str, float]:
    """GFLOP/s per dtype that ``threads`` cores can do at most: the best vector width's FMA microkernel."""
    return {dtype: max(kernel_gflops(kernel(dtype, bits), threads) for bits in vector_widths()) for dtype in dtypes}


@functools.cache
def _llvm():
    import llvmlite.binding as llvm  # numba's compiler, loaded only when the roof is measured

    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    return llvm
