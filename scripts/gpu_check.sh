#!/usr/bin/env bash
# GPU check for the torch-cuda backend, for a machine with a CUDA GPU and torch already installed
# and NO network: installs this working tree without dependencies, runs the CUDA tests, runs the
# long-range suite on torch-cuda and numpy, and prints a table last (scripts/gpu_table.py):
# harness torch-cuda forward+backward median vs a bare cuDNN loop timed with CUDA events.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONDONTWRITEBYTECODE=1

python -m pip install --quiet --no-deps --no-build-isolation -e .
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
python - <<'PY'
import torch
device = torch.cuda.get_device_name() if torch.cuda.is_available() else "none: CUDA tests will be skipped"
print("torch", torch.__version__, "cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version(), "device", device)
PY

echo "== CUDA tests (float64 <= 1e-10, float32 with TF32 off <= 1e-4) =="
python -m pytest -q -p no:cacheprovider tests/test_torch_backend.py tests/test_reference.py

echo "== harness run suites/long_range --backends torch-cuda,numpy =="
out=$(mktemp -d)
harness run suites/long_range --backends torch-cuda,numpy --budget 0.5 --no-asv --output "$out/run.json" -q

echo "== torch-cuda: harness vs bare cuDNN loop =="
python scripts/gpu_table.py "$out/run.json"
