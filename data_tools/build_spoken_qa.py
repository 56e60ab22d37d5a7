#!/usr/bin/env python3
"""Spoken question-answering corpus from espeak-ng: questions with checkable answers (arithmetic, counting,
spelling, simple facts) spoken by many user voices; the assistant's answer as text and as speech in one fixed
assistant voice. Writes s2t_chat.jsonl (speech in, text out) and s2s_chat.jsonl (speech in, text + speech
out) with ChatML messages; `answer` holds the short checkable answer."""

import os
import random

import corpus_common as cc
import textgen

AUDIO_TAG = "<|audio|>"  # where the user's speech goes in the ChatML user turn


def main():
    p = cc.common_args(__doc__)
    p.add_argument("--speakers", type=int, default=40, help="distinct user voices (default 40)")
    p.add_argument("--assistant-voice", default="en-us+f2", help="espeak-ng voice+variant of the assistant")
    p.add_argument("--assistant-pitch", type=int, default=55)
    p.add_argument("--assistant-wpm", type=int, default=170)
    args = p.parse_args()
    cc.check_tools()
    accents = cc.available_accents()
    male, female = cc.available_variants()
    pool = cc.speaker_pool(random.Random(args.seed), max(1, args.speakers), accents, male, female)
    a_voice, a_variant = args.assistant_voice.split("+", 1)

    def make_item(i):
        rng = cc.item_rng(args.seed, i, salt=3)
        spk = rng.choice(pool)
        kind, q, a, short = textgen.question(rng)
        q_rel, a_rel = f"wav/q/{i:07d}.wav", f"wav/a/{i:07d}.wav"
        jobs = [dict(text=q, voice=spk["voice"], variant=spk["variant"], wpm=spk["wpm"], pitch=spk["pitch"],
                     path=os.path.join(args.out, q_rel), noise_snr=cc.noise_for(rng, args), noise_seed=args.seed + i),
                dict(text=a, voice=a_voice, variant=a_variant, wpm=args.assistant_wpm, pitch=args.assistant_pitch,
                     path=os.path.join(args.out, a_rel))]
        return dict(i=i, kind=kind, q=q, a=a, short=short, spk=spk, q_rel=q_rel, a_rel=a_rel), jobs

    os.makedirs(args.out, exist_ok=True)
    items, total = cc.produce(make_item, args)
    s2t, s2s = [], []
    for it in items:
        msgs = [dict(role="system", content=textgen.QA_SYSTEM), dict(role="user", content=AUDIO_TAG),
                dict(role="assistant", content=it["a"])]
        base = dict(audio=it["q_rel"], duration=round(it["durations"][0], 4), messages=msgs,
                    speaker=it["spk"]["id"], question=it["q"], answer=it["short"], kind=it["kind"])
        s2t.append(dict(key=f"s2t-{it['i']:07d}", task="s2t_chat", **base))
        s2s.append(dict(key=f"s2s-{it['i']:07d}", task="s2s_chat", **base, answer_audio=it["a_rel"],
                        answer_duration=round(it["durations"][1], 4), answer_speaker=args.assistant_voice))
    cc.write_manifest(os.path.join(args.out, "s2t_chat.jsonl"), s2t)
    cc.write_manifest(os.path.join(args.out, "s2s_chat.jsonl"), s2s)
    kinds = {}
    for it in items:
        kinds[it["kind"]] = kinds.get(it["kind"], 0) + 1
    extra = [f"- user voices: {len(pool)} identities over accents " + ", ".join(sorted(accents)),
             f"- assistant voice: {args.assistant_voice}, pitch {args.assistant_pitch}, {args.assistant_wpm} wpm",
             "- question kinds: " + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items())),
             f"- ChatML: system prompt, user turn `{AUDIO_TAG}` (the question audio), assistant answer text;",
             "  `question` is the question's text, `answer` the short checkable answer, `answer_audio` the",
             "  assistant's speech (s2s)"]
    cc.write_readme(args.out, "Synthetic spoken question answering corpus (espeak-ng)",
                    "Spoken questions with checkable answers for speech-to-text and speech-to-speech chat.", args,
                    extra, [("s2t_chat.jsonl", len(s2t), total), ("s2s_chat.jsonl", len(s2s), total)])


if __name__ == "__main__":
    main()
