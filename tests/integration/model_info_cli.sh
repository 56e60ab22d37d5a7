#!/usr/bin/env bash
# `vox model-info` end to end: the shipped configs' published sizes (Qwen2.5-7B 7615616512 and Qwen2.5-0.5B
# 494032768 parameters), the LoRA SFT section, and a bad key named with file:line.
set -euo pipefail
: "${VOX:?VOX must name the vox binary}" "${VOX_SOURCE_DIR:?VOX_SOURCE_DIR must name the repository}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
out="$("$VOX" model-info "$VOX_SOURCE_DIR/configs/models/minmo-7b.yaml")"
grep -Eq '^llm +7615616512 ' <<<"$out" || { echo "model_info: Qwen2.5-7B count wrong:"; echo "$out"; exit 1; }
grep -q 'total with checkpointing' <<<"$out" || { echo "model_info: no SFT memory section"; exit 1; }
out="$("$VOX" model-info "$VOX_SOURCE_DIR/configs/models/qwen2.5-0.5b.yaml" --batch 2 --seq 512)"
grep -Eq '^llm +494032768 ' <<<"$out" || { echo "model_info: Qwen2.5-0.5B count wrong:"; echo "$out"; exit 1; }
grep -q 'batch 2 x 512' <<<"$out" || { echo "model_info: options ignored"; exit 1; }
printf 'model:\n  llm:\n    hiden_size: 8\n' > "$tmp/bad.yaml"
if "$VOX" model-info "$tmp/bad.yaml" 2> "$tmp/err"; then echo "model_info: bad key accepted"; exit 1; fi
grep -q "bad.yaml:3" "$tmp/err" && grep -q "hidden_size" "$tmp/err" || { echo "model_info: error:"; cat "$tmp/err"; exit 1; }
echo "model_info_cli: ok"
