#!/usr/bin/env python3
"""Memory over a long decoding session: N utterances decoded one call at a time by one
``SpeechRecognizer`` object in one process (a server's pattern); prints RSS over time.

    python bench/benchmark_rss.py --num_utts 5000                    # the acceptance run
    python bench/benchmark_rss.py --num_utts 500 --model_dir DIR      # a real model dir

Utterances are synthetic speech-like audio of 1-4 s (a fixed cycle of 50 distinct lengths and
seeds, so every shape recurs), given as float arrays, wav paths and wav bytes in turn. Without
--model_dir a tiny random-weight model dir is built. RSS (VmRSS) and the peak so far (VmHWM) are
sampled every --every utterances; "growth after warm-up" compares the peak at the end with the
peak after the first 10% of the utterances. Prints a table and writes JSON (--json, or --out).
One process on purpose (the leak a server would see); bench/harness.py reads its RSS and peak.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
import time

import harness

sys.path.insert(0, os.path.join(harness.REPO, "tests", "drills"))
import drill_kit as kit  # noqa: E402


def memory_mib():
    """(VmRSS, VmHWM) of this process in MiB."""
    return harness.rss_mb(), harness.peak_rss_mb()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num_utts", type=int, default=5000)
    parser.add_argument("--every", type=int, default=0, help="sample RSS every N utterances (default: num_utts/20)")
    parser.add_argument("--model_dir", help="a model dir (default: a tiny random one)")
    parser.add_argument("--num_threads", type=int, default=1)
    parser.add_argument("--json", "--out", dest="json", default="benchmark_rss.json", help="JSON file to write")
    args = parser.parse_args(argv)
    import torch

    from funasr_lite import SpeechRecognizer

    torch.set_num_threads(args.num_threads)
    work = tempfile.mkdtemp(prefix="rss_")
    model_dir = args.model_dir or kit.write_model_dir(os.path.join(work, "model"), d_model=32)
    asr = SpeechRecognizer.from_model_dir(model_dir)
    every = args.every or max(1, args.num_utts // 20)
    cycle = []
    for i in range(50):
        samples = kit.synth_wave(1.0 + 3.0 * ((i * 37) % 50) / 50, seed=i)
        path = kit.write_wav(os.path.join(work, f"u{i}.wav"), samples)
        with open(path, "rb") as f:
            cycle.append((samples, path, f.read()))
    rows = []
    start = time.perf_counter()
    rss0, _ = memory_mib()
    for n in range(1, args.num_utts + 1):
        samples, path, data = cycle[n % len(cycle)]
        kind = n % 3
        result = asr(samples, audio_fs=16000) if kind == 0 else asr(path) if kind == 1 else asr(data)
        assert len(result) == 1
        if n % every == 0 or n == args.num_utts:
            gc.collect()
            rss, hwm = memory_mib()
            rows.append({"utts": n, "seconds": round(time.perf_counter() - start, 1), "rss_mib": round(rss, 1),
                         "peak_mib": round(hwm, 1)})
            print(f"{n:>7} utts  {rows[-1]['seconds']:>8.1f} s  RSS {rss:8.1f} MiB  peak {hwm:8.1f} MiB", flush=True)
    warm = next((r for r in rows if r["utts"] >= args.num_utts // 10), rows[0])
    growth = rows[-1]["peak_mib"] - warm["peak_mib"]
    rss_growth = rows[-1]["rss_mib"] - warm["rss_mib"]
    print()
    print(harness.markdown_table([("utterances", "utts"), ("seconds", "seconds"), ("RSS MiB", "rss_mib"),
                                  ("peak MiB", "peak_mib")], rows))
    print(f"\nRSS before the first utterance {rss0:.1f} MiB; after warm-up ({warm['utts']} utts) RSS "
          f"{warm['rss_mib']} / peak {warm['peak_mib']} MiB; at the end RSS {rows[-1]['rss_mib']} / peak "
          f"{rows[-1]['peak_mib']} MiB: growth after warm-up {rss_growth:+.1f} MiB RSS, {growth:+.1f} MiB peak")
    harness.write_report(args.json, {"benchmark": "rss", "environment": harness.environment(args.num_threads),
                                     "num_utts": args.num_utts, "model_dir": args.model_dir or "tiny random",
                                     "rows": rows, "rss_before_mib": round(rss0, 1), "warm_up_utts": warm["utts"],
                                     "peak_growth_after_warm_up_mib": round(growth, 1),
                                     "rss_growth_after_warm_up_mib": round(rss_growth, 1)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
