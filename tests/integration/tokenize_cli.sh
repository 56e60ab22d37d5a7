#!/usr/bin/env bash
# `vox tokenize` end to end with Qwen3's tokenizer.json: known ids for a few lines (special tokens included),
# --decode restores the lines exactly, vocabulary subsets are built and used, and bad input fails with a message
# naming the line.
set -euo pipefail
: "${VOX:?VOX must name the vox binary}" "${VOX_SOURCE_DIR:?VOX_SOURCE_DIR must name the repository}"
if ! tokjson="$(bash "$VOX_SOURCE_DIR/data_tools/fetch_qwen_tokenizer.sh")"; then
  echo "tokenize_cli: SKIPPED: Qwen3 tokenizer.json could not be fetched" >&2
  exit 0
fi
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

printf '%s\n' "Hello world" "<|im_start|>user" "你好 😀 12345" "" "it's   spaced	tabbed" > "$tmp/in.txt"
# Expected ids from the JavaScript reference tokenizer (tests/fixtures/tokenizer/make_reference.mjs).
cat > "$tmp/want.txt" <<'IDS'
9707 1879
151644 872
108386 90316 220 16 17 18 19 20

275 594 256 63828 58149 2721
IDS
"$VOX" tokenize --tokenizer "$tokjson" < "$tmp/in.txt" > "$tmp/ids.txt"
diff -u "$tmp/want.txt" "$tmp/ids.txt"
"$VOX" tokenize --tokenizer "$tokjson" --decode < "$tmp/ids.txt" > "$tmp/back.txt"
cmp "$tmp/in.txt" "$tmp/back.txt"
[ "$(echo '151644 872 198 151645' | "$VOX" tokenize --tokenizer "$tokjson" --decode --skip-special)" = "user" ]

# Failures: invalid UTF-8 names the line and byte offset; a bad id names the line; a missing file is named.
if printf 'ok\nab\xffc\n' | "$VOX" tokenize --tokenizer "$tokjson" > /dev/null 2> "$tmp/err"; then
  echo "tokenize_cli: invalid UTF-8 was accepted" >&2; exit 1
fi
grep -q "line 2: .*invalid UTF-8 at byte offset 2" "$tmp/err"
if echo "1 2 x" | "$VOX" tokenize --tokenizer "$tokjson" --decode > /dev/null 2> "$tmp/err"; then
  echo "tokenize_cli: a non-numeric id was accepted" >&2; exit 1
fi
grep -q "line 1" "$tmp/err"
if echo hi | "$VOX" tokenize --tokenizer "$tmp/missing.json" 2> "$tmp/err"; then
  echo "tokenize_cli: a missing tokenizer file was accepted" >&2; exit 1
fi
grep -q "missing.json" "$tmp/err"

# Vocabulary subsets: --subset-out keeps the lines' tokens (plus bytes, added tokens and merge halves, and an added
# special); under --subset the lines encode to subset indices that map back to the same full ids, any other text
# still round-trips, and a malformed --add-special is refused.
"$VOX" tokenize --tokenizer "$tokjson" --add-special '<|audio|>=151669' --subset-out "$tmp/sub.txt" < "$tmp/in.txt" \
  2> "$tmp/err"
grep -q "sub.txt: [0-9]* token ids" "$tmp/err"
grep -qx 151669 "$tmp/sub.txt" && grep -qx 9707 "$tmp/sub.txt" && grep -qx 255 "$tmp/sub.txt"
"$VOX" tokenize --tokenizer "$tokjson" --add-special '<|audio|>=151669' --subset "$tmp/sub.txt" < "$tmp/in.txt" \
  > "$tmp/sub_ids.txt"
python3 - "$tmp/sub.txt" "$tmp/sub_ids.txt" "$tmp/ids.txt" <<'PY'
import sys
kept = [int(l) for l in open(sys.argv[1]) if not l.startswith("#")]
sub = [[kept[int(t)] for t in l.split()] for l in open(sys.argv[2])]
full = [[int(t) for t in l.split()] for l in open(sys.argv[3])]
assert sub == full, (sub, full)
PY
printf 'Zebras quack <|audio|>\n' > "$tmp/other.txt"
"$VOX" tokenize --tokenizer "$tokjson" --add-special '<|audio|>=151669' --subset "$tmp/sub.txt" < "$tmp/other.txt" \
  | "$VOX" tokenize --tokenizer "$tokjson" --add-special '<|audio|>=151669' --subset "$tmp/sub.txt" --decode > "$tmp/other_back.txt"
cmp "$tmp/other.txt" "$tmp/other_back.txt"
if echo hi | "$VOX" tokenize --tokenizer "$tokjson" --add-special 'no-id' 2> "$tmp/err"; then
  echo "tokenize_cli: --add-special without an id was accepted" >&2; exit 1
fi
grep -q "expected TEXT=ID" "$tmp/err"
echo "tokenize_cli: ok"
