#!/usr/bin/env bash
# Builds a tiny espeak-ng corpus of every kind with data_tools/ and checks it (`vox data check`, the content: duplex
# labels, instructions, answers; a byte-identical rebuild), then mix_manifests, a bad manifest and the converters.
set -euo pipefail
: "${VOX:?set VOX to the vox binary}" "${VOX_SOURCE_DIR:?set VOX_SOURCE_DIR to the repository}"
py=/usr/bin/python3
tmp=$(mktemp -d /tmp/vox_data_tools_XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

"$VOX_SOURCE_DIR/data_tools/build_corpus.sh" all "$tmp/c" tiny --seed 5 --noise-prob 0.5 2>"$tmp/build.log" \
  || { cat "$tmp/build.log"; fail "build_corpus.sh all tiny"; }
for m in asr/train.jsonl asr/test.jsonl tts_instruct/tts_instruct.jsonl spoken_qa/s2t_chat.jsonl \
         spoken_qa/s2s_chat.jsonl duplex/duplex.jsonl; do
  [ -s "$tmp/c/$m" ] || fail "$m is missing or empty"
  "$VOX" data check "$tmp/c/$m" > "$tmp/check.out" || { cat "$tmp/check.out"; fail "vox data check $m"; }
  grep -q "bad 0, missing files 0" "$tmp/check.out" || { cat "$tmp/check.out"; fail "$m: unexpected report"; }
done
for k in asr tts_instruct spoken_qa duplex; do [ -s "$tmp/c/$k/README.md" ] || fail "$k README.md missing"; done

# Content: 16 kHz audio, speaker-disjoint ASR splits, instructions, QA answers, duplex channels and labels.
"$py" - "$tmp/c" "$VOX_SOURCE_DIR/data_tools" <<'PY' || fail "corpus content"
import json, sys, wave, os
root = sys.argv[1]
sys.path.insert(0, sys.argv[2])
import textgen
def rows(p): return [json.loads(l) for l in open(os.path.join(root, p))]
def wav(p):
    with wave.open(p) as w: return w.getframerate(), w.getnchannels(), w.getnframes()
spk = {s: {r["speaker"] for r in rows(f"asr/{s}.jsonl")} for s in ("train", "dev", "test")}
assert not (spk["train"] & spk["test"]) and not (spk["train"] & spk["dev"]), spk
for r in rows("asr/train.jsonl"):
    rate, ch, n = wav(os.path.join(root, "asr", r["audio"]))
    assert rate == 16000 and ch == 1 and abs(n / rate - r["duration"]) < 1e-3, r
for r in rows("tts_instruct/tts_instruct.jsonl"):
    assert r["instruction"] and r["controls"], r
for r in rows("spoken_qa/s2s_chat.jsonl"):
    said = r["messages"][-1]["content"].lower()
    ans = textgen.num2words(int(r["answer"])) if r["answer"].isdigit() else r["answer"].lower()
    assert r["messages"][-1]["role"] == "assistant" and ans in said.replace(", ", ""), r
    assert os.path.exists(os.path.join(root, "spoken_qa", r["answer_audio"]))
classes = ""
for r in rows("duplex/duplex.jsonl"):
    rate, ch, n = wav(os.path.join(root, "duplex", r["audio"]))
    assert rate == 16000 and ch == 2, (rate, ch)
    lab = json.load(open(os.path.join(root, "duplex", r["labels_file"])))
    assert lab["n_frames"] == len(lab["classes"]) and abs(lab["n_frames"] - r["duration"] * 12.5) <= 1, lab["n_frames"]
    users = [t for t in r["turns"] if t["speaker"] == "user" and t["type"] == "turn"]
    assert lab["classes"].count("1") == len(users), "one assistant turn-taking frame per user turn"
    assert lab["classes"].count("2") == len(users) - 1, "one user turn-taking frame per later user turn"
    classes += lab["classes"]
assert "3" in classes, "no back-channel frames in the tiny duplex corpus"
print("content ok")
PY

# Repeatable: the same seed builds the same corpus byte for byte (manifests and audio, noise included).
"$VOX_SOURCE_DIR/data_tools/build_corpus.sh" asr "$tmp/again" tiny --seed 5 --noise-prob 0.5 2>"$tmp/build.log" \
  || { cat "$tmp/build.log"; fail "build_corpus.sh asr tiny (again)"; }
diff -r -x README.md "$tmp/c/asr" "$tmp/again" > "$tmp/again.diff" \
  || { head "$tmp/again.diff"; fail "a second build with the same seed differs"; }

# Mixing manifests from different folders: paths still resolve, repeats get distinct keys, duplicates refused.
mkdir -p "$tmp/mix"
"$py" "$VOX_SOURCE_DIR/data_tools/mix_manifests.py" --out "$tmp/mix/sft.jsonl" "$tmp/c/asr/train.jsonl" \
  "$tmp/c/spoken_qa/s2t_chat.jsonl:x2" > /dev/null || fail "mix_manifests.py"
"$VOX" data check "$tmp/mix/sft.jsonl" > "$tmp/check.out" || { cat "$tmp/check.out"; fail "vox data check sft.jsonl"; }
grep -q "bad 0, missing files 0" "$tmp/check.out" || { cat "$tmp/check.out"; fail "mixed manifest: unexpected report"; }
want=$(( $(grep -c . "$tmp/c/asr/train.jsonl") + 2 * $(grep -c . "$tmp/c/spoken_qa/s2t_chat.jsonl") ))
[ "$(grep -c . "$tmp/mix/sft.jsonl")" = "$want" ] || fail "mixed manifest should have $want lines"
if "$py" "$VOX_SOURCE_DIR/data_tools/mix_manifests.py" --out "$tmp/mix/dup.jsonl" "$tmp/c/asr/train.jsonl" \
  "$tmp/c/asr/train.jsonl" 2> "$tmp/mix.err"; then fail "duplicate keys were accepted"; fi
grep -q 'train.jsonl:1: duplicate key' "$tmp/mix.err" || { cat "$tmp/mix.err"; fail "duplicate key message"; }

# A bad manifest: exit 1 and every bad line named as file:line.
printf '%s\n' '{"key":"a","task":"asr","audio":"nope.wav","duration":1,"text":"x"}' '{oops' \
  '{"key":"b","task":"asr","audio":"nope.wav","duration":-1,"text":"x"}' > "$tmp/bad.jsonl"
if "$VOX" data check "$tmp/bad.jsonl" 2> "$tmp/bad.err" >/dev/null; then fail "bad manifest passed"; fi
for want in "bad.jsonl:1: audio file" "bad.jsonl:2: malformed JSON" "bad.jsonl:3: negative duration"; do
  grep -q "$want" "$tmp/bad.err" || { cat "$tmp/bad.err"; fail "missing '$want'"; }
done
"$VOX" data check --no-files "$tmp/bad.jsonl" 2> "$tmp/bad.err" >/dev/null && fail "bad manifest passed --no-files"
grep -q "bad.jsonl:1" "$tmp/bad.err" && fail "--no-files still checked files"

# Converters: a Kaldi folder and a LibriSpeech layout made from the ASR corpus' audio.
mkdir -p "$tmp/kaldi" "$tmp/ls/19/198"
i=0
for r in $(head -3 "$tmp/c/asr/train.jsonl" | "$py" -c 'import json,sys; [print(json.loads(l)["audio"]) for l in sys.stdin]'); do
  echo "utt$i $tmp/c/asr/$r" >> "$tmp/kaldi/wav.scp"; echo "utt$i hello number $i" >> "$tmp/kaldi/text"
  echo "utt$i spk$i" >> "$tmp/kaldi/utt2spk"
  sox "$tmp/c/asr/$r" "$tmp/ls/19/198/19-198-000$i.flac"; echo "19-198-000$i HELLO NUMBER $i" >> "$tmp/ls/19/198/19-198.trans.txt"
  i=$((i + 1))
done
"$py" "$VOX_SOURCE_DIR/data_tools/convert_manifest.py" kaldi "$tmp/kaldi" --out "$tmp/kaldi.jsonl"
"$py" "$VOX_SOURCE_DIR/data_tools/convert_manifest.py" librispeech "$tmp/ls" --out "$tmp/ls.jsonl"
for m in kaldi ls; do
  "$VOX" data check "$tmp/$m.jsonl" | grep -Eq "task asr +3 samples" || fail "converted $m manifest"
done
echo "utt9 $tmp/none.wav" >> "$tmp/kaldi/wav.scp"
if "$py" "$VOX_SOURCE_DIR/data_tools/convert_manifest.py" kaldi "$tmp/kaldi" --out "$tmp/k2.jsonl" 2>"$tmp/k2.err"; then
  fail "converter accepted an utterance without transcript"
fi
grep -q "wav.scp:4: 'utt9' has no transcript" "$tmp/k2.err" || { cat "$tmp/k2.err"; fail "converter message"; }
# Text forms for the LLM warm-up: --heard writes the same sentences, its user turns unpunctuated with word errors at
# about the asked rate and the answers as written; --qa adds question conversations; a malformed --heard is refused.
"$py" "$VOX_SOURCE_DIR/data_tools/build_text_forms.py" "$tmp/tf.jsonl" --n 400 --seed 3 > /dev/null || fail "text forms"
"$py" "$VOX_SOURCE_DIR/data_tools/build_text_forms.py" "$tmp/tfh.jsonl" --n 400 --qa 50 --seed 3 \
  --heard 0.1,0.1,0.05 > /dev/null || fail "heard text forms"
"$py" - "$tmp/tf.jsonl" "$tmp/tfh.jsonl" <<'PY' || fail "heard text forms content"
import json, re, sys
clean = [json.loads(l) for l in open(sys.argv[1])]
heard = [json.loads(l) for l in open(sys.argv[2])]
questions = heard[400:]
heard = heard[:400]
assert len(clean) == len(heard) == 400 and len(questions) == 50
for q in questions:
    system, user, reply = (m["content"] for m in q["messages"])
    assert system == "You are a helpful voice assistant. Answer briefly." and reply == q["text"], q
    assert not re.search(r"[.?!,]", user) and reply.endswith("."), q
changed = words = 0
for c, h in zip(clean, heard):
    assert c["text"] == h["text"] and h["messages"][2]["content"] == h["text"], "the answer must stay the sentence"
    user = h["messages"][1]["content"]
    said, instruction = user.rsplit("\n", 1)
    assert instruction == "Transcribe the speech." and not re.search(r"[.?!,]", said), user
    ref = re.sub(r"[.?!,]", "", c["text"]).split()
    words += len(ref)
    changed += sum(a != b for a, b in zip(ref, said.split())) + abs(len(ref) - len(said.split()))
    assert c["messages"][1]["content"] == c["text"] + "\nTranscribe the speech."
rate = changed / words
assert 0.05 < rate < 0.6, f"heard forms differ from the sentences in {rate:.2f} of the words"
PY
if "$py" "$VOX_SOURCE_DIR/data_tools/build_text_forms.py" "$tmp/bad.jsonl" --n 5 --heard 0.5,0.6 2>"$tmp/tf.err"; then
  fail "build_text_forms.py accepted --heard 0.5,0.6"
fi
grep -q "expected SUB,DROP,INSERT" "$tmp/tf.err" || { cat "$tmp/tf.err"; fail "--heard message"; }
echo "data_tools: all corpora built and checked"
