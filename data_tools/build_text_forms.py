#!/usr/bin/env python3
"""Text-only transcription conversations for the LLM warm-up: sentences of the speech corpus's grammar
(data_tools/textgen.py) in the text form of an ASR sample, the transcript written where the audio goes and repeated
as the answer, under vox's default ASR prompt (src/train/s2t_prompt.c). A pretrained chat LLM has read far more text
than the speech corpus holds; fresh sentences every step make copying the prompt, not memorising the corpus's
transcripts, what lowers the loss. Sentences of the --exclude manifests (the dev and test sets) are never written.

With --heard SUB,DROP,INSERT the user turn holds the sentence as a recognising encoder hands it to the LLM, not as
written: without the sentence punctuation a CTC head over tokens almost never emits (it has no sound), each word
replaced by a random word of the grammar with probability SUB, dropped with probability DROP, and followed by a
random word with probability INSERT; the answer stays the written sentence. An LLM warmed up on these learns to
restore punctuation, to keep going after a missing sentence boundary and to fill gaps from the grammar, instead of
stopping or looping when its input is not clean text.

With --qa N, N spoken-QA conversations follow in their text form (the question where the audio goes, the answer
sentence as the reply, build_spoken_qa.py's prompt), drawn from the generator of the spoken questions: the
knowledge behind the answers (sums, capitals, spellings) is what a pretrained chat LLM brings, so the spoken-QA dev
set measures whether the speech LLM understands a question it hears, not whether it has seen the fact.

    build_text_forms.py OUT.jsonl --n 40000 --qa 4000 --seed 13 --heard 0.05,0.06,0.02 \
        --exclude data/s2t/asr/dev.jsonl data/s2t/asr/test.jsonl"""

import argparse
import json
import os
import random
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import textgen  # noqa: E402

SYSTEM = "You are a helpful assistant."
INSTRUCTION = "Transcribe the speech."


def heard(text, rng, noise, words):
    """The sentence as a CTC encoder hands it over: no . ? ! , and simulated word errors (see the module doc)."""
    sub, drop, insert = noise
    out = []
    for w in re.sub(r"[.?!,]", "", text).split():
        u = rng.random()
        if u < sub:
            out.append(rng.choice(words))
        elif u >= sub + drop:
            out.append(w)
        if rng.random() < insert:
            out.append(rng.choice(words))
    return " ".join(out) or rng.choice(words)


def noise_arg(value):
    try:
        parts = [float(x) for x in value.split(",")]
    except ValueError:
        parts = []
    if len(parts) != 3 or any(not 0 <= x < 1 for x in parts) or parts[0] + parts[1] >= 1:
        raise argparse.ArgumentTypeError(f"expected SUB,DROP,INSERT probabilities in [0, 1) with SUB + DROP < 1, "
                                         f"got '{value}'")
    return parts


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out")
    ap.add_argument("--n", type=int, default=40000, help="conversations to write")
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--exclude", nargs="*", default=[], help="manifests whose `text` sentences must not appear")
    ap.add_argument("--qa", type=int, default=0, help="spoken-QA conversations to write after the transcripts")
    ap.add_argument("--heard", type=noise_arg, default=None, metavar="SUB,DROP,INSERT",
                    help="write the user turn as an encoder hands it over (see above); default: as written")
    a = ap.parse_args()
    if a.n < 1 or a.qa < 0:
        sys.exit("build_text_forms.py: --n must be at least 1 and --qa at least 0")
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
    noise_rng, words = random.Random(a.seed + 1), textgen.slot_words()  # what a confused recogniser says
    written = skipped = 0
    with open(a.out + ".tmp", "w", encoding="utf-8") as f:
        while written < a.n:
            parts = [textgen.sentence(rng) for _ in range(rng.choice([1, 1, 2]))]
            text = " ".join(parts)
            if text in banned or any(p in banned for p in parts):
                skipped += 1
                continue
            said = heard(text, noise_rng, a.heard, words) if a.heard else text
            row = {"key": f"tf-{written:07d}", "task": "text", "text": text,
                   "messages": [{"role": "system", "content": SYSTEM},
                                {"role": "user", "content": f"{said}\n{INSTRUCTION}"},
                                {"role": "assistant", "content": text}]}
            f.write(json.dumps(row) + "\n")
            written += 1
        qa_rng = random.Random(a.seed + 2)
        for i in range(a.qa):
            _, question, reply, _ = textgen.question(qa_rng)
            said = heard(question, noise_rng, a.heard, words) if a.heard else question
            row = {"key": f"tq-{i:07d}", "task": "text", "text": reply,
                   "messages": [{"role": "system", "content": textgen.QA_SYSTEM}, {"role": "user", "content": said},
                                {"role": "assistant", "content": reply}]}
            f.write(json.dumps(row) + "\n")
    os.replace(a.out + ".tmp", a.out)
    print(f"text forms: {a.out}: {written} transcriptions ({skipped} drawn sentences excluded), {a.qa} questions")


if __name__ == "__main__":
    main()
