#!/usr/bin/env bash
# The speech-to-text pipeline on the `tiny` model and a tiny espeak-ng corpus: all five stages of
# recipes/s2t_pipeline.yaml run, the CTC and s2t stages report WER/CER (and QA accuracy after SFT), the final checkpoint
# holds the LoRA adapters, an interrupted s2t stage resumes to the same parameters, an ablation override works,
# a misconfigured spelled text form and a corrupt audio file fail naming their place, a checkpoint over another
# vocabulary subset is refused, and `vox demo` runs its three steps; a character CTC compressor with a spelled LM
# warm-up and the uncompressed frame-rate interface run as ablations.
set -euo pipefail
: "${VOX:?set VOX to the vox binary}" "${VOX_SOURCE_DIR:?set VOX_SOURCE_DIR to the repository}"
source "$VOX_SOURCE_DIR/tests/support/tiny_s2t.sh"
tiny_s2t_begin vox_s2t
# tiny.yaml's duplex predictor labels every projector frame, which the recipe's CTC compressor removes.
short=("~model.duplex" stages.encoder_warmup.steps=3 stages.encoder_warmup.eval.every=0 stages.encoder_warmup.checkpoint.every=0
       stages.lm_warmup.steps=3 stages.prealign.steps=2 stages.fullalign.steps=4 stages.sft.steps=2
       stages.fullalign.eval.every=0 stages.fullalign.checkpoint.every=0)

# 1. All stages, in order, each from the previous one's final checkpoint.
"$VOX" train "$tmp/t.yaml" run_dir="$tmp/run" "${short[@]}" > "$tmp/run.out" 2>&1 || { cat "$tmp/run.out"; fail "pipeline"; }
for s in encoder_warmup lm_warmup prealign fullalign; do  # lm_warmup: eval.generate transcribes text forms
  grep -q "\"event\":\"eval\",.*\"stage_name\":\"$s\".*\"wer\":.*\"cer\":" "$tmp/run/metrics.jsonl" || fail "$s: no WER/CER eval"
done
grep -q '"event":"eval",.*"stage_name":"sft".*"qa_acc":' "$tmp/run/metrics.jsonl" || fail "sft: no QA accuracy"
[ "$(grep -c '"event":"eval",.*"stage_name":"prealign"' "$tmp/run/metrics.jsonl")" = 2 ] || fail "prealign: eval.at_start"
final="$tmp/run/checkpoints/s04-step00000002.h5"
[ -f "$final" ] || fail "no final checkpoint"
if command -v h5ls > /dev/null; then
  h5ls -r "$final" > "$tmp/final.ls"
  grep -q 'params/llm.model.layers.0.self_attn.q_proj.lora_A.weight' "$tmp/final.ls" || fail "no LoRA adapters in the final checkpoint"
  grep -q 'params/audio_encoder.encoder.layers.0' "$tmp/final.ls" || fail "save: all should hold the encoder too"
  grep -q 'state/vocab_subset' "$tmp/final.ls" || fail "the final checkpoint does not record its vocabulary subset"
fi
[ -s "$tmp/run/eval_4_hyp.jsonl" ] || fail "no hypotheses written for the sft eval"

# 2. Exact resume inside an s2t stage: stop after 2 of fullalign's 4 steps, resume, compare with the straight run.
"$VOX" train "$tmp/t.yaml" run_dir="$tmp/r2" "${short[@]}" stages.sft.steps=1 --stop-after 10 > "$tmp/r2.out" 2>&1 \
  || { cat "$tmp/r2.out"; fail "stopped run"; }
ls "$tmp/r2/checkpoints" | grep -q 's03-step00000002.h5' || { ls "$tmp/r2/checkpoints"; fail "no mid-stage checkpoint"; }
"$VOX" train "$tmp/t.yaml" run_dir="$tmp/r2" "${short[@]}" stages.sft.steps=1 > "$tmp/r2b.out" 2>&1 \
  || { cat "$tmp/r2b.out"; fail "resumed run"; }
if command -v h5dump > /dev/null; then
  for name in input_projector.conv.weight input_projector.layers.0.mlp.fc1.weight; do
    a=$(h5dump -d "/params/$name" "$tmp/run/checkpoints/s03-step00000004.h5" | sed 1,3d)
    b=$(h5dump -d "/params/$name" "$tmp/r2/checkpoints/s03-step00000004.h5" | sed 1,3d)
    [ -n "$a" ] && [ "$a" = "$b" ] || fail "resumed fullalign differs in $name"
  done
fi

# 3. Ablations by override: a wider LoRA, the MLP projector.
"$VOX" train "$tmp/t.yaml" run_dir="$tmp/abl" "${short[@]}" stages.encoder_warmup.steps=1 stages.lm_warmup.steps=1 stages.sft.lora.rank=16 \
  model.input_projector.kind=mlp > "$tmp/abl.out" 2>&1 || { cat "$tmp/abl.out"; fail "ablation overrides"; }
# ... a character CTC head compressed without posteriors, with the spelled LM warm-up (docs/results.md) ...
"$VOX" train "$tmp/t.yaml" run_dir="$tmp/abl_ctc" "${short[@]}" stages.encoder_warmup.steps=1 stages.lm_warmup.steps=1 \
  "~model.audio_encoder.ctc_tokens" "~model.audio_encoder.ctc_posterior" "+model.audio_encoder.ctc_alphabet= abcdefghijklmnopqrstuvwxyz'" \
  +data.text_train.spelled=true +data.text_train.spelling_noise=0.1 > "$tmp/abl_ctc.out" 2>&1 \
  || { cat "$tmp/abl_ctc.out"; fail "character ctc_compress + spelled"; }
# ... and the uncompressed frame-rate interface (the design before).
"$VOX" train "$tmp/t.yaml" run_dir="$tmp/abl_frames" "${short[@]}" stages.encoder_warmup.steps=1 stages.lm_warmup.steps=1 \
  "~model.audio_encoder.ctc_compress" "~model.audio_encoder.ctc_posterior" model.input_projector.conv_stride=2 \
  > "$tmp/abl_frames.out" 2>&1 \
  || { cat "$tmp/abl_frames.out"; fail "frame-rate interface"; }

# ... and MinMo's full-align training the encoder, its CTC loss kept (loss.ctc_weight) so the compressor's
# segmentation holds; a negative weight is refused naming the key.
"$VOX" train "$tmp/t.yaml" run_dir="$tmp/abl_hybrid" "${short[@]}" stages.encoder_warmup.steps=1 stages.lm_warmup.steps=1 \
  'stages.fullalign.trainable=[input_projector.*, audio_encoder.*]' +stages.fullalign.loss.ctc_weight=0.3 \
  > "$tmp/abl_hybrid.out" 2>&1 || { cat "$tmp/abl_hybrid.out"; fail "full-align with loss.ctc_weight"; }
grep -q "'fullalign' (task s2t).*parameters train" "$tmp/abl_hybrid.out" || { cat "$tmp/abl_hybrid.out"; fail "no fullalign"; }
if "$VOX" train "$tmp/t.yaml" run_dir="$tmp/abl_neg" "${short[@]}" +stages.fullalign.loss.ctc_weight=-1 \
     > "$tmp/abl_neg.out" 2>&1; then fail "a negative loss.ctc_weight was accepted"; fi
grep -q "loss.ctc_weight must be >= 0" "$tmp/abl_neg.out" || { cat "$tmp/abl_neg.out"; fail "no clear ctc_weight error"; }

# 3b. A spelled text form needs speech_as_text: the error says so.
if "$VOX" train "$tmp/t.yaml" run_dir="$tmp/sp" "${short[@]}" stages.encoder_warmup.steps=1 \
     +data.text_train.spelled=true data.text_train.speech_as_text=false > "$tmp/sp.out" 2>&1; then
  fail "spelled without speech_as_text accepted"
fi
grep -q "spelled: true needs speech_as_text" "$tmp/sp.out" || { cat "$tmp/sp.out"; fail "no clear error for spelled"; }

# 3c. Training on with another vocabulary subset: the checkpoint's embedding rows would mean other tokens.
python3 - "$tmp/data/vocab_subset.txt" "$tmp/other_subset.txt" <<'PY'
import sys
ids = [int(l) for l in open(sys.argv[1]) if not l.startswith("#")]
regular = [i for i in ids if 256 < i < 151643]  # past the byte tokens, before the added ones
ids.remove(regular[-1])  # one token swapped for another: same count, other meaning
ids.append(next(i for i in range(regular[-1] + 1, 151643) if i not in ids))
open(sys.argv[2], "w").write("".join(f"{i}\n" for i in sorted(ids)))
PY
if "$VOX" train "$tmp/t.yaml" run_dir="$tmp/run" "${short[@]}" stages.sft.steps=3 \
     model.llm.vocab_subset="$tmp/other_subset.txt" > "$tmp/vs.out" 2>&1; then
  fail "a checkpoint over another vocabulary subset was accepted"
fi
grep -q "model.llm.vocab_subset must name the same ids" "$tmp/vs.out" || { cat "$tmp/vs.out"; fail "no clear vocabulary error"; }

# 4. A corrupt audio file in the SFT data: a clear error naming the manifest line; the stages before keep their
#    checkpoints.
cp -r "$tmp/data" "$tmp/bad"
first=$(head -n 1 "$tmp/bad/sft_train.jsonl" | sed 's/.*"audio": *"\([^"]*\)".*/\1/')
printf 'not a wave file' > "$tmp/bad/$first"
if "$VOX" train "$tmp/t.yaml" run_dir="$tmp/rb" "${short[@]}" stages.encoder_warmup.steps=1 \
     data.sft_train.manifest="$tmp/bad/sft_train.jsonl" > "$tmp/rb.out" 2>&1; then fail "corrupt audio accepted"; fi
grep -q "sft_train.jsonl:1" "$tmp/rb.out" || { cat "$tmp/rb.out"; fail "the error does not name sft_train.jsonl:1"; }
[ -f "$tmp/rb/checkpoints/s03-step00000004.h5" ] || fail "the previous stage's checkpoint is gone"

# 5. vox demo: corpus, training, table (one step a stage on the tiny corpus).
"$VOX" demo --size tiny --data "$tmp/demo_data" --run-dir "$tmp/demo" stages.encoder_warmup.steps=1 stages.lm_warmup.steps=1 stages.prealign.steps=1 \
  stages.fullalign.steps=1 stages.sft.steps=1 > "$tmp/demo.out" 2>&1 || { cat "$tmp/demo.out"; fail "vox demo"; }
for want in "== 3/3 results" "prealign" "fullalign" "sft" "WER" "QA acc" "final checkpoint"; do
  grep -q "$want" "$tmp/demo.out" || { cat "$tmp/demo.out"; fail "vox demo output lacks '$want'"; }
done
echo "s2t pipeline: all checks passed"
