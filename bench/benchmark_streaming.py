#!/usr/bin/env python3
"""Streaming (issue #23 item 7): what a ParaformerStreaming model costs and loses against an
offline model, measured on a data dir with ``char_timestamps`` (the corpus's true character spans).

    python bench/benchmark_streaming.py --model_dir egs/aishell1/exp/demo_streaming \\
        --checkpoint model.avg3.pt --offline_dir egs/aishell1/exp/demo --offline_checkpoint model.avg3.pt \\
        --data_dir egs/aishell1/data/test --chunks 0,10,5 0,8,4 --streams 1 2 4 8 --out bench_out/streaming.json

Per chunk configuration (one worker, ``--threads`` torch threads, audio fed in ``--piece_ms``
pieces as a live source would, each utterance its own stream):

* CER of the streaming model (``finish()`` text) and of the offline model (greedy), and their ratio;
* **first-partial latency**: when the first non-empty partial comes out (the audio time of the
  call that returned it + that call's compute) minus the first character's true start;
* **final latency**: the compute of ``finish()`` after the last sample (the result's delay after
  the audio ends), and that plus the trailing audio after the last character's true end;
* RTF (compute / audio) and the peak RSS of the worker;
* **concurrent streams**: N streams fed round-robin, piece by piece, in one worker per core: the
  share of calls that finished later than real time allows (a call on piece k must end before
  piece k+1 arrives), for each N of ``--streams``; the largest N with none late is what the
  machine carries.

Medians and 95th percentiles over utterances (ms). A table is printed and the JSON written.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import harness


def _percentile(values, q):
    import numpy as np

    return float(np.percentile(values, q)) if len(values) else None


def measure_quality(model_dir, checkpoint, offline_dir, offline_checkpoint, data_dir, chunks, piece_ms, max_utts):
    import numpy as np

    from funasr_lite.data.char_timestamps import read_char_timestamps
    from funasr_lite.data.datadir import read_kv
    from funasr_lite.inference.model_dir import load_model_dir
    from funasr_lite.inference.speech2text import Speech2Text, item_waveform, items_from_wav_scp
    from funasr_lite.inference.streaming import StreamingSession
    from funasr_lite.scoring.cer import compute_cer

    refs = read_kv(os.path.join(data_dir, "text"))
    times = read_char_timestamps(os.path.join(data_dir, "char_timestamps"))
    items = items_from_wav_scp(os.path.join(data_dir, "wav.scp"))
    items = [item for item in items if item.key in refs and item.key in times]
    if max_utts:
        items = items[:max_utts]
    loaded = load_model_dir(model_dir, checkpoint)
    audios = {item.key: item_waveform(loaded.frontend, item) for item in items}
    report = {"utterances": len(items), "audio_s": sum(a.size for a in audios.values()) / loaded.sample_rate}
    if offline_dir:
        offline = Speech2Text(load_model_dir(offline_dir, offline_checkpoint))
        results = offline.decode(items)
        report["offline_cer"] = compute_cer({k: refs[k] for k in audios}, {r["key"]: r["text"] for r in results}).cer_percent
    piece = int(loaded.sample_rate * piece_ms / 1000)
    report["chunks"] = {}
    for chunk in chunks:
        session = StreamingSession(loaded, chunk_size=chunk)
        hyps, first, final, final_speech, compute = {}, [], [], [], 0.0
        for key, audio in audios.items():
            session.reset()
            end = max(audio.size - piece, 0)
            for start in range(0, end, piece):
                session.feed(audio[start:min(start + piece, end)])
            result = session.finish(audio[end:])
            hyps[key] = result.text
            compute += result.compute_s
            partial = next((p for p in result.partials if p["text"]), None)
            if partial is not None and times[key]:
                first.append(partial["audio_end_ms"] + partial["compute_ms"] - times[key][0][1])
            final.append(1000.0 * result.finish_s)
            if times[key]:
                final_speech.append(1000.0 * audio.size / loaded.sample_rate - times[key][-1][2] + 1000.0 * result.finish_s)
        cer = compute_cer({k: refs[k] for k in audios}, hyps).cer_percent
        entry = {"cer": cer, "rtf": compute / report["audio_s"],
                 "first_partial_ms": {"median": _percentile(first, 50), "p95": _percentile(first, 95)},
                 "final_after_audio_ms": {"median": _percentile(final, 50), "p95": _percentile(final, 95)},
                 "final_after_speech_ms": {"median": _percentile(final_speech, 50),
                                           "p95": _percentile(final_speech, 95)}}
        if "offline_cer" in report and report["offline_cer"] > 0:
            entry["cer_ratio"] = cer / report["offline_cer"]
        report["chunks"][",".join(map(str, chunk))] = entry
    return report


def measure_concurrency(model_dir, checkpoint, data_dir, chunk, piece_ms, streams, max_utts):
    """N streams, round-robin piece by piece in this worker: share of calls later than real time."""
    from funasr_lite.inference.model_dir import load_model_dir
    from funasr_lite.inference.speech2text import item_waveform, items_from_wav_scp
    from funasr_lite.inference.streaming import StreamingSession

    loaded = load_model_dir(model_dir, checkpoint)
    items = items_from_wav_scp(os.path.join(data_dir, "wav.scp"))[: max(max_utts or streams, streams)]
    audios = [item_waveform(loaded.frontend, item) for item in items][:streams]
    piece = int(loaded.sample_rate * piece_ms / 1000)
    sessions = [StreamingSession(loaded, chunk_size=chunk) for _ in audios]
    longest = max(a.size for a in audios)
    late, calls = 0, 0
    clock = time.perf_counter()
    for index, start in enumerate(range(0, longest, piece)):
        deadline = clock + (index + 1) * piece_ms / 1000.0  # piece index+1 arrives then
        while time.perf_counter() < clock + index * piece_ms / 1000.0:  # wait for this piece to "arrive"
            time.sleep(0.0005)
        for session, audio in zip(sessions, audios):
            if start < audio.size:
                final = start + piece >= audio.size
                session.feed(audio[start:start + piece], is_final=final)
                calls += 1
        late += int(time.perf_counter() > deadline)
    return {"streams": streams, "calls": calls, "pieces": index + 1, "late_pieces": late,
            "late_share": late / (index + 1)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model_dir", required=True, help="a ParaformerStreaming model dir or exp dir")
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--offline_dir", default=None, help="the offline model to compare CER with")
    parser.add_argument("--offline_checkpoint", default=None)
    parser.add_argument("--data_dir", required=True, help="wav.scp, text, char_timestamps")
    parser.add_argument("--chunks", nargs="+", default=["0,10,5", "0,8,4"])
    parser.add_argument("--piece_ms", type=float, default=60.0, help="audio per feed() call (FunASR's clients: 60)")
    parser.add_argument("--streams", nargs="*", type=int, default=[1, 2, 4, 8])
    parser.add_argument("--workers", type=int, default=2, help="processes for the concurrency test (one per core)")
    parser.add_argument("--max_utts", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="bench_out/streaming.json")
    args = parser.parse_args(argv)
    chunks = [tuple(int(v) for v in chunk.split(",")) for chunk in args.chunks]
    quality = harness.run_in_worker(measure_quality, args.threads, model_dir=args.model_dir,
                                    checkpoint=args.checkpoint, offline_dir=args.offline_dir,
                                    offline_checkpoint=args.offline_checkpoint, data_dir=args.data_dir,
                                    chunks=chunks, piece_ms=args.piece_ms, max_utts=args.max_utts)
    rows = []
    for name, entry in quality["chunks"].items():
        rows.append({"chunk": name, "cer": entry["cer"], "ratio": entry.get("cer_ratio"), "rtf": entry["rtf"],
                     "first": entry["first_partial_ms"]["median"], "first95": entry["first_partial_ms"]["p95"],
                     "final": entry["final_after_audio_ms"]["median"], "final95": entry["final_after_audio_ms"]["p95"],
                     "speech": entry["final_after_speech_ms"]["median"]})
    print(f"offline CER {quality.get('offline_cer')}, {quality['utterances']} utterances, "
          f"{quality['audio_s']:.1f} s, peak RSS {quality.get('peak_rss_mb')} MB")
    print(harness.markdown_table([("chunk", "chunk"), ("CER %", "cer", ".2f"), ("/ offline", "ratio", ".3f"),
                                  ("RTF", "rtf", ".4f"), ("first partial ms (median)", "first", ".0f"),
                                  ("p95", "first95", ".0f"), ("final after audio ms (median)", "final", ".1f"),
                                  ("p95", "final95", ".1f"), ("final after speech ms (median)", "speech", ".0f")],
                                 rows))
    concurrency = []
    for streams in args.streams:
        per_worker = [streams // args.workers + (1 if w < streams % args.workers else 0) for w in range(args.workers)]
        with ThreadPoolExecutor(args.workers) as pool:  # one worker process per core, all at once
            runs = list(pool.map(lambda n: harness.run_in_worker(
                measure_concurrency, args.threads, model_dir=args.model_dir, checkpoint=args.checkpoint,
                data_dir=args.data_dir, chunk=chunks[0], piece_ms=args.piece_ms, streams=n,
                max_utts=args.max_utts), [n for n in per_worker if n > 0]))
        total = sum(r["streams"] for r in runs)
        concurrency.append({"streams": total, "late_share": max(r["late_share"] for r in runs),
                            "workers": len(runs)})
    if concurrency:
        print(harness.markdown_table([("streams", "streams"), ("workers", "workers"),
                                      ("late share of pieces", "late_share", ".3f")], concurrency))
    harness.write_report(args.out, {"quality": quality, "concurrency": concurrency,
                                    "environment": harness.environment(args.threads), "args": vars(args)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
