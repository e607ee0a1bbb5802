"""The torch backend's generic path (any cell, stepped from its step function with autograd) against
the stepped exact path it had before (the classic LSTM's equations written out, ``_stepped_backward``),
side by side in one process on torch-cpu, one thread, float32, T=200, B=32, H=128.

    python scripts/generic_path_timing.py [--inputs 6] [--repeat 15]

Prints the median seconds of forward + backward of each, and their ratio (issue 27 asks for the
generic one within 1.5x). Both compute every parameter gradient and dL/dx; the stepped exact path
also the per-step dL/dh_t and dL/dc_t, so the generic path is timed both ways: its timed backward
(what training needs) and its exact one (``per_step=True``).
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from harness.testing import random_problem
from harness_plugins.torch_backend import GenericPath, TorchCPUBackend


def _median(fn, repeat: int) -> float:
    fn()  # warm-up
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--inputs", type=int, default=6)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--cell", default="lstm")
    args = parser.parse_args()
    torch.set_num_threads(1)
    shape = (200, 32, args.inputs, 128)
    problem = random_problem(args.cell, shape, "float32", seed=0)
    backend = TorchCPUBackend(threads=1)
    backend.prepare(problem)
    generic = GenericPath(torch, problem, "cpu")
    grad = backend.grad_h

    def stepped():
        backend._stepped_backward()

    def generic_timed():
        generic.forward()
        generic.backward(grad, per_step=False)

    def generic_exact():
        generic.forward()
        generic.backward(grad, per_step=True)

    rounds = {"stepped exact": [], "generic timed": [], "generic exact": []}
    for _ in range(3):  # interleaved, so that a drifting machine hits all three alike
        rounds["stepped exact"].append(_median(stepped, args.repeat))
        rounds["generic timed"].append(_median(generic_timed, args.repeat))
        rounds["generic exact"].append(_median(generic_exact, args.repeat))
    base = statistics.median(rounds["stepped exact"])
    print(f"{args.cell} T, B, I, H = {shape} float32, torch {torch.__version__}, 1 thread")
    for name, values in rounds.items():
        m = statistics.median(values)
        print(f"{name:15s} {m * 1e3:8.2f} ms  ({' '.join(f'{v * 1e3:.1f}' for v in values)})  x{m / base:.2f}")


if __name__ == "__main__":
    main()
