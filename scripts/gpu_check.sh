#!/usr/bin/env bash
# GPU check, for a machine with a CUDA GPU and torch already installed and NO network: installs this
# working tree without dependencies (asv and its pure-Python needs from .whl/ when carried there),
# runs the CUDA tests, the long-range suite and the kernels suite (DeepBench-style sizes) on
# torch-cuda, and prints a table last (scripts/gpu_table.py): harness vs a bare cuDNN loop timed
# with CUDA events, the exact per-step-gradient path vs the fused forward + backward (every cell, on the
# fused, generic and scan paths), achieved
# GFLOP/s and the fraction of the GPU's measured GEMM peak. Results files go to $OUT when set.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
out=${OUT:-$(mktemp -d)}

if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
python3 -m pip install --quiet --no-deps --no-build-isolation -e .
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
python3 - <<'PY'
import torch
device = torch.cuda.get_device_name() if torch.cuda.is_available() else "none: CUDA tests will be skipped"
print("torch", torch.__version__, "cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version(), "device", device)
PY

echo "== $(date +%T) CUDA tests (float64 <= 1e-10, float32 with TF32 off <= 1e-4) =="
python3 -m pytest -q -p no:cacheprovider tests/test_torch_backend.py tests/test_reference.py

echo "== $(date +%T) harness run suites/long_range --backends torch-cuda --time-exact =="
python3 -m harness run suites/long_range --backends torch-cuda --budget 0.5 --time-exact --no-asv \
    --output "$out/long_range.json" -q

echo "== $(date +%T) every cell: fused, generic and scan paths (suites/cells at T = 200, 500) =="
python3 -m harness run suites/cells --backends torch-cuda,torch-cuda-generic,torch-cuda-scan --seq-lens 200,500 \
    --hidden 128 --batch 32 --budget 0.3 --time-exact --no-asv --output "$out/cells.json" -q

echo "== $(date +%T) harness run kernels --backends torch-cuda (GPU sizes) =="
python3 -m harness run kernels --backends torch-cuda --hidden 256,1024,2048 --batch 16,256 --seq-lens 50 \
    --budget 0.3 --no-asv --output "$out/kernels.json" -q

echo "== $(date +%T) torch-cuda: harness vs bare cuDNN, profile path, roofline =="
python3 scripts/gpu_table.py "$out/long_range.json" "$out/cells.json" "$out/kernels.json"
