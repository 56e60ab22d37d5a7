#!/usr/bin/env python3
"""Text-only transcription conversations for the LLM warm-up: sentences of the speech corpus's grammar
(data_tools/textgen.py) in the text form of an ASR sample, the transcript written where the audio goes and repeated
as the answer, under vox's default ASR prompt (src/train/s2t_prompt.c). A pretrained chat LLM has read far more text
than the speech corpus holds; fresh sentences every step make copying the prompt, not memorising the corpus's
transcripts, what lowers the loss. Sentences of the --exclude manifests (the dev and test sets) are never written.

    build_text_forms.py OUT.jsonl --n 40000 --seed 13 --exclude data/s2t/asr/dev.jsonl data/s2t/asr/test.jsonl"""

import argparse
import json
import random
import sys
import os

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import textgen  # noqa: E402

SYSTEM = "You are a helpful assistant."
INSTRUCTION = "Transcribe the speech."


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out")
    ap.add_argument("--n", type=int, default=40000, help="conversations to write")
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--exclude", nargs="*", default=[], help="manifests whose `text` sentences must not appear")
    a = ap.parse_args()
    if a.n < 1:
        sys.exit("build_text_forms.py: --n must be at least 1")
    banned = set()
    for path in a.exclude:
        for n, line in enumerate(open(path, encoding="utf-8"), 1):
            if not line.strip():
                continue
            try:
                text = json.loads(line).get("text")
            except ValueError as e:
                sys.exit(f"{path}:{n}: not JSON ({e})")
            if isinstance(text, str):
                banned.add(text)
                banned.update(s.strip() for s in text.replace("?", "?\n").replace(".", ".\n").splitlines() if s.strip())
    rng = random.Random(a.seed)
    written = skipped = 0
    with open(a.out + ".tmp", "w", encoding="utf-8") as f:
        while written < a.n:
            parts = [textgen.sentence(rng) for _ in range(rng.choice([1, 1, 2]))]
            text = " ".join(parts)
            if text in banned or any(p in banned for p in parts):
                skipped += 1
                continue
            row = {"key": f"tf-{written:07d}", "task": "text", "text": text,
                   "messages": [{"role": "system", "content": SYSTEM},
                                {"role": "user", "content": f"{text}\n{INSTRUCTION}"},
                                {"role": "assistant", "content": text}]}
            f.write(json.dumps(row) + "\n")
            written += 1
    os.replace(a.out + ".tmp", a.out)
    print(f"text forms: {a.out}: {written} conversations ({skipped} drawn sentences excluded)")


if __name__ == "__main__":
    main()
