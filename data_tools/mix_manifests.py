#!/usr/bin/env python3
"""Concatenates JSONL manifests into one (e.g. ASR + spoken-QA for supervised fine-tuning), rewriting relative
file paths so they resolve from the output's folder, optionally repeating or subsampling each input, and
refusing duplicate keys. Every problem is listed with its file:line and makes the exit status 1.

    mix_manifests.py --out data/sft.jsonl data/asr/train.jsonl data/qa/s2t_chat.jsonl:x2 data/more.jsonl:0.25

An input may end in ":xN" (repeat N times, keys suffixed "#k") or ":F" with 0 < F <= 1 (a seeded subsample)."""

import argparse
import json
import os
import random
import sys

PATH_KEYS = ("audio", "speech_tokens")


def is_path_key(key):
    return key in PATH_KEYS or key.endswith("_audio") or key.endswith("_file")


def parse_input(spec):
    path, sep, mod = spec.rpartition(":")
    if not sep or os.path.exists(spec):
        return spec, 1, 1.0
    if mod.startswith("x") and mod[1:].isdigit() and int(mod[1:]) >= 1:
        return path, int(mod[1:]), 1.0
    try:
        frac = float(mod)
    except ValueError:
        raise SystemExit(f"mix_manifests: {spec}: expected PATH, PATH:xN or PATH:FRACTION")
    if not 0.0 < frac <= 1.0:
        raise SystemExit(f"mix_manifests: {spec}: the fraction must be in (0, 1]")
    return path, 1, frac


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="+", help="manifests, each PATH[:xN|:FRACTION]")
    p.add_argument("--out", required=True, help="output manifest")
    p.add_argument("--seed", type=int, default=0, help="seed of subsampling and of --shuffle")
    p.add_argument("--shuffle", action="store_true", help="shuffle the mixed lines (the loader shuffles anyway)")
    args = p.parse_args()

    out_dir = os.path.dirname(os.path.abspath(args.out))
    rng = random.Random(args.seed)
    rows, problems, keys = [], [], {}
    for spec in args.inputs:
        path, repeat, frac = parse_input(spec)
        src_dir = os.path.dirname(os.path.abspath(path))
        try:
            with open(path, encoding="utf-8") as f:
                lines = f.read().split("\n")
        except OSError as e:
            problems.append(f"{path}: cannot read: {e.strerror}")
            continue
        picked = []
        for no, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                problems.append(f"{path}:{no}: not JSON: {e.msg}")
                continue
            if not isinstance(row, dict) or not isinstance(row.get("key"), str):
                problems.append(f"{path}:{no}: expected an object with a string \"key\"")
                continue
            for k, v in list(row.items()):
                if is_path_key(k) and isinstance(v, str) and not os.path.isabs(v):
                    row[k] = os.path.relpath(os.path.join(src_dir, v), out_dir)
            picked.append((no, row))
        if frac < 1.0:
            picked = [picked[i] for i in sorted(rng.sample(range(len(picked)), max(1, round(frac * len(picked)))))]
        for r in range(repeat):
            for no, row in picked:
                row = dict(row)
                if repeat > 1:
                    row["key"] = f"{row['key']}#{r}"
                where = f"{path}:{no}"
                if row["key"] in keys:
                    problems.append(f"{where}: duplicate key \"{row['key']}\" (first at {keys[row['key']]})")
                    continue
                keys[row["key"]] = where
                rows.append(row)
    if problems:
        for msg in problems[:50]:
            print(f"mix_manifests: {msg}", file=sys.stderr)
        if len(problems) > 50:
            print(f"mix_manifests: ... and {len(problems) - 50} more", file=sys.stderr)
        sys.exit(1)
    if args.shuffle:
        rng.shuffle(rows)
    os.makedirs(out_dir, exist_ok=True)
    tmp = args.out + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    os.replace(tmp, args.out)
    print(f"mix_manifests: wrote {len(rows)} samples to {args.out}")


if __name__ == "__main__":
    main()
