"""Register-blocked GEMM tiles compiled by LLVM for this CPU: the numba kernels' per-step GEMMs at the
core's FMA throughput.

The per-step GEMMs are small and fixed (LSTM, H 128, B 32: 512 x 134 @ 134 x 32 forward, 134 x 512 @
512 x 32 and the rank-32 weight update backward). On an AMD core MKL does not take its fastest paths
and NumPy's OpenBLAS is held to older kernels: on a Zen 4 core both ran the two products at 79-83% of
the core's roof (measure/roof.py), the tiles at 96-99%; the weight update, whose inner dimension is
the batch (32), at 75-80% all three (docs/performance.md).

A tile computes a block of at most ``MR`` rows and ``VECTORS`` vectors of C = A @ B (+ C) with its
accumulators in registers: per k, ``VECTORS`` vector loads of B's row, ``MR`` broadcasts of A's
column, ``MR x VECTORS`` fused multiply-adds; A, B and C are row-major with any row stride, so a tile
reads a buffer's row block where it lies. 6 x 2 vectors is the classic shape for x86's vector units:
12 accumulators hide the FMA latency on two pipes and, with two B vectors and a broadcast, fit AVX2's
16 registers. The vectors are the widest the CPU has (measure/roof.py's ``vector_widths``): 16
float32 with AVX-512.

Each tile function takes ``m <= MR`` rows and ``n <= vectors x lanes`` columns: rows beyond ``m`` read
A's last row and are not stored, columns beyond ``n`` are masked, so one function per vector count
covers every edge, and a full tile (the common case) runs a loop without masks. ``keep`` adds C's
previous value (a weight gradient accumulated step by step). The functions are compiled once per
process (about 0.1 s) and registered with LLVM as symbols, as numba_blas.py does for the BLAS
libraries: ``harness_tiles_{s,d}gemm{vectors}``, called by numba_kernels.py's tile loop.
"""
from __future__ import annotations

import functools

from harness.measure.blas import LETTERS
from harness.measure.roof import ELEMENTS, host_engine, vector_widths

#: rows of A (and C) per tile
MR = 6
#: vector counts of the compiled tiles: the widest does full blocks, the narrower the last columns
VECTORS = (1, 2)
_ENGINES: list = []  # the compiled code lives as long as its engine


def symbol(letter: str, vectors: int) -> str:
    """The LLVM symbol of the tile with ``vectors`` vectors for BLAS letter ``letter`` (s, d)."""
    return f"harness_tiles_{letter}gemm{vectors}"


def tile_ir(dtype: str, bits: int, vectors: int) -> str:
    """LLVM IR of ``void tile(i64 K, ptr A, i64 lda, ptr B, i64 ldb, ptr C, i64 ldc, i64 m, i64 n,
    i64 keep)``: C[:m, :n] = A[:m, :K] @ B[:K, :n] + (C[:m, :n] if keep), m <= MR, n <= vectors x lanes,
    strides in elements."""
    letter, (elem, _, size) = LETTERS[dtype], ELEMENTS[dtype]
    lanes = bits // size
    vt, mt, it = f"<{lanes} x {elem}>", f"<{lanes} x i1>", f"<{lanes} x i64>"
    splat = f"<{lanes} x i32> zeroinitializer"
    iota = "<" + ", ".join(f"i64 {i}" for i in range(lanes)) + ">"
    load, store = f"@llvm.masked.load.v{lanes}f{size}.p0", f"@llvm.masked.store.v{lanes}f{size}.p0"
    fma = f"@llvm.fma.v{lanes}f{size}"
    rows, vecs = range(MR), range(vectors)
    out = [f"define void @{symbol(letter, vectors)}(i64 %K, ptr noalias %A, i64 %lda, ptr noalias %B, i64 %ldb, "
           f"ptr noalias %C, i64 %ldc, i64 %m, i64 %n, i64 %keep) #0 {{",
           "entry:",
           f"  %n0 = insertelement {it} poison, i64 %n, i32 0",
           f"  %ns = shufflevector {it} %n0, {it} poison, {splat}",
           "  %kept = icmp ne i64 %keep, 0",
           "  %last = sub i64 %m, 1",
           f"  %full = icmp eq i64 %n, {vectors * lanes}",
           "  %some = icmp sgt i64 %K, 0"]
    for v in vecs:  # lanes of vector v that lie within the n columns
        out += [f"  %lim{v} = sub {it} %ns, <{', '.join([f'i64 {v * lanes}'] * lanes)}>",
                f"  %cols{v} = icmp slt {it} {iota}, %lim{v}"]
    for r in rows:  # row r of A (its last row where r >= m) and of C, and which of C's lanes exist
        out += [f"  %in{r} = icmp slt i64 {r}, %m",
                f"  %ar{r} = select i1 %in{r}, i64 {r}, i64 %last",
                f"  %ao{r} = mul i64 %ar{r}, %lda",
                f"  %arow{r} = getelementptr {elem}, ptr %A, i64 %ao{r}",
                f"  %co{r} = mul i64 {r}, %ldc",
                f"  %crow{r} = getelementptr {elem}, ptr %C, i64 %co{r}",
                f"  %rk{r} = and i1 %in{r}, %kept"]
        for v in vecs:
            out += [f"  %cp{r}_{v} = getelementptr {elem}, ptr %crow{r}, i64 {v * lanes}",
                    f"  %ri{r}_{v} = insertelement {mt} poison, i1 %in{r}, i32 0",
                    f"  %rs{r}_{v} = shufflevector {mt} %ri{r}_{v}, {mt} poison, {splat}",
                    f"  %st{r}_{v} = and {mt} %rs{r}_{v}, %cols{v}",  # the lanes stored
                    f"  %ki{r}_{v} = insertelement {mt} poison, i1 %rk{r}, i32 0",
                    f"  %ks{r}_{v} = shufflevector {mt} %ki{r}_{v}, {mt} poison, {splat}",
                    f"  %ld{r}_{v} = and {mt} %ks{r}_{v}, %cols{v}",  # the lanes of C kept
                    f"  %c{r}_{v} = call {vt} {load}(ptr %cp{r}_{v}, i32 {size // 8}, {mt} %ld{r}_{v}, "
                    f"{vt} zeroinitializer)"]
    out += ["  br i1 %some, label %choose, label %exit",
            "choose:",
            "  br i1 %full, label %loop_full, label %loop_edge"]
    for loop, masked in (("loop_full", False), ("loop_edge", True)):
        p = loop[5]  # f or e: a prefix for this loop's values
        out += [f"{loop}:",
                f"  %{p}k = phi i64 [0, %choose], [%{p}kn, %{loop}]",
                f"  %{p}bp = phi ptr [%B, %choose], [%{p}bpn, %{loop}]"]
        out += [f"  %{p}acc{r}_{v} = phi {vt} [%c{r}_{v}, %choose], [%{p}s{r}_{v}, %{loop}]"
                for r in rows for v in vecs]
        for v in vecs:
            out.append(f"  %{p}bq{v} = getelementptr {elem}, ptr %{p}bp, i64 {v * lanes}")
            out.append(f"  %{p}b{v} = call {vt} {load}(ptr %{p}bq{v}, i32 {size // 8}, {mt} %cols{v}, "
                       f"{vt} zeroinitializer)" if masked else
                       f"  %{p}b{v} = load {vt}, ptr %{p}bq{v}, align {size // 8}")
        for r in rows:
            out += [f"  %{p}ap{r} = getelementptr {elem}, ptr %arow{r}, i64 %{p}k",
                    f"  %{p}as{r} = load {elem}, ptr %{p}ap{r}, align {size // 8}",
                    f"  %{p}ai{r} = insertelement {vt} poison, {elem} %{p}as{r}, i32 0",
                    f"  %{p}a{r} = shufflevector {vt} %{p}ai{r}, {vt} poison, {splat}"]
            out += [f"  %{p}s{r}_{v} = call {vt} {fma}({vt} %{p}a{r}, {vt} %{p}b{v}, {vt} %{p}acc{r}_{v})"
                    for v in vecs]
        out += [f"  %{p}bpn = getelementptr {elem}, ptr %{p}bp, i64 %ldb",
                f"  %{p}kn = add i64 %{p}k, 1",
                f"  %{p}done = icmp sge i64 %{p}kn, %K",
                f"  br i1 %{p}done, label %exit, label %{loop}"]
    out.append("exit:")
    out += [f"  %r{r}_{v} = phi {vt} [%c{r}_{v}, %entry], [%fs{r}_{v}, %loop_full], [%es{r}_{v}, %loop_edge]"
            for r in rows for v in vecs]
    out += [f"  call void {store}({vt} %r{r}_{v}, ptr %cp{r}_{v}, i32 {size // 8}, {mt} %st{r}_{v})"
            for r in rows for v in vecs]
    out += ["  ret void", "}",
            f"declare {vt} {load}(ptr, i32, {mt}, {vt})",
            f"declare void {store}({vt}, ptr, i32, {mt})",
            f"declare {vt} {fma}({vt}, {vt}, {vt})"]
    return "\n".join(out)


def module_ir(bits: int) -> str:
    """Every tile, for both dtypes, at vector width ``bits``, as one LLVM module."""
    functions = [tile_ir(dtype, bits, vectors) for dtype in LETTERS for vectors in VECTORS]
    declarations = sorted({line for f in functions for line in f.splitlines() if line.startswith("declare")})
    bodies = ["\n".join(line for line in f.splitlines() if not line.startswith("declare")) for f in functions]
    widths = f'"min-legal-vector-width"="{bits}" "prefer-vector-width"="{bits}"'
    return "\n".join([*bodies, *declarations, f"attributes #0 = {{ {widths} nounwind }}"])


@functools.cache
def register_tiles() -> dict[str, int]:
    """Compile the tiles at this CPU's widest vector width and register them with LLVM, once per
    process; returns the lanes of one vector per BLAS letter (the columns a tile covers per vector)."""
    import llvmlite.binding as llvm_binding

    bits = max(vector_widths())
    engine = host_engine(module_ir(bits))
    _ENGINES.append(engine)
    for letter in LETTERS.values():
        for vectors in VECTORS:
            llvm_binding.add_symbol(symbol(letter, vectors), engine.get_function_address(symbol(letter, vectors)))
    return {letter: bits // ELEMENTS[dtype][2] for dtype, letter in LETTERS.items()}
