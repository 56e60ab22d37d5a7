#!/usr/bin/env bash
# GPU benchmarks, vox vs PyTorch on the same GPU in one run: GEMM (vs torch.matmul / cuBLAS), attention forward and
# forward+backward (vs scaled_dot_product_attention), and one Qwen2.5-0.5B-shaped training step (vs PyTorch eager
# and torch.compile). Prints one table per benchmark; raw RESULT lines are kept in $OUT_DIR/gpu_results.txt.
# usage: bench/run_gpu.sh [BUILD_DIR] [BATCH] [PEAK_TFLOPS]   (defaults: build 4 989)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
build="${1:-$here/../build}"
batch="${2:-4}"
peak="${3:-989}"
python="${PYTHON:-python3}"   # the python3 on PATH: where PyTorch is installed for the GPU
out_dir="${OUT_DIR:-$build}"
results="$out_dir/gpu_results.txt"
for prog in bench_gpu_gemm bench_gpu_attention bench_gpu_step; do
  if [[ ! -x "$build/$prog" ]]; then
    echo "run_gpu.sh: $build/$prog not found; build first (cmake --build $build)" >&2
    exit 1
  fi
done
: > "$results"
command -v nvidia-smi > /dev/null && nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader
# Each program appends its RESULT lines; anything else it prints goes to the terminal.
run() { "$@" | tee -a "$results" | grep -v '^RESULT' || true; }
run "$build/bench_gpu_gemm" 20
run "$python" "$here/gpu_gemm_torch.py" 20
run "$build/bench_gpu_attention" 10
run "$python" "$here/gpu_attention_torch.py" 10
run "$build/bench_gpu_step" --batch "$batch" --peak-tflops "$peak"
run "$python" "$here/gpu_step_torch.py" --batch "$batch" --peak-tflops "$peak"

# Table: one row per (benchmark, case), columns vox | torch | torch-compile | vox/torch.
awk '
  $1 == "RESULT" {
    key = $2 " " $3
    if (!(key in seen)) { seen[key] = 1; order[n++] = key }
    val[key, $4] = $5
    if (!($2 in unit)) unit[$2] = $6
  }
  END {
    last = ""
    for (i = 0; i < n; i++) {
      split(order[i], k, " ")
      if (k[1] != last) {
        printf "\n## %s (%s)\n", k[1], unit[k[1]]
        printf "| %-34s | %10s | %10s | %13s | %9s |\n", "case", "vox", "torch", "torch-compile", "vox/torch"
        printf "|%s|%s|%s|%s|%s|\n", "------------------------------------", "------------", "------------", "---------------", "-----------"
        last = k[1]
      }
      v = val[order[i], "vox"]; t = val[order[i], "torch"]; c = val[order[i], "torch-compile"]
      r = (v != "" && t != "" && t + 0 > 0) ? sprintf("%.2f", v / t) : "-"
      printf "| %-34s | %10s | %10s | %13s | %9s |\n", k[2], v == "" ? "-" : v, t == "" ? "-" : t, c == "" ? "-" : c, r
    }
  }' "$results"
