#!/usr/bin/env bash
# CPU training-step benchmark, vox vs PyTorch on the same tiny LM and thread count, in one run.
# usage: bench/run_cpu_step.sh [BUILD_DIR] [THREADS] [STEPS]   (defaults: build 2 10)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
build="${1:-$here/../build}"
threads="${2:-2}"
steps="${3:-10}"
if [[ ! -x "$build/bench_cpu_step" ]]; then
  echo "run_cpu_step.sh: $build/bench_cpu_step not found; build first (cmake --build $build)" >&2
  exit 1
fi
echo "# one training step (forward + backward + AdamW), batch 8 x 256, d_model 256, 4 layers, 4 heads / 2 KV heads, $threads threads"
VOX_NUM_THREADS="$threads" OMP_NUM_THREADS="$threads" OPENBLAS_NUM_THREADS="$threads" \
  "$build/bench_cpu_step" --threads "$threads" --steps "$steps"
# OpenMP's spin-waiting workers compete with OpenBLAS's own threads for the cores between kernels; with passive
# waiting they sleep instead. Shown separately so the default-environment figure stays the headline one.
echo "# vox again with OMP_WAIT_POLICY=PASSIVE:"
OMP_WAIT_POLICY=PASSIVE VOX_NUM_THREADS="$threads" OMP_NUM_THREADS="$threads" OPENBLAS_NUM_THREADS="$threads" \
  "$build/bench_cpu_step" --threads "$threads" --steps "$steps"
OMP_NUM_THREADS="$threads" /usr/bin/python3 "$here/cpu_step_torch.py" --threads "$threads" --steps "$steps"
