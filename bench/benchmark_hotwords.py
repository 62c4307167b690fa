#!/usr/bin/env python3
"""What hotwords cost at decoding: a SeACo (or Contextual) model decodes the same utterances without
hotwords and with lists of each size, side by side in one worker (the order rotating between
repeats); medians of the wall time, and each list's time over the no-hotword time.

    python bench/benchmark_hotwords.py --model_dir egs/aishell1/exp/demo_seaco --checkpoint model.avg1.pt \
        --data_dir egs/aishell1/data/test_hotword --lists 200=egs/aishell1/data/test_hotword/hotwords_200.txt \
        1000=egs/aishell1/data/test_hotword/hotwords_1000.txt --repeats 5 --threads 1 --out bench_out/hotwords.json

Decoding is greedy through ``Speech2Text`` (features from the data dir's ``wav.scp``, prepared once
and shared by every variant: the time is the model's). The hotword embeddings are made once per
list, as a server would keep them; their cost is reported apart (``embed_s``).
"""

from __future__ import annotations

import argparse
import sys
import time

import harness


def measure(model_dir: str, checkpoint, data_dir: str, lists: dict, repeats: int, max_utts: int) -> dict:
    from funasr_lite.inference.model_dir import load_model_dir
    from funasr_lite.inference.speech2text import DecodeOptions, Speech2Text, items_from_data_dir

    loaded = load_model_dir(model_dir, checkpoint)
    decoders, embed_s = {"none": Speech2Text(loaded, DecodeOptions())}, {}
    for name, path in lists.items():
        start = time.perf_counter()
        decoders[name] = Speech2Text(loaded, DecodeOptions(hotword=path))
        embed_s[name] = time.perf_counter() - start
    items = items_from_data_dir(data_dir)[:max_utts] if max_utts else items_from_data_dir(data_dir)
    prepared = [decoders["none"].prepare(i, item) for i, item in enumerate(items)]
    audio_s = sum(p.audio_s for p in prepared)

    def run(name, _repeat):
        start = time.perf_counter()
        batches = decoders[name]._batches(list(prepared))
        tokens = sum(len(r["token"]) for batch in batches for r in decoders[name].decode_batch(batch))
        return {"wall_s": time.perf_counter() - start, "tokens": tokens}

    runs = harness.side_by_side(list(decoders), repeats, run)
    return {"runs": runs, "embed_s": embed_s, "audio_s": audio_s, "utterances": len(prepared)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model_dir", required=True, help="a SeACo/Contextual model dir or exp dir")
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--data_dir", required=True)
    parser.add_argument("--lists", nargs="+", required=True, help="NAME=hotword-file ...")
    parser.add_argument("--max_utts", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="bench_out/hotwords.json")
    args = parser.parse_args(argv)
    lists = dict(entry.split("=", 1) for entry in args.lists)
    result = harness.run_in_worker(measure, args.threads, model_dir=args.model_dir, checkpoint=args.checkpoint,
                                   data_dir=args.data_dir, lists=lists, repeats=args.repeats,
                                   max_utts=args.max_utts)
    runs = result["runs"]
    base = runs["none"]
    rows = []
    for name, name_runs in runs.items():
        wall = harness.stats(r["wall_s"] for r in name_runs)
        ratio = harness.paired_ratios(name_runs, base, "wall_s")
        rows.append({"hotwords": name, "wall_s": wall["median"], "rtf": wall["median"] / result["audio_s"],
                     "ratio": ratio["median_per_repeat"], "embed_s": result["embed_s"].get(name, 0.0),
                     "tokens": name_runs[-1]["tokens"]})
    print(harness.markdown_table([("hotwords", "hotwords"), ("wall s (median)", "wall_s", ".3f"), ("RTF", "rtf", ".4f"),
                                  ("/ no hotwords", "ratio", ".3f"), ("embedding s", "embed_s", ".3f"),
                                  ("tokens", "tokens")], rows))
    harness.write_report(args.out, {"rows": rows, "runs": runs, "utterances": result["utterances"],
                                    "audio_s": result["audio_s"], "peak_rss_mb": result.get("peak_rss_mb"),
                                    "environment": harness.environment(args.threads), "args": vars(args)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
