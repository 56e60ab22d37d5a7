# Sourced by the speech-to-text integration scripts. tiny_s2t_begin NAME makes the script's temporary folder $tmp
# (removed on exit), defines fail(), and runs tiny_s2t_setup there, exiting 77 (skipped) when offline.
# tiny_s2t_setup DIR builds the tiny espeak-ng corpus, its text forms and vocabulary subset under DIR/data and writes
# DIR/t.yaml, recipes/s2t_pipeline.yaml on the `tiny` model over that data. Sets $tok (the Qwen tokenizer). Returns
# 77 when the tokenizer cannot be fetched (offline).
fail() { echo "FAIL: $*" >&2; exit 1; }

tiny_s2t_begin() {
  tmp=$(mktemp -d "/tmp/$1_XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  local rc=0
  tiny_s2t_setup "$tmp" || rc=$?
  [ $rc -eq 0 ] || { [ $rc -eq 77 ] && exit 77; fail "tiny corpus and recipe"; }
}

tiny_s2t_setup() {
  local dir=$1 tools="$VOX_SOURCE_DIR/data_tools"
  tok=$(bash "$tools/fetch_qwen_tokenizer.sh" | tail -n 1) || { echo "no tokenizer: skipped"; return 77; }
  "$tools/build_s2t_corpus.sh" "$dir/data" tiny > /dev/null || { echo "build_s2t_corpus.sh tiny failed"; return 1; }
  python3 "$tools/build_text_forms.py" "$dir/data/text_forms.jsonl" --n 200 --qa 20 --seed 5 \
    --heard 0.05,0.06,0.02 --exclude "$dir/data/asr/dev.jsonl" > /dev/null \
    || { echo "build_text_forms.py failed"; return 1; }
  "$tools/build_vocab_subset.sh" "$VOX" "$tok" "$dir/data/vocab_subset.txt" "$dir/data/sft_train.jsonl" \
    "$dir/data/text_forms.jsonl" 2> "$dir/subset.err" \
    || { cat "$dir/subset.err"; echo "build_vocab_subset.sh failed"; return 1; }
  cat > "$dir/t.yaml" <<YAML
extends: [$VOX_SOURCE_DIR/recipes/s2t_pipeline.yaml, $VOX_SOURCE_DIR/configs/models/tiny.yaml]
tokenizer: $tok
model:
  llm: {vocab_subset: $dir/data/vocab_subset.txt}
data:
  ctc_train: {manifest: $dir/data/ctc_train.jsonl}
  asr_train: {manifest: $dir/data/asr/train.jsonl}
  asr_dev: {manifest: $dir/data/asr/dev.jsonl}
  sft_train: {manifest: $dir/data/sft_train.jsonl}
  sft_dev: {manifest: $dir/data/sft_dev.jsonl}
  text_train: {manifest: $dir/data/sft_train.jsonl}
  text_forms: {manifest: $dir/data/text_forms.jsonl}
  text_dev: {manifest: $dir/data/sft_dev.jsonl}
YAML
}
