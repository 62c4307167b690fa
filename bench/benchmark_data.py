#!/usr/bin/env python3
"""Data-preparation speed: synthetic corpus generation and fbank extraction, x real time.

Runs each measurement ``--repeats`` times (fresh output dirs; each a command run by
harness.run_command: wall time and peak RSS of its process tree), prints a table of medians and
writes JSON. Real time factors are audio seconds / wall seconds (higher is faster).

    python bench/benchmark_data.py --corpus_size tiny --repeats 3 --out bench_out/data.json
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile

import soundfile

import harness

REPO = harness.REPO


def audio_seconds(wav_paths):
    return sum(soundfile.info(p).duration for p in wav_paths)


def bench_corpus(size, nj, repeats, work):
    runs, audio = [], None
    for r in range(repeats):
        out = os.path.join(work, f"corpus_{size}_nj{nj}_{r}")
        runs.append(harness.run_command([sys.executable, "-m", "funasr_lite.bin.make_synthetic_corpus", "--out", out,
                                         "--size", size, "--nj", str(nj), "--seed", "1"], out + ".log"))
        if audio is None:
            wavs = [os.path.join(d, f) for d, _, fs in os.walk(os.path.join(out, "data_aishell", "wav"))
                    for f in fs if f.endswith(".wav")]
            audio = audio_seconds(wavs)
        if r < repeats - 1:
            shutil.rmtree(out)
    return audio, runs, out


def prepare_data_dir(corpus_dir, work):
    data = os.path.join(work, "data")
    harness.run_command(["bash", os.path.join(REPO, "egs", "aishell1", "local", "aishell_data_prep.sh"),
                         os.path.join(corpus_dir, "data_aishell", "wav"),
                         os.path.join(corpus_dir, "data_aishell", "transcript"), data], data + ".log")
    return os.path.join(data, "train")


def bench_fbank(data_dir, nj, repeats, work):
    runs = []
    with open(os.path.join(data_dir, "wav.scp"), encoding="utf-8") as f:
        wavs = [line.split(maxsplit=1)[1].strip() for line in f if line.strip()]
    audio = audio_seconds(wavs)
    for r in range(repeats):
        d = os.path.join(work, f"fbank_nj{nj}_{r}")
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        for name in ("wav.scp", "text", "utt2spk", "spk2utt"):
            shutil.copy(os.path.join(data_dir, name), d)
        runs.append(harness.run_command(["bash", os.path.join(REPO, "utils", "make_fbank.sh"), "--nj", str(nj),
                                         "--cmd", "run_local.py", d, os.path.join(d, "log"), os.path.join(d, "ark")],
                                        d + ".log"))
        shutil.rmtree(d)
    return audio, runs


def row(task, nj, audio, runs):
    """One table row: the median wall time of the repeats (with min/max) and x real time."""
    spread = harness.stats(run["wall_s"] for run in runs)
    return {"task": task, "nj": nj, "audio_s": audio, "wall_s": [run["wall_s"] for run in runs],
            "median_wall_s": spread["median"], "min_wall_s": spread["min"], "max_wall_s": spread["max"],
            "x_real_time": audio / spread["median"], "peak_rss_mb": max(run["peak_rss_mb"] for run in runs)}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus_size", default="tiny", choices=["tiny", "small", "full"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=os.path.join(REPO, "bench_out", "data.json"))
    parser.add_argument("--work_dir", default=None, help="scratch dir (default: a temp dir, removed after)")
    args = parser.parse_args()

    work = args.work_dir or tempfile.mkdtemp(prefix="bench_data_")
    rows = []
    try:
        corpus_dir = None
        for nj in (1, 2):
            audio, runs, corpus_dir = bench_corpus(args.corpus_size, nj, args.repeats, work)
            rows.append(row("corpus generation", nj, audio, runs))
        train_dir = prepare_data_dir(corpus_dir, work)
        for nj in (1, 2):
            audio, runs = bench_fbank(train_dir, nj, args.repeats, work)
            rows.append(row("fbank extraction (train)", nj, audio, runs))
    finally:
        if args.work_dir is None:
            shutil.rmtree(work, ignore_errors=True)

    print(f"\ncorpus size {args.corpus_size}, median of {args.repeats} run(s) each")
    print(harness.markdown_table(
        [("task", "task"), ("nj", "nj"), ("audio s", "audio_s", ".1f"), ("median wall s", "median_wall_s", ".2f"),
         ("min wall s", "min_wall_s", ".2f"), ("max wall s", "max_wall_s", ".2f"),
         ("x real time", "x_real_time", ".1f"), ("peak RSS MB", "peak_rss_mb", ".0f")], rows))
    harness.write_report(args.out, {"benchmark": "data", "environment": harness.environment(None),
                                    "corpus_size": args.corpus_size, "repeats": args.repeats, "rows": rows})


if __name__ == "__main__":
    main()
