"""The numba backend's per-step GEMMs on each engine found, side by side (docs/performance.md): the
forward product, the backward one and the weight-gradient update of one step, for a cell's shapes,
in microseconds and as a fraction of the core's roof (harness.measure.roof). The engines alternate
round by round, so a slow phase of the machine hits all of them; each figure is the best round.
Outside the harness, one thread: indicative, not a benchmark result.

    MKL_NUM_THREADS=1 OMP_NUM_THREADS=1 python scripts/gemm_engines_table.py --hidden 128 --gates 4
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from harness.measure.roof import cpu_roof
from harness.report.console import render, table
from harness_plugins import numba_kernels
from harness_plugins.numba_blas import LIBRARIES


@numba_kernels.jit
def _set(blas, n, a, b, c):
    for _ in range(n):
        numba_kernels.gemm(blas, a, b, c)


@numba_kernels.jit
def _add_nt(blas, n, a, b, c):
    packed = np.empty((b.shape[1], b.shape[0]), dtype=b.dtype)  # the backend's buffer: allocated once
    for _ in range(n):
        numba_kernels.gemm_add_nt(blas, a, b, c, packed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--inputs", type=int, default=6, help="the task's input size (temporal order: 6)")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--gates", type=int, default=4, help="gate blocks: 1 rnn_tanh, 4 lstm")
    parser.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=1000, help="GEMMs per timed round")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    G, K, B = args.gates * args.hidden, args.hidden + args.inputs, args.batch

    def buffer(rows, cols):
        return rng.standard_normal((rows, cols)).astype(args.dtype)

    w, w_t, hx, da, gates, dhx = buffer(G, K), buffer(K, G), buffer(K, B), buffer(G, B), buffer(G, B), buffer(K, B)
    dw = buffer(G, K)
    products = {  # name: (kernel, operands), as the kernels call them each step
        f"forward  {G} x {K} @ {K} x {B}": (_set, (w, hx, gates)),
        f"backward {K} x {G} @ {G} x {B}": (_set, (w_t, da, dhx)),
        f"dW += {G} x {B} @ ({K} x {B})^T": (_add_nt, (da, hx, dw)),
    }
    engines = [name for name in numba_kernels.FOUND if name != "np.dot"]
    best = {(p, e): float("inf") for p in products for e in engines}
    for _ in range(args.rounds):
        for product, (kernel, operands) in products.items():
            for engine in engines:
                tag = LIBRARIES[engine].tag
                kernel(tag, 2, *operands)
                start = time.perf_counter()
                kernel(tag, args.calls, *operands)
                best[product, engine] = min(best[product, engine], (time.perf_counter() - start) / args.calls)
    roof = cpu_roof(1, (args.dtype,))[args.dtype]
    flops = 2.0 * G * K * B
    rows = [[p, *(f"{best[p, e] * 1e6:.1f} us ({flops / best[p, e] / 1e9 / roof:.0%})" for e in engines)]
            for p in products]
    print(f"one step's GEMMs, {args.dtype}, best of {args.rounds} rounds of {args.calls}; "
          f"(% of the roof, {roof:.0f} GFLOP/s)")
    print(render(table(["product", *engines], rows)))


if __name__ == "__main__":
    main()
