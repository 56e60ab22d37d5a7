#!/usr/bin/env python3
"""ASR corpus from espeak-ng: varied templated English sentences spoken by many speakers (accent voice,
variant, pitch, speed); train/dev/test split by speaker, so test speakers are never heard in training."""

import os
import random

import corpus_common as cc
import textgen


def main():
    p = cc.common_args(__doc__)
    p.add_argument("--speakers", type=int, default=40, help="distinct speaker identities (default 40)")
    p.add_argument("--dev-frac", type=float, default=0.1)
    p.add_argument("--test-frac", type=float, default=0.1)
    args = p.parse_args()
    cc.check_tools()
    accents = cc.available_accents()
    male, female = cc.available_variants()
    n_spk = max(3, args.speakers)
    pool = cc.speaker_pool(random.Random(args.seed), n_spk, accents, male, female)
    n_test = max(1, round(n_spk * args.test_frac))
    n_dev = max(1, round(n_spk * args.dev_frac))
    split_of = {}
    for k, s in enumerate(pool):
        split_of[s["id"]] = "test" if k < n_test else "dev" if k < n_test + n_dev else "train"

    def make_item(i):
        rng = cc.item_rng(args.seed, i)
        spk = rng.choice(pool)
        text = " ".join(textgen.sentence(rng) for _ in range(rng.choice([1, 1, 2])))
        rel = f"wav/{split_of[spk['id']]}/{i:07d}.wav"
        job = dict(text=text, voice=spk["voice"], variant=spk["variant"], wpm=spk["wpm"], pitch=spk["pitch"],
                   path=os.path.join(args.out, rel), noise_snr=cc.noise_for(rng, args), noise_seed=args.seed + i)
        return dict(i=i, text=text, spk=spk, rel=rel, snr=job["noise_snr"]), [job]

    os.makedirs(args.out, exist_ok=True)
    items, _ = cc.produce(make_item, args)
    rows = {"train": [], "dev": [], "test": []}
    for it in items:
        spk = it["spk"]
        row = dict(key=f"asr-{it['i']:07d}", task="asr", audio=it["rel"], duration=round(it["durations"][0], 4),
                   text=it["text"], speaker=spk["id"], accent=spk["accent"], gender=spk["gender"])
        if it["snr"] is not None:
            row["snr_db"] = round(it["snr"], 1)
        rows[split_of[spk["id"]]].append(row)
    manifests = []
    for split, r in rows.items():
        cc.write_manifest(os.path.join(args.out, f"{split}.jsonl"), r)
        manifests.append((f"{split}.jsonl", len(r), sum(x["duration"] for x in r)))
    voices = sorted({s["id"] for s in pool})
    extra = ["- speakers: " + str(len(pool)) + f" (test {n_test}, dev {n_dev}, train {len(pool) - n_test - n_dev}),"
             " split by speaker identity = voice+variant, pitch, speed",
             "- accents: " + ", ".join(f"{a} ({v})" for a, v in sorted(accents.items())),
             "- speaker identities: " + ", ".join(voices),
             "- text: templated sentences from data_tools/textgen.py word lists; numbers written as words"]
    cc.write_readme(args.out, "Synthetic English ASR corpus (espeak-ng)",
                    "Sentences spoken by espeak-ng voices; one `asr` manifest per split (JSONL, see "
                    "src/data/manifest.h).", args, extra, manifests)


if __name__ == "__main__":
    main()
