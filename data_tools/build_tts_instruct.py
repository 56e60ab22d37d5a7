#!/usr/bin/env python3
"""Instruction-controlled TTS corpus from espeak-ng: (instruction, text, audio) where the instruction names the
speed, pitch, accent and/or voice (gender) and the audio obeys it; the controlled attributes are also stored
as fields (speed_wpm, pitch, accent, gender) so that an evaluation can check them."""

import os

import corpus_common as cc
import textgen

OPENERS = ["Please say this", "Read the following", "Say it", "Speak", "Read this sentence", "Pronounce this"]


def instruction(rng, accents, male, female):
    """Draws 1-3 controlled attributes; returns (instruction text, espeak parameters, attribute fields)."""
    attrs = rng.sample(["speed", "pitch", "accent", "voice"], rng.choice([1, 2, 2, 3]))
    speed = rng.choice(list(cc.SPEEDS)) if "speed" in attrs else "at a normal pace"
    pitch = rng.choice(list(cc.PITCHES)) if "pitch" in attrs else "medium"
    accent = rng.choice(sorted(accents)) if "accent" in attrs else rng.choice(sorted(accents))
    gender = rng.choice(["male", "female"])
    variant = rng.choice(male if gender == "male" else female)
    parts = [rng.choice(OPENERS)]
    if "speed" in attrs:
        parts.append(speed)
    voice_words = []
    if "pitch" in attrs:
        voice_words.append(f"{pitch}-pitched")
    if "voice" in attrs:
        voice_words.append(gender)
    if voice_words:
        parts.append("in a " + " ".join(voice_words) + " voice")
    if "accent" in attrs:
        parts.append(f"with {'an' if accent[0] in 'AEIOU' else 'a'} {accent} accent")
    text = " ".join(parts) + "."
    params = dict(voice=accents[accent], variant=variant, wpm=cc.SPEEDS[speed], pitch=cc.PITCHES[pitch])
    fields = dict(controls=sorted(attrs), speed_wpm=params["wpm"], pitch=params["pitch"], accent=accent,
                  gender=gender, voice_variant=variant)
    return text, params, fields


def main():
    p = cc.common_args(__doc__)
    args = p.parse_args()
    cc.check_tools()
    accents = cc.available_accents()
    male, female = cc.available_variants()

    def make_item(i):
        rng = cc.item_rng(args.seed, i, salt=2)
        instr, params, fields = instruction(rng, accents, male, female)
        text = textgen.sentence(rng)
        rel = f"wav/{i:07d}.wav"
        job = dict(text=text, path=os.path.join(args.out, rel), noise_snr=cc.noise_for(rng, args),
                   noise_seed=args.seed + i, **params)
        return dict(i=i, text=text, instr=instr, fields=fields, params=params, rel=rel), [job]

    os.makedirs(args.out, exist_ok=True)
    items, total = cc.produce(make_item, args)
    rows = []
    for it in items:
        pr = it["params"]
        rows.append(dict(key=f"tts-{it['i']:07d}", task="tts", audio=it["rel"],
                         duration=round(it["durations"][0], 4), text=it["text"], instruction=it["instr"],
                         speaker=f"{pr['voice']}+{pr['variant']}", **it["fields"]))
    cc.write_manifest(os.path.join(args.out, "tts_instruct.jsonl"), rows)
    extra = ["- speeds (words per minute): " + ", ".join(f"{k}={v}" for k, v in cc.SPEEDS.items()),
             "- pitches (espeak -p): " + ", ".join(f"{k}={v}" for k, v in cc.PITCHES.items()),
             "- accents: " + ", ".join(f"{a} ({v})" for a, v in sorted(accents.items())),
             "- voices: male variants " + ", ".join(male) + "; female variants " + ", ".join(female),
             "- each instruction controls 1-3 of speed, pitch, accent, voice (gender); attributes it does not",
             "  name are drawn freely (speed normal, pitch medium, accent and voice random)"]
    cc.write_readme(args.out, "Synthetic instruction-controlled TTS corpus (espeak-ng)",
                    "(instruction, text, audio) triples; the audio follows the instruction. Task `tts` with an "
                    "`instruction` field.", args, extra, [("tts_instruct.jsonl", len(rows), total)])


if __name__ == "__main__":
    main()
