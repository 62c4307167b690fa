#!/usr/bin/env python3
"""Data-preparation speed: synthetic corpus generation and fbank extraction, x real time.

Runs each measurement ``--repeats`` times (fresh output dirs), prints a table of medians and
writes JSON. Real time factors are audio seconds / wall seconds (higher is faster).

    python bench/benchmark_data.py --corpus_size tiny --repeats 3 --out bench_out/data.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import soundfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def audio_seconds(wav_paths):
    return sum(soundfile.info(p).duration for p in wav_paths)


def run(cmd, **kwargs):
    env = dict(os.environ, FUNASR_LITE_NO_PROGRESS="1", PYTHONPATH=REPO,
               PATH=os.path.join(REPO, "utils") + os.pathsep + os.path.dirname(sys.executable)
               + os.pathsep + os.environ.get("PATH", ""))
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, **kwargs)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-3000:]}")
    return elapsed


def bench_corpus(size, nj, repeats, work):
    times, audio = [], None
    for r in range(repeats):
        out = os.path.join(work, f"corpus_{size}_nj{nj}_{r}")
        times.append(run([sys.executable, "-m", "funasr_lite.bin.make_synthetic_corpus", "--out", out,
                          "--size", size, "--nj", str(nj), "--seed", "1"]))
        if audio is None:
            wavs = [os.path.join(d, f) for d, _, fs in os.walk(os.path.join(out, "data_aishell", "wav"))
                    for f in fs if f.endswith(".wav")]
            audio = audio_seconds(wavs)
        if r < repeats - 1:
            shutil.rmtree(out)
    return audio, times, out


def prepare_data_dir(corpus_dir, work):
    data = os.path.join(work, "data")
    run(["bash", os.path.join(REPO, "egs", "aishell1", "local", "aishell_data_prep.sh"),
         os.path.join(corpus_dir, "data_aishell", "wav"), os.path.join(corpus_dir, "data_aishell", "transcript"),
         data])
    return os.path.join(data, "train")


def bench_fbank(data_dir, nj, repeats, work):
    times = []
    with open(os.path.join(data_dir, "wav.scp"), encoding="utf-8") as f:
        wavs = [line.split(maxsplit=1)[1].strip() for line in f if line.strip()]
    audio = audio_seconds(wavs)
    for r in range(repeats):
        d = os.path.join(work, f"fbank_nj{nj}_{r}")
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        for name in ("wav.scp", "text", "utt2spk", "spk2utt"):
            shutil.copy(os.path.join(data_dir, name), d)
        times.append(run(["bash", os.path.join(REPO, "utils", "make_fbank.sh"), "--nj", str(nj),
                          "--cmd", "run_local.py", d, os.path.join(d, "log"), os.path.join(d, "ark")]))
        shutil.rmtree(d)
    return audio, times


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
            audio, times, corpus_dir = bench_corpus(args.corpus_size, nj, args.repeats, work)
            rows.append({"task": "corpus generation", "nj": nj, "audio_s": audio, "wall_s": times,
                         "median_wall_s": statistics.median(times), "x_real_time": audio / statistics.median(times)})
        train_dir = prepare_data_dir(corpus_dir, work)
        for nj in (1, 2):
            audio, times = bench_fbank(train_dir, nj, args.repeats, work)
            rows.append({"task": "fbank extraction (train)", "nj": nj, "audio_s": audio, "wall_s": times,
                         "median_wall_s": statistics.median(times), "x_real_time": audio / statistics.median(times)})
    finally:
        if args.work_dir is None:
            shutil.rmtree(work, ignore_errors=True)

    print(f"corpus size {args.corpus_size}, {args.repeats} runs each, {os.cpu_count()} CPUs ({platform.processor() or platform.machine()})")
    print(f"{'task':<28}{'nj':>4}{'audio s':>10}{'median wall s':>15}{'x real time':>13}")
    for r in rows:
        print(f"{r['task']:<28}{r['nj']:>4}{r['audio_s']:>10.1f}{r['median_wall_s']:>15.2f}{r['x_real_time']:>13.1f}")
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump({"corpus_size": args.corpus_size, "repeats": args.repeats, "cpus": os.cpu_count(), "rows": rows}, f,
                  indent=2)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
