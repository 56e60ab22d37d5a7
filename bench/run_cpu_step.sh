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
# The vox program runs with OMP_WAIT_POLICY=PASSIVE unless told otherwise (src/cli/main.c): spinning OpenMP
# workers compete with OpenBLAS's threads between kernels. Measure that default, then the spinning policy.
OMP_WAIT_POLICY=PASSIVE VOX_NUM_THREADS="$threads" OMP_NUM_THREADS="$threads" OPENBLAS_NUM_THREADS="$threads" \
  "$build/bench_cpu_step" --threads "$threads" --steps "$steps"
echo "# vox again with OMP_WAIT_POLICY=ACTIVE (spinning workers):"
OMP_WAIT_POLICY=ACTIVE VOX_NUM_THREADS="$threads" OMP_NUM_THREADS="$threads" OPENBLAS_NUM_THREADS="$threads" \
  "$build/bench_cpu_step" --threads "$threads" --steps "$steps"
OMP_NUM_THREADS="$threads" /usr/bin/python3 "$here/cpu_step_torch.py" --threads "$threads" --steps "$steps"
