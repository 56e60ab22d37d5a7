#!/usr/bin/env bash
# Builds the speech-to-text corpus the s2t recipes train on: an espeak-ng ASR corpus and a spoken-QA corpus, QA split
# into train/dev, the SFT mixes (ASR + QA) and the encoder's CTC mix (ASR + QA questions).
# data_tools/build_s2t_corpus.sh OUT_DIR [tiny|small|medium]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
py=/usr/bin/python3; [ -x "$py" ] || py=python3
out=${1:?usage: build_s2t_corpus.sh OUT_DIR [tiny|small|medium]}
size=${2:-medium}
# medium's ASR part: 8 h from 120 voices. Dev and test speakers are never heard in training, so an encoder learnt
# from scratch needs many voices to generalise (with 32 training voices its dev loss rose after ~500 steps), and many
# sentences: on 3 h its 2,800 warm-up steps memorised the training set (4% WER there, 37% on dev; on 8 h, 20% on the
# same dev utterances). Items are drawn one by one from the seed, so a larger build extends a smaller one.
case $size in
  tiny) asr=(tiny) qa=(tiny) ;;
  small) asr=(small) qa=(--minutes 5) ;;
  medium) asr=(--hours 8 --speakers 120) qa=(--minutes 30) ;;
  *) echo "build_s2t_corpus.sh: size must be tiny, small or medium" >&2; exit 2 ;;
esac
# The stamp names what was built, so a finished corpus is reused and a different request rebuilds.
stamp="$out/.complete-$size-v4"
# The encoder's CTC data: the ASR training set plus the spoken-QA training questions as ASR items (the question is
# the transcript), so the encoder that later hands the LLM its tokens has heard the questions' words too. Derived
# from the synthesised files, so an earlier build gains it without being synthesised again.
ctc_train() {
  "$py" - "$out" <<'PY'
import json, os, sys
d = sys.argv[1]
rows = []
for line in open(os.path.join(d, "qa", "train.jsonl"), encoding="utf-8"):
    if not line.strip():
        continue
    q = json.loads(line)
    rows.append(json.dumps({"key": "ctc-" + q["key"], "task": "asr", "audio": q["audio"], "duration": q["duration"],
                            "text": q["question"], "speaker": q.get("speaker", "")}) + "\n")
open(os.path.join(d, "qa", "train_questions.jsonl"), "w", encoding="utf-8").writelines(rows)
PY
  "$py" "$here/mix_manifests.py" --out "$out/ctc_train.jsonl" "$out/asr/train.jsonl" "$out/qa/train_questions.jsonl" \
    > /dev/null
}
if [ -f "$stamp" ]; then
  [ -f "$out/ctc_train.jsonl" ] || ctc_train
  echo "s2t corpus: $out ($size, already built)"
  exit 0
fi
rm -rf "$out"
mkdir -p "$out"
"$here/build_corpus.sh" asr "$out/asr" "${asr[@]}" --seed 11 > "$out/asr.log" 2>&1 || { cat "$out/asr.log" >&2; exit 1; }
"$here/build_corpus.sh" spoken_qa "$out/qa" "${qa[@]}" --seed 12 > "$out/qa.log" 2>&1 || { cat "$out/qa.log" >&2; exit 1; }
# Spoken QA: the first 90% of items train, the rest are the dev set (items are independent draws).
"$py" - "$out/qa" <<'PY'
import sys, os
d = sys.argv[1]
rows = [l for l in open(os.path.join(d, "s2t_chat.jsonl"), encoding="utf-8") if l.strip()]
cut = max(1, int(len(rows) * 0.9)) if len(rows) > 1 else len(rows)
open(os.path.join(d, "train.jsonl"), "w", encoding="utf-8").writelines(rows[:cut])
open(os.path.join(d, "dev.jsonl"), "w", encoding="utf-8").writelines(rows[cut:] or rows[:1])
PY
# The QA items three times over: a quarter of the SFT mix, as with the 3 h corpus, not a tenth.
"$py" "$here/mix_manifests.py" --out "$out/sft_train.jsonl" "$out/asr/train.jsonl" "$out/qa/train.jsonl:x3" > /dev/null
"$py" "$here/mix_manifests.py" --out "$out/sft_dev.jsonl" "$out/asr/dev.jsonl" "$out/qa/dev.jsonl" > /dev/null
ctc_train
touch "$stamp"
for m in asr/train asr/dev qa/train qa/dev sft_train sft_dev ctc_train; do
  printf 's2t corpus: %-10s %5d samples\n' "$m" "$(grep -c . "$out/$m.jsonl")"
done
