#!/usr/bin/env python3
"""Converts external ASR datasets into vox JSONL manifests (task asr):
  kaldi DIR        a Kaldi data folder: wav.scp (utt path) + text (utt transcript) [+ utt2spk]
  librispeech DIR  a LibriSpeech folder: SPEAKER/CHAPTER/SPEAKER-CHAPTER.trans.txt + *.flac
Durations are read from the audio headers (WAV and FLAC natively, anything else through soxi). Audio paths
are written relative to the output manifest's folder. Problems (utterances without audio or text, piped
wav.scp commands, unreadable files) are listed and make the exit status 1; nothing is silently dropped."""

import argparse
import json
import os
import struct
import subprocess
import sys
import wave


def flac_duration(path):
    with open(path, "rb") as f:
        if f.read(4) != b"fLaC":
            raise ValueError("not a FLAC file")
        hdr = f.read(4)
        if hdr[0] & 0x7F != 0:
            raise ValueError("first FLAC metadata block is not STREAMINFO")
        info = f.read(18)
        bits = int.from_bytes(info[10:18], "big")
        rate = bits >> 44
        total = bits & ((1 << 36) - 1)
        if rate == 0 or total == 0:
            raise ValueError("FLAC STREAMINFO has no sample count")
        return total / rate


def audio_duration(path):
    low = path.lower()
    if low.endswith(".wav"):
        try:
            with wave.open(path, "rb") as w:
                return w.getnframes() / w.getframerate()
        except (wave.Error, EOFError, struct.error):
            pass  # e.g. float WAV: ask soxi
    if low.endswith(".flac"):
        return flac_duration(path)
    out = subprocess.run(["soxi", "-D", path], capture_output=True, text=True)
    if out.returncode != 0:
        raise ValueError(out.stderr.strip() or "soxi failed")
    return float(out.stdout)


def read_table(path):
    """Kaldi 'key rest-of-line' files."""
    table = {}
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line.strip():
                continue
            parts = line.split(maxsplit=1)
            table[parts[0]] = (parts[1] if len(parts) > 1 else "", n)
    return table


def from_kaldi(d, problems):
    wav = read_table(os.path.join(d, "wav.scp"))
    text = read_table(os.path.join(d, "text"))
    spk_path = os.path.join(d, "utt2spk")
    spk = read_table(spk_path) if os.path.exists(spk_path) else {}
    if os.path.exists(os.path.join(d, "segments")):
        problems.append(f"{d}/segments: segmented recordings are not supported (vox samples are whole files)")
    rows = []
    for utt, (path, n) in sorted(wav.items()):
        if path.endswith("|"):
            problems.append(f"{d}/wav.scp:{n}: '{utt}' is a command pipe, not a file; decode it to WAV first")
            continue
        if utt not in text:
            problems.append(f"{d}/wav.scp:{n}: '{utt}' has no transcript in text")
            continue
        if not os.path.isabs(path):
            path = os.path.join(d, path)
        rows.append(dict(key=utt, audio=path, text=text[utt][0], speaker=spk.get(utt, (None,))[0]))
    for utt, (_, n) in text.items():
        if utt not in wav:
            problems.append(f"{d}/text:{n}: '{utt}' has no audio in wav.scp")
    return rows


def from_librispeech(d, problems):
    rows = []
    for root, _, files in sorted(os.walk(d)):
        for name in sorted(files):
            if not name.endswith(".trans.txt"):
                continue
            with open(os.path.join(root, name), encoding="utf-8") as f:
                for n, line in enumerate(f, 1):
                    parts = line.strip().split(maxsplit=1)
                    if not parts:
                        continue
                    utt = parts[0]
                    audio = os.path.join(root, utt + ".flac")
                    if not os.path.exists(audio):
                        problems.append(f"{os.path.join(root, name)}:{n}: {audio} not found")
                        continue
                    rows.append(dict(key=utt, audio=audio, text=parts[1] if len(parts) > 1 else "",
                                     speaker=utt.split("-")[0]))
    if not rows and not problems:
        problems.append(f"{d}: no *.trans.txt files found (expected SPEAKER/CHAPTER/SPEAKER-CHAPTER.trans.txt)")
    return rows


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("format", choices=["kaldi", "librispeech"])
    p.add_argument("src", help="dataset folder")
    p.add_argument("--out", required=True, help="output manifest (.jsonl)")
    p.add_argument("--absolute", action="store_true", help="write absolute audio paths")
    args = p.parse_args()
    problems = []
    rows = from_kaldi(args.src, problems) if args.format == "kaldi" else from_librispeech(args.src, problems)
    out_dir = os.path.dirname(os.path.abspath(args.out))
    written = 0
    total = 0.0
    with open(args.out, "w", encoding="utf-8") as f:
        for r in rows:
            try:
                dur = audio_duration(r["audio"])
            except (OSError, ValueError) as e:
                problems.append(f"{r['audio']}: cannot read duration ({e})")
                continue
            audio = os.path.abspath(r["audio"]) if args.absolute else os.path.relpath(r["audio"], out_dir)
            row = dict(key=r["key"], task="asr", audio=audio, duration=round(dur, 4), text=r["text"])
            if r.get("speaker"):
                row["speaker"] = r["speaker"]
            row["source"] = args.format
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
            written += 1
            total += dur
    for msg in problems:
        print(msg, file=sys.stderr)
    print(f"{args.out}: {written} utterances, {total / 3600:.3f} hours; {len(problems)} problem(s)", file=sys.stderr)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
