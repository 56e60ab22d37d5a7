#!/usr/bin/env bash
# `vox train` end to end on recipes/lm_tiny.yaml: SIGTERM (a real signal) checkpoints at the next step boundary and
# exits 0; kill -9 while a checkpoint is being written (held by the debug hook) leaves the previous one loadable and
# resume finishes; checkpoints are plain HDF5 (h5dump); `vox plot` draws a PNG; a bad override names the key; the
# CPU block cache leaves every result bit for bit the same.
set -euo pipefail
: "${VOX:?VOX must name the vox binary}" "${VOX_SOURCE_DIR:?VOX_SOURCE_DIR must name the repository}"
if ! bash "$VOX_SOURCE_DIR/data_tools/fetch_qwen_tokenizer.sh" > /dev/null; then
  echo "train_cli: SKIPPED: Qwen3 tokenizer.json could not be fetched" >&2
  exit 0
fi
tmp="$(mktemp -d)"
pids=()
cleanup() { for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done; rm -rf "$tmp"; }
trap cleanup EXIT
recipe="$VOX_SOURCE_DIR/recipes/lm_tiny.yaml"
small=(model.llm.hidden_size=16 model.llm.intermediate_size=32 stages.0.eval.every=0 stages.0.log_every=1)

# wait_for FILE PATTERN SECONDS
wait_for() {
  for _ in $(seq $(( $3 * 10 ))); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
  echo "train_cli: timed out waiting for '$2' in $1" >&2; cat "$1" >&2 || true; return 1
}

# 1. SIGTERM mid-run: checkpoint at the next step boundary, exit 0, then resume to the end.
"$VOX" train "$recipe" run_dir="$tmp/sig" stages.0.steps=400 "${small[@]}" > "$tmp/sig.log" 2>&1 &
pid=$!; pids+=("$pid")
wait_for "$tmp/sig/metrics.jsonl" '"step":2,' 120
kill -TERM "$pid"
rc=0; wait "$pid" || rc=$?
[ "$rc" -eq 0 ] || { echo "train_cli: SIGTERM exit code $rc" >&2; cat "$tmp/sig.log" >&2; exit 1; }
grep -q '"event":"stop"' "$tmp/sig/metrics.jsonl"
stopped=$(grep '"event":"stop"' "$tmp/sig/metrics.jsonl" | sed 's/.*"step":\([0-9]*\).*/\1/')
[ -f "$tmp/sig/checkpoints/$(printf 's00-step%08d.h5' "$stopped")" ] || { echo "train_cli: no checkpoint at step $stopped" >&2; exit 1; }
[ "$stopped" -lt 400 ]
"$VOX" train "$recipe" run_dir="$tmp/sig" stages.0.steps=$((stopped + 2)) "${small[@]}" > "$tmp/sig2.log" 2>&1
grep -q "resuming stage 1/1 'lm' (task lm) at step $stopped/" "$tmp/sig2.log"
[ -f "$tmp/sig/checkpoints/$(printf 's00-step%08d.h5' $((stopped + 2)))" ]

# 2. kill -9 while the step-4 checkpoint is written: step 2's stays valid; resume continues from it.
"$VOX" train "$recipe" run_dir="$tmp/k9" stages.0.steps=6 stages.0.checkpoint.every=2 "${small[@]}" \
  +debug.hang_in_checkpoint_at=4 > "$tmp/k9.log" 2>&1 &
pid=$!; pids+=("$pid")
wait_for "$tmp/k9.log" "holding the checkpoint of step 4" 120
compgen -G "$tmp/k9/checkpoints/s00-step00000004.h5.tmp-*" > /dev/null || { echo "train_cli: no temporary file" >&2; exit 1; }
kill -9 "$pid"; wait "$pid" 2>/dev/null || true
[ ! -e "$tmp/k9/checkpoints/s00-step00000004.h5" ]
"$VOX" train "$recipe" run_dir="$tmp/k9" stages.0.steps=6 stages.0.checkpoint.every=2 "${small[@]}" > "$tmp/k9b.log" 2>&1
grep -q "resuming stage 1/1 'lm' (task lm) at step 2/6" "$tmp/k9b.log"
[ -f "$tmp/k9/checkpoints/s00-step00000006.h5" ]
if compgen -G "$tmp/k9/checkpoints/*.tmp-*" > /dev/null; then echo "train_cli: stale temporary kept" >&2; exit 1; fi

# 3. the layout is plain HDF5
if command -v h5dump > /dev/null; then
  h5dump -A "$tmp/k9/checkpoints/s00-step00000006.h5" > "$tmp/attrs.txt"
  for a in vox_version config stage step optim_step sources save seed; do grep -q "ATTRIBUTE \"$a\"" "$tmp/attrs.txt"; done
  h5dump -H "$tmp/k9/checkpoints/s00-step00000006.h5" > "$tmp/header.txt"
  grep -q 'DATASET "llm.model.embed_tokens.weight"' "$tmp/header.txt"
  grep -q 'GROUP "llm.model.norm.weight"' "$tmp/header.txt"   # /optim/<name>/{m,v}
  h5dump -d /state/loader "$tmp/k9/checkpoints/s00-step00000006.h5" > /dev/null
else
  echo "train_cli: h5dump not installed (hdf5-tools); layout check skipped" >&2
fi

# 4. plot
"$VOX" plot "$tmp/k9" --out "$tmp/curves.png" > /dev/null
[ "$(head -c 4 "$tmp/curves.png" | tail -c 3)" = "PNG" ]

# 5. a typo in an override names the key; bf16 on CPU is refused
if "$VOX" train "$recipe" run_dir="$tmp/bad" +stages.0.optimizer.lrr=1 > /dev/null 2> "$tmp/err"; then
  echo "train_cli: unknown key accepted" >&2; exit 1
fi
grep -q "<override>.*stages.0.optimizer.lrr.*did you mean 'lr'" "$tmp/err" || { cat "$tmp/err" >&2; exit 1; }
if "$VOX" train "$recipe" run_dir="$tmp/bad" precision=bf16 > /dev/null 2> "$tmp/err"; then
  echo "train_cli: bf16 on CPU accepted" >&2; exit 1
fi
grep -q "precision" "$tmp/err"
# 6. The CPU backend's block cache never changes a result: 12 steps with and without it give identical losses,
#    gradient norms and parameters (the embedding, its gradient and the LM-head rows are all cached blocks).
for c in 0 2048; do
  VOX_CPU_CACHE_MB=$c "$VOX" train "$recipe" run_dir="$tmp/cache$c" stages.0.steps=12 stages.0.checkpoint.every=0 \
    stages.0.eval.every=0 stages.0.log_every=1 > /dev/null 2>&1
done
cmp <(grep -o '"loss":[^,]*,"lr":[^,]*,"grad_norm":[^,]*' "$tmp/cache0/metrics.jsonl") \
    <(grep -o '"loss":[^,]*,"lr":[^,]*,"grad_norm":[^,]*' "$tmp/cache2048/metrics.jsonl") \
  || { echo "train_cli: the block cache changed the training curve" >&2; exit 1; }
[ "$(grep -c '"loss"' "$tmp/cache0/metrics.jsonl")" -ge 12 ] || { echo "train_cli: no step lines" >&2; exit 1; }
if command -v h5dump > /dev/null; then
  for c in 0 2048; do h5dump -d /params/llm.model.embed_tokens.weight "$tmp/cache$c/checkpoints/s00-step00000012.h5" | sed 1,3d > "$tmp/emb$c"; done
  cmp "$tmp/emb0" "$tmp/emb2048" || { echo "train_cli: the block cache changed the parameters" >&2; exit 1; }
fi
echo "train_cli: ok (SIGTERM stop at step $stopped)"
