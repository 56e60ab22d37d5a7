#!/usr/bin/env bash
# Builds a synthetic espeak-ng corpus: data_tools/build_corpus.sh KIND OUT_DIR [SIZE] [builder options...]
# KIND: asr | tts_instruct | spoken_qa | duplex | all.  SIZE: tiny (a few items, seconds; for tests),
# small (10 min, default), medium (1 h), large (20 h), or any builder flag such as --hours 40.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
py=/usr/bin/python3; [ -x "$py" ] || py=python3

usage() { sed -n '2,4p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
[ $# -ge 2 ] || usage
kind=$1 out=$2; shift 2
size=(--minutes 10)
if [ $# -gt 0 ]; then
  case $1 in
    tiny) size=(--max-items 6 --speakers 4); shift ;;
    small) size=(--minutes 10); shift ;;
    medium) size=(--hours 1); shift ;;
    large) size=(--hours 20); shift ;;
  esac
fi
# Builders without a --speakers option (tts_instruct varies voice per item) ignore the tiny speaker count.
run() {
  local k=$1 args=("${size[@]}")
  if [ "$k" = tts_instruct ]; then
    args=(); local skip=0
    for a in "${size[@]}"; do
      if [ $skip = 1 ]; then skip=0; continue; fi
      if [ "$a" = --speakers ]; then skip=1; continue; fi
      args+=("$a")
    done
  fi
  echo "building $k corpus in $2" >&2
  "$py" "$here/build_$k.py" --out "$2" "${args[@]}" "${@:3}"
}
case $kind in
  asr|tts_instruct|spoken_qa|duplex) run "$kind" "$out" "$@" ;;
  all) for k in asr tts_instruct spoken_qa duplex; do run "$k" "$out/$k" "$@"; done ;;
  *) usage ;;
esac
