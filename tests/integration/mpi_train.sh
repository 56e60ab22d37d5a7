#!/usr/bin/env bash
# `vox train` data-parallel: the tiny LM recipe with one global batch of 4 plan batches — 1 rank x 4 micro-batches
# and 2 ranks x 2 (DDP, and ZeRO-1) — ends with the same parameters; a ZeRO-1 checkpoint written at world 2
# after step 1 resumes at world 4 (ZeRO-1) and at world 1 to the same step-2 result (optimizer state gathered and
# re-sharded, data position translated). Skips (77) when mpirun or the Qwen tokenizer is absent.
set -euo pipefail
if ! command -v mpirun >/dev/null 2>&1; then echo "SKIP: mpirun not found"; exit 77; fi
SRC=${VOX_SOURCE_DIR:?}; VOXBIN=${VOX:?}; D=${DIST_DRIVER:?}
if [ ! -f "$SRC/.cache/qwen3-tokenizer-3.7.2/tokenizer.json" ]; then
  echo "SKIP: tokenizer missing (data_tools/fetch_qwen_tokenizer.sh)"; exit 77
fi
export VOX_NUM_THREADS=1 OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
MPI=(mpirun --allow-run-as-root --oversubscribe --bind-to none)
W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
cd "$SRC/recipes"
ARGS=(lm_tiny.yaml stages.0.steps=2 stages.0.eval.every=0 stages.0.eval.max_batches=1 stages.0.checkpoint.every=1
      stages.0.log_every=1 stages.0.data.max_seq_tokens=32)
train() { # run_dir np args...
  local dir=$1 np=$2; shift 2
  local t0; t0=$(date +%s)
  if [ "$np" = 1 ]; then "$VOXBIN" train "${ARGS[@]}" run_dir="$W/$dir" "$@" >"$W/$dir.log" 2>&1
  else "${MPI[@]}" -np "$np" "$VOXBIN" train "${ARGS[@]}" run_dir="$W/$dir" "$@" >"$W/$dir.log" 2>&1; fi \
    || { cat "$W/$dir.log"; echo "FAIL: $dir"; exit 1; }
  echo "$dir (world $np $*): $(( $(date +%s) - t0 )) s"
}
final() { echo "$W/$1/checkpoints/s00-step00000002.h5"; }
train ref 1 stages.0.batch.grad_accum=4
grep 'step 2/2' "$W/ref.log"
train w2 2 stages.0.batch.grad_accum=2
train w2z 2 stages.0.batch.grad_accum=2 +distributed.zero=1 --stop-after 1
cp -r "$W/w2z" "$W/w2z_to1"
train w2z 4 stages.0.batch.grad_accum=1 +distributed.zero=1 +distributed.bucket_mb=1
grep -q 'resuming stage 1/1' "$W/w2z.log" || { echo "FAIL: world 4 did not resume"; exit 1; }
train w2z_to1 1 stages.0.batch.grad_accum=4
for d in w2 w2z w2z_to1; do "$D" --compare "$(final ref)" "$(final "$d")" 5e-5; done
# the same loss at step 2 everywhere (printed by rank 0)
for d in w2 w2z w2z_to1; do
  a=$(grep -o 'step 2/2  loss [0-9.]*' "$W/ref.log"); b=$(grep -o 'step 2/2  loss [0-9.]*' "$W/$d.log")
  [ "$a" = "$b" ] || { echo "FAIL: $d: '$b' vs '$a'"; exit 1; }
done
echo "mpi_train: OK"
