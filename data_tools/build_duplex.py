#!/usr/bin/env python3
"""Full-duplex corpus from espeak-ng: two-speaker timelines (user = channel 0, assistant = channel 1) with
turn gaps drawn from N(0.6 s, 0.4^2 s^2), user interruptions and user back-channels ("uh-huh", "yeah", ...),
plus per-frame labels for the full-duplex predictor following MinMo's heuristic rules:
  - assistant turn-taking: the end of a user turn is the point where the assistant should take the turn;
  - user turn-taking: a user turn starts a time T ~ N(0.6, 0.4^2) s after the assistant's turn ends (or
    earlier, interrupting the assistant, who stops shortly after); its start is where the assistant must yield;
  - user back-channel: short user utterances during assistant speech that do not take the turn; the
    assistant keeps speaking through them.
Frame classes (labels_file "classes", one digit per frame at --label-rate Hz): 0 none, 1 assistant
turn-taking (frame holding the user turn's end), 2 user turn-taking (frame holding a user turn's start, from
the second user turn on), 3 user back-channel (every frame overlapping the back-channel)."""

import json
import math
import os
import random

import numpy as np

import corpus_common as cc
import textgen

GAP_MEAN, GAP_STD, GAP_MIN = 0.6, 0.4, 0.15  # seconds; N(0.6, 0.4^2) clipped below at GAP_MIN
REACTION = 0.25  # seconds the assistant keeps talking after an interruption starts
FADE = 0.05


def gap(rng):
    return max(GAP_MIN, rng.gauss(GAP_MEAN, GAP_STD))


def main():
    p = cc.common_args(__doc__)
    p.add_argument("--speakers", type=int, default=40, help="distinct user voices (default 40)")
    p.add_argument("--assistant-voice", default="en-us+f2")
    p.add_argument("--turns", type=int, nargs=2, default=[2, 4], metavar=("MIN", "MAX"),
                   help="user/assistant exchanges per dialogue")
    p.add_argument("--interrupt-prob", type=float, default=0.3, help="chance a user turn interrupts")
    p.add_argument("--backchannel-prob", type=float, default=0.5, help="chance of a user back-channel per "
                   "assistant turn")
    p.add_argument("--label-rate", type=float, default=12.5, help="label frames per second (12.5 or 25)")
    args = p.parse_args()
    cc.check_tools()
    accents = cc.available_accents()
    male, female = cc.available_variants()
    pool = cc.speaker_pool(random.Random(args.seed), max(1, args.speakers), accents, male, female)
    a_voice, a_variant = args.assistant_voice.split("+", 1)
    parts = os.path.join(args.out, "parts")

    def make_item(i):
        rng = cc.item_rng(args.seed, i, salt=4)
        spk = rng.choice(pool)
        n = rng.randint(*args.turns)
        user, asst, bcs = [], [], []
        for _ in range(n):
            if rng.random() < 0.6:
                _, q, a, _ = textgen.question(rng)
                user.append(q)
                asst.append(a + " " + textgen.sentence(rng))
            else:
                user.append(textgen.sentence(rng))
                asst.append("I see. " + textgen.sentence(rng) + " " + textgen.sentence(rng))
            bcs.append(rng.choice(textgen.BACKCHANNELS))
        jobs = []
        for k in range(n):
            u = dict(voice=spk["voice"], variant=spk["variant"], wpm=spk["wpm"], pitch=spk["pitch"])
            jobs.append(dict(text=user[k], path=f"{parts}/{i:07d}_u{k}.wav", **u))
            jobs.append(dict(text=asst[k], path=f"{parts}/{i:07d}_a{k}.wav", voice=a_voice, variant=a_variant,
                             wpm=170, pitch=55))
            jobs.append(dict(text=bcs[k], path=f"{parts}/{i:07d}_b{k}.wav", **u))
        return dict(i=i, spk=spk, user=user, asst=asst, bcs=bcs, rng=rng), jobs

    def finish(it):
        """Lays the turns out on a timeline, mixes two channels and writes the labels; returns seconds."""
        i, rng, n = it["i"], it["rng"], len(it["user"])
        clips = {}
        for k in range(n):
            for tag in "uab":
                path = f"{parts}/{i:07d}_{tag}{k}.wav"
                clips[(tag, k)], _ = cc.read_wav(path)
                os.remove(path)
        turns, t = [], 0.3 + rng.random() * 0.5
        for k in range(n):
            u = clips[("u", k)]
            u_start, u_end = t, t + len(u) / cc.RATE
            turns.append(dict(speaker="user", type="turn", start=u_start, end=u_end, text=it["user"][k], clip=u))
            a = clips[("a", k)]
            a_start = u_end + gap(rng)
            a_len = len(a) / cc.RATE
            interrupt = k < n - 1 and a_len > 2.0 and rng.random() < args.interrupt_prob
            if interrupt:
                cut = a_start + rng.uniform(1.0, a_len - 0.5)
                a_end = cut + REACTION
                keep = int(round((a_end - a_start) * cc.RATE))
                a = a[:keep].copy()
                nf = min(len(a), int(FADE * cc.RATE))
                a[len(a) - nf:] *= np.linspace(1.0, 0.0, nf, dtype=np.float32)
                next_t = cut
            else:
                a_end = a_start + a_len
                next_t = a_end + gap(rng)
            turns.append(dict(speaker="assistant", type="interrupted" if interrupt else "turn", start=a_start,
                              end=a_end, text=it["asst"][k], clip=a))
            b = clips[("b", k)]
            b_len = len(b) / cc.RATE
            lo, hi = a_start + 0.5, (next_t if interrupt else a_end) - 0.8 - b_len
            if rng.random() < args.backchannel_prob and hi > lo:
                b_start = rng.uniform(lo, hi)
                turns.append(dict(speaker="user", type="backchannel", start=b_start, end=b_start + b_len,
                                  text=it["bcs"][k], clip=b))
            t = next_t
        total = max(x["end"] for x in turns) + 0.5
        n_samples = int(math.ceil(total * cc.RATE))
        mix = np.zeros((n_samples, 2), dtype=np.float32)
        for x in turns:
            s = int(round(x["start"] * cc.RATE))
            ch = 0 if x["speaker"] == "user" else 1
            mix[s:s + len(x["clip"]), ch] += x["clip"][:n_samples - s]
        snr = cc.noise_for(rng, args)
        if snr is not None:
            mix[:, 0] = cc.add_noise(mix[:, 0], snr, args.seed + i)
        mix = np.clip(mix, -1.0, 1.0)
        name = f"{i:07d}"
        cc.write_wav(os.path.join(args.out, "wav", name + ".wav"), mix)
        cc.write_wav(os.path.join(args.out, "wav", name + "_user.wav"), mix[:, 0])
        cc.write_wav(os.path.join(args.out, "wav", name + "_assistant.wav"), mix[:, 1])

        rate = args.label_rate
        n_frames = int(math.ceil(n_samples / cc.RATE * rate))
        classes = np.zeros(n_frames, dtype=np.int8)
        user_vad = np.zeros(n_frames, dtype=np.int8)
        asst_vad = np.zeros(n_frames, dtype=np.int8)

        def frames(a, b):
            return slice(int(math.floor(a * rate)), min(n_frames, int(math.ceil(b * rate))))

        for x in turns:
            (user_vad if x["speaker"] == "user" else asst_vad)[frames(x["start"], x["end"])] = 1
        user_turns = [x for x in turns if x["speaker"] == "user" and x["type"] == "turn"]
        for x in turns:
            if x["type"] == "backchannel":
                classes[frames(x["start"], x["end"])] = 3
        for k, x in enumerate(user_turns):
            classes[min(n_frames - 1, int(math.floor(x["end"] * rate)))] = 1
            if k > 0:
                classes[min(n_frames - 1, int(math.floor(x["start"] * rate)))] = 2
        labels = dict(rate=rate, n_frames=n_frames, classes="".join(map(str, classes.tolist())),
                      user_speech="".join(map(str, user_vad.tolist())),
                      assistant_speech="".join(map(str, asst_vad.tolist())),
                      legend={"0": "none", "1": "assistant turn-taking", "2": "user turn-taking",
                              "3": "user back-channel"})
        os.makedirs(os.path.join(args.out, "labels"), exist_ok=True)
        with open(os.path.join(args.out, "labels", name + ".json"), "w") as f:
            json.dump(labels, f)
        it["turns"] = [dict(speaker=x["speaker"], type=x["type"], start=round(x["start"], 3),
                            end=round(x["end"], 3), text=x["text"]) for x in sorted(turns, key=lambda x: x["start"])]
        it["seconds"] = n_samples / cc.RATE
        it["counts"] = dict(interruptions=sum(x["type"] == "interrupted" for x in turns),
                            backchannels=sum(x["type"] == "backchannel" for x in turns))
        del it["rng"]
        return it["seconds"]

    os.makedirs(args.out, exist_ok=True)
    items, total = cc.produce(make_item, args, chunk=8, finish=finish)
    rows = []
    for it in items:
        name = f"{it['i']:07d}"
        rows.append(dict(key=f"duplex-{name}", task="duplex", audio=f"wav/{name}.wav", duration=round(it["seconds"], 4),
                         channels=dict(user=0, assistant=1), user_audio=f"wav/{name}_user.wav",
                         assistant_audio=f"wav/{name}_assistant.wav", labels_file=f"labels/{name}.json",
                         label_rate=args.label_rate, speaker=it["spk"]["id"], turns=it["turns"], **it["counts"]))
    cc.write_manifest(os.path.join(args.out, "duplex.jsonl"), rows)
    if os.path.isdir(parts) and not os.listdir(parts):
        os.rmdir(parts)
    extra = [f"- user voices: {len(pool)} identities; assistant voice {args.assistant_voice}",
             f"- exchanges per dialogue: {args.turns[0]}..{args.turns[1]}; gaps N({GAP_MEAN}, {GAP_STD}^2) s clipped "
             f"at {GAP_MIN} s; interruption probability {args.interrupt_prob} (assistant stops {REACTION} s after "
             f"the user starts); back-channel probability {args.backchannel_prob} per assistant turn",
             f"- interruptions: {sum(r['interruptions'] for r in rows)}, back-channels: "
             f"{sum(r['backchannels'] for r in rows)}",
             "- audio: `audio` is two-channel (0 user, 1 assistant); `user_audio` / `assistant_audio` are the same",
             "  channels as mono files",
             f"- labels_file: JSON with per-frame strings at {args.label_rate} Hz: classes (0 none, 1 assistant "
             "turn-taking, 2 user turn-taking, 3 user back-channel), user_speech, assistant_speech (0/1)",
             "- rules (MinMo): assistant turn-taking at the end of each user turn; user turns start T ~ N(0.6, 0.4^2)",
             "  s after the assistant's turn ends unless they interrupt; back-channels never take the turn"]
    cc.write_readme(args.out, "Synthetic full-duplex dialogue corpus (espeak-ng)", __doc__.split("\n")[0], args,
                    extra, [("duplex.jsonl", len(rows), total)])


if __name__ == "__main__":
    main()
