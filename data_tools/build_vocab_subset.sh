#!/usr/bin/env bash
# Writes the vocabulary subset (model.llm.vocab_subset; docs/file-formats.md) of the texts a speech LLM trains on:
# every text field of the given manifests plus the task prompts vox writes around them.
# data_tools/build_vocab_subset.sh VOX TOKENIZER OUT MANIFEST...
set -euo pipefail
vox=${1:?usage: build_vocab_subset.sh VOX TOKENIZER OUT MANIFEST...}
tok=${2:?usage: build_vocab_subset.sh VOX TOKENIZER OUT MANIFEST...}
out=${3:?usage: build_vocab_subset.sh VOX TOKENIZER OUT MANIFEST...}
shift 3
[ $# -gt 0 ] || { echo "build_vocab_subset.sh: expected at least one manifest" >&2; exit 2; }
py=/usr/bin/python3; [ -x "$py" ] || py=python3
# The ChatML roles and the default prompts of src/train/s2t_prompt.c; words outside the subset still encode, as
# smaller pieces, so a recipe with other prompts works, it just spends more tokens on them.
{ printf '%s\n' system user assistant "You are a helpful assistant." "Transcribe the speech."
  "$py" - "$@" <<'PY'
import json, sys
for path in sys.argv[1:]:
    for n, line in enumerate(open(path, encoding="utf-8"), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as e:
            sys.exit(f"{path}:{n}: not JSON ({e})")
        texts = [row.get(k) for k in ("text", "question", "answer", "transcript")]
        texts += [m.get("content") for m in row.get("messages") or [] if isinstance(m, dict)]
        for t in texts:
            if isinstance(t, str):
                for part in t.splitlines():
                    print(part)
PY
} | "$vox" tokenize --tokenizer "$tok" --add-special '<|audio|>=151669' --subset-out "$out"
