#!/usr/bin/env python3
"""Peak memory of the large-corpus data path (tar shards -> ShardStream -> batches) vs corpus size.

For each size in ``--sizes`` (utterances), a synthetic corpus (tone/noise audio, random
characters) is written as shards (``funasr_lite.data.shards.write_shards``); then a fresh
process (a harness worker, 1 thread) reads one whole epoch through the trainer's loader
(``StreamLoader``: shuffle buffer, fbank + LFR + CMVN on the fly, dynamic batches) and reports its
peak RSS (VmHWM) and that of its loader workers. The path holds no per-utterance index, so the
peak should stay flat (within ~10%) when the corpus grows 10x. Prints a table and writes JSON.

    python bench/benchmark_large_data.py --sizes 40 400 --out bench_out/large_data.json        # quick
    python bench/benchmark_large_data.py --sizes 2000 20000 --seconds 5 --num_workers 2 \
        --out bench_out/large_data.json                                                       # larger
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import numpy as np

import harness

CHARS = "的一是了我不人在他有这个上们来到时大地为子中你说"
TOKENS = ["<blank>", "<s>", "</s>", *CHARS, "<unk>"]


def make_corpus(root: str, size: int, seconds: float, shard_size: int, nj: int) -> dict:
    import soundfile

    from funasr_lite.data.shards import write_shards
    from funasr_lite.frontend.cmvn import write_am_mvn
    from funasr_lite.frontend.wav_frontend import WavFrontend

    rng = np.random.default_rng(size)
    wav_dir, data_dir = os.path.join(root, "wav"), os.path.join(root, "data")
    os.makedirs(wav_dir)
    os.makedirs(data_dir)
    sr = 16000
    t = np.arange(int(seconds * sr)) / sr
    with open(os.path.join(data_dir, "wav.scp"), "w") as wav_scp, open(os.path.join(data_dir, "text"), "w") as text:
        for i in range(size):
            utt = f"utt{i:07d}"
            wave = 0.1 * np.sin(2 * np.pi * rng.uniform(100, 1000) * t) + 0.01 * rng.standard_normal(t.size)
            path = os.path.join(wav_dir, utt + ".wav")
            soundfile.write(path, (wave * 32767).astype(np.int16), sr, subtype="PCM_16")
            wav_scp.write(f"{utt} {path}\n")
            text.write(f"{utt} {''.join(rng.choice(list(CHARS), size=8))}\n")
    list_path = os.path.join(root, "shards.list")
    start = time.perf_counter()
    paths = write_shards(data_dir, os.path.join(root, "shards"), list_path, frontend=WavFrontend({"fs": sr}),
                         utts_per_shard=shard_size, nj=nj)
    write_seconds = time.perf_counter() - start
    write_am_mvn(os.path.join(root, "am.mvn"), np.zeros(560), np.ones(560))
    with open(os.path.join(root, "tokens.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(TOKENS) + "\n")
    return {"list": list_path, "shards": len(paths), "write_seconds": round(write_seconds, 2)}


def read_epoch(root: str, batch_ms: int, buffer_size: int, num_workers: int) -> dict:
    """(harness worker) one epoch through StreamLoader; the peak RSS of its loader workers."""
    from funasr_lite.data.shards import ShardStream, StreamLoader
    from funasr_lite.data.tokenizer import CharTokenizer
    from funasr_lite.frontend.wav_frontend import WavFrontend

    frontend = WavFrontend({"fs": 16000, "n_mels": 80, "lfr_m": 7, "lfr_n": 6}, os.path.join(root, "am.mvn"))
    tokens = open(os.path.join(root, "tokens.txt"), encoding="utf-8").read().split()
    stream = ShardStream(os.path.join(root, "shards.list"), CharTokenizer(tokens), frontend, batch_ms,
                         buffer_size=buffer_size, seed=0)
    loader = StreamLoader(stream, num_workers=num_workers)
    start = time.perf_counter()
    batches = utterances = frames = 0
    for batch in loader:
        loader.advance()
        batches += 1
        utterances += len(batch["utt_ids"])
        frames += int(batch["speech_lengths"].sum())
    seconds = time.perf_counter() - start
    return {"batches": batches, "utterances": utterances, "frames": frames, "read_seconds": round(seconds, 2),
            "peak_rss_workers_mb": round(harness.children_peak_rss_mb(), 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[40, 400], help="corpus sizes (utterances)")
    parser.add_argument("--seconds", type=float, default=2.0, help="seconds per utterance")
    parser.add_argument("--shard_size", type=int, default=100, help="utterances per shard")
    parser.add_argument("--batch_ms", type=int, default=20000)
    parser.add_argument("--buffer_size", type=int, default=200, help="shuffle buffer (utterances)")
    parser.add_argument("--num_workers", type=int, default=1)
    parser.add_argument("--nj", type=int, default=1, help="shard-writing processes")
    parser.add_argument("--out", default=None, help="JSON output file")
    args = parser.parse_args()
    rows = []
    for size in args.sizes:
        with tempfile.TemporaryDirectory(prefix="bench_large_") as root:
            info = make_corpus(root, size, args.seconds, args.shard_size, args.nj)
            measured = harness.run_in_worker(read_epoch, 1, root=root, batch_ms=args.batch_ms,
                                             buffer_size=args.buffer_size, num_workers=args.num_workers)
            measured["peak_rss_mb"] = round(measured["peak_rss_mb"], 1)
            rows.append({"utterances": size, "hours": round(size * args.seconds / 3600, 3), **info, **measured})
            rows[-1].pop("list")
    print(harness.markdown_table([(key, key) for key in ("utterances", "hours", "shards", "batches", "read_seconds",
                                                         "peak_rss_mb", "peak_rss_workers_mb")], rows))
    ratio = {key: round(rows[-1][key] / rows[0][key], 3) for key in ("peak_rss_mb", "peak_rss_workers_mb")
             if rows[0][key]}
    print(f"peak RSS, largest / smallest corpus ({rows[-1]['utterances']} / {rows[0]['utterances']} utterances): {ratio}")
    if args.out:
        harness.write_report(args.out, {"benchmark": "large_data", "environment": harness.environment(1),
                                        "settings": vars(args), "rows": rows,
                                        "peak_rss_ratio_largest_to_smallest": ratio})
    return 0


if __name__ == "__main__":
    sys.exit(main())
