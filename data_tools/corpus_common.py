"""Shared machinery of the corpus builders: espeak-ng voices and accents, synthesis to 16 kHz mono WAV through
sox, optional seeded noise, WAV reading/writing with numpy, JSONL manifests and the README of each corpus."""

import argparse
import concurrent.futures as cf
import json
import os
import random
import shlex
import shutil
import subprocess
import sys
import wave

import numpy as np

RATE = 16000

# Accent name -> espeak-ng voice (the gmw/ voices `espeak-ng --voices=en` lists; mbrola voices need extra
# packages and are left out).
ACCENTS = {
    "American": "en-us",
    "British": "en-gb",
    "Scottish": "en-gb-scotland",
    "Caribbean": "en-029",
    "Received Pronunciation": "en-gb-x-rp",
    "Lancastrian": "en-gb-x-gbclan",
    "West Midlands": "en-gb-x-gbcwmd",
    "New York": "en-us-nyc",
}
# espeak-ng voice variants (`espeak-ng --voices=variant`), by the gender they sound.
MALE_VARIANTS = ["m1", "m2", "m3", "m4", "m5", "m6", "m7", "adam", "andy", "david", "ed", "edward", "john",
                 "max", "michael", "paul", "robert", "zac", "norbert", "travis", "victor"]
FEMALE_VARIANTS = ["f1", "f2", "f3", "f4", "f5", "annie", "aunty", "belinda", "linda", "steph", "shelby"]

SPEEDS = {"very slowly": 110, "slowly": 135, "at a normal pace": 170, "quickly": 215, "very quickly": 260}
PITCHES = {"very low": 10, "low": 30, "medium": 50, "high": 72, "very high": 92}


def check_tools():
    for tool in ("espeak-ng", "sox"):
        if not shutil.which(tool):
            sys.exit(f"{tool} not found: run .ci/setup.sh (it installs espeak-ng and sox)")


def available_accents():
    """The accents whose voices this espeak-ng has."""
    out = subprocess.run(["espeak-ng", "--voices=en"], capture_output=True, text=True, check=True).stdout
    have = {line.split()[1] for line in out.splitlines()[1:] if len(line.split()) > 1}
    acc = {k: v for k, v in ACCENTS.items() if v in have}
    if not acc:
        sys.exit("espeak-ng has none of the English voices " + ", ".join(ACCENTS.values()))
    return acc


def available_variants():
    out = subprocess.run(["espeak-ng", "--voices=variant"], capture_output=True, text=True, check=True).stdout
    have = {line.split()[4].split("/")[-1] for line in out.splitlines()[1:] if len(line.split()) > 4}
    male = [v for v in MALE_VARIANTS if v in have]
    female = [v for v in FEMALE_VARIANTS if v in have]
    return male or ["m1"], female or ["f1"]


def speaker_pool(rng, n, accents, male, female):
    """n distinct speaker identities (accent voice + variant + pitch + speed), drawn with rng."""
    seen, pool = set(), []
    while len(pool) < n:
        gender = rng.choice(["male", "female"])
        s = dict(accent=rng.choice(sorted(accents)), variant=rng.choice(male if gender == "male" else female),
                 pitch=rng.choice([20, 30, 40, 50, 60, 70, 80]), wpm=rng.choice([140, 155, 170, 185, 200]),
                 gender=gender)
        s["voice"] = accents[s["accent"]]
        s["id"] = f"{s['voice']}+{s['variant']}-p{s['pitch']}-s{s['wpm']}"
        if s["id"] in seen:
            continue
        seen.add(s["id"])
        pool.append(s)
    return pool


def read_wav(path):
    with wave.open(path, "rb") as w:
        assert w.getsampwidth() == 2, path
        x = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float32) / 32768.0
        return x.reshape(-1, w.getnchannels()) if w.getnchannels() > 1 else x, w.getframerate()


def write_wav(path, x, rate=RATE):
    """x: float [n] (mono) or [n, channels] in [-1, 1]; written as 16-bit PCM."""
    x = np.asarray(x, dtype=np.float32)
    ch = 1 if x.ndim == 1 else x.shape[1]
    pcm = np.clip(np.round(x * 32767.0), -32768, 32767).astype("<i2")
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with wave.open(path, "wb") as w:
        w.setnchannels(ch)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())


def add_noise(x, snr_db, seed):
    """White noise plus low-passed (brown-ish) noise at the given SNR, deterministic per seed."""
    g = np.random.default_rng(seed)
    white = g.standard_normal(len(x)).astype(np.float32)
    brown = np.cumsum(g.standard_normal(len(x))).astype(np.float32)
    brown -= np.convolve(brown, np.ones(801) / 801, mode="same").astype(np.float32)  # remove drift
    noise = white / (np.std(white) + 1e-9) + brown / (np.std(brown) + 1e-9)
    p_sig = float(np.mean(x ** 2)) + 1e-12
    noise *= np.sqrt(p_sig / (10 ** (snr_db / 10)) / (float(np.mean(noise ** 2)) + 1e-12))
    return np.clip(x + noise, -1.0, 1.0)


def synth(text, voice, variant, wpm, pitch, path, noise_snr=None, noise_seed=0):
    """espeak-ng -> sox (16 kHz mono 16-bit) -> optional noise; returns the duration in seconds."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    es = subprocess.run(["espeak-ng", "-v", f"{voice}+{variant}", "-s", str(wpm), "-p", str(pitch), "--stdout",
                         text], capture_output=True, check=True)
    # -R: sox dithers the resampled audio down to 16 bits with a time-seeded generator; repeatable mode seeds it
    # with a constant, so one seed builds the same corpus byte for byte (and a recipe's figures can be repeated)
    subprocess.run(["sox", "-R", "-q", "-t", "wav", "-", "-r", str(RATE), "-c", "1", "-b", "16", path],
                   input=es.stdout, capture_output=True, check=True)
    x, _ = read_wav(path)
    if noise_snr is not None:
        x = add_noise(x, noise_snr, noise_seed)
        write_wav(path, x)
    return len(x) / RATE


def synth_many(jobs, workers):
    """Runs synth(**job) for each job in parallel; returns the durations in job order."""
    with cf.ThreadPoolExecutor(max_workers=workers) as ex:
        return list(ex.map(lambda j: synth(**j), jobs))


def common_args(description):
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--out", required=True, help="output folder (created)")
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--minutes", type=float, default=5.0, help="target minutes of audio (default 5)")
    p.add_argument("--hours", type=float, default=None, help="target hours of audio (overrides --minutes)")
    p.add_argument("--max-items", type=int, default=None, help="stop after this many items (tests)")
    p.add_argument("--noise-prob", type=float, default=0.0, help="fraction of utterances with added noise")
    p.add_argument("--snr", type=float, nargs=2, default=[5.0, 30.0], metavar=("MIN", "MAX"),
                   help="SNR range in dB for added noise")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    return p


def target_seconds(args):
    return (args.hours * 3600.0) if args.hours is not None else args.minutes * 60.0


def produce(make_item, args, chunk=32, finish=None):
    """Builds items in chunks until the target duration or --max-items is reached. make_item(i) returns
    (item dict, [synth jobs]); item["durations"] gets the jobs' durations; finish(item), when given, runs next
    (e.g. mixing a timeline) and returns the item's seconds, otherwise its first job's duration counts.
    Deterministic: items are planned in order from the seed, chunks only batch the synthesis."""
    goal, total, items, i = target_seconds(args), 0.0, [], 0
    while total < goal and (args.max_items is None or len(items) < args.max_items):
        n = chunk if args.max_items is None else min(chunk, args.max_items - len(items))
        planned = [make_item(i + k) for k in range(n)]
        i += n
        jobs = [j for _, js in planned for j in js]
        durs = synth_many(jobs, args.workers)
        k, done = 0, False
        for item, js in planned:
            if done:  # synthesised past the goal: remove, so the folder holds exactly the manifest's files
                for j in js:
                    os.remove(j["path"])
                continue
            item["durations"] = durs[k:k + len(js)]
            k += len(js)
            items.append(item)
            total += finish(item) if finish else item["durations"][0]
            done = total >= goal or (args.max_items is not None and len(items) >= args.max_items)
        print(f"  {len(items)} items, {total / 60:.1f} min", file=sys.stderr)
    return items, total


def noise_for(rng, args):
    return rng.uniform(*args.snr) if rng.random() < args.noise_prob else None


def write_manifest(path, rows):
    with open(path, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def write_readme(out, title, what, args, extra_lines, manifests):
    cmd = " ".join(shlex.quote(a) for a in [os.path.relpath(sys.argv[0])] + sys.argv[1:])
    es = subprocess.run(["espeak-ng", "--version"], capture_output=True, text=True).stdout.strip()
    lines = [f"# {title}", "", what, "", "## How it was made", "", "```", cmd, "```", "",
             f"- seed: {args.seed}", f"- synthesiser: {es}; resampled to 16 kHz mono 16-bit by sox",
             f"- added noise: {args.noise_prob:.0%} of utterances, SNR {args.snr[0]}..{args.snr[1]} dB "
             "(white + brown noise, numpy, seeded)"]
    lines += extra_lines
    lines += ["", "## Manifests", ""]
    for name, n, secs in manifests:
        lines.append(f"- `{name}`: {n} samples, {secs / 3600:.3f} hours")
    lines += ["", "Check with `vox data check <manifest>`.", ""]
    with open(os.path.join(out, "README.md"), "w", encoding="utf-8") as f:
        f.write("\n".join(lines))


def item_rng(seed, i, salt=0):
    """An independent RNG per item so that a corpus's first N items do not depend on its size."""
    return random.Random((seed * 1_000_003 + salt) * 1_000_033 + i)
