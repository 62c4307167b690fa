#!/usr/bin/env python3
"""Where the time goes in ONNX fp32 decoding: one exported ``model.onnx``, the same model input,
onnxruntime sessions with different options, timed interleaved; plus onnxruntime's per-operator
profile of each. Answers whether a gap between our ONNX path and funasr-onnx on the same file
(bench/benchmark_onnx.py) is the session configuration, the graph, or the frontend.

Sessions (all CPUExecutionProvider, ORT_ENABLE_ALL, ``--threads`` intra-op threads):
  ours           funasr_lite.inference.onnx_backend's options (sequential, 1 inter-op thread, arena on)
  ours_no_arena  the same with enable_cpu_mem_arena = False
  ours_cif       ours on the graph with the CIF outputs added (what timestamps need)
  funasr_onnx    funasr_onnx.utils.utils.OrtInferSession's options (arena off)

Input: the model input our frontend makes (fbank, LFR, CMVN; from the model dir's am.mvn and
config) for ``--audio`` (an .npz of 16 kHz float arrays, e.g. bench/benchmark_onnx.py's
``audio.npz``) or the first ``--max_utts`` of ``--wav_scp``. Modes: batch1 (one call per
utterance) and batched (one padded call). Each repeat runs every session once per mode, in a
rotating order (one process on purpose: the sessions share the input and the machine state);
the median of ``--repeats`` (with min and max) is reported, with the per-operator totals from
onnxruntime's profiler (one extra profiled pass per session).

    python bench/profile_onnx_sessions.py --model_dir bench_out/onnx_work_large/large \\
        --audio bench_out/onnx_work_large/audio.npz --threads 1 --repeats 7 --out bench_out/onnx_profile.json
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys
import tempfile
import time

import numpy as np

import harness


def session_options(kind: str, threads: int, profile_prefix: str = None):
    import onnxruntime

    from funasr_lite.inference.onnx_backend import _session_options

    if kind == "funasr_onnx":
        options = onnxruntime.SessionOptions()  # funasr_onnx OrtInferSession.__init__, as of funasr-onnx 0.4
        options.intra_op_num_threads = threads
        options.log_severity_level = 4
        options.enable_cpu_mem_arena = False
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    else:
        options = _session_options(threads)
        if kind == "ours_no_arena":
            options.enable_cpu_mem_arena = False
    if profile_prefix:
        options.enable_profiling = True
        options.profile_file_prefix = profile_prefix
    return options


def make_session(kind: str, model_path: str, threads: int, profile_prefix: str = None):
    import onnxruntime

    from funasr_lite.inference.onnx_backend import _model_with_timestamp_outputs

    source = _model_with_timestamp_outputs(model_path)[0] if kind == "ours_cif" else model_path
    return onnxruntime.InferenceSession(source, sess_options=session_options(kind, threads, profile_prefix),
                                        providers=["CPUExecutionProvider"])


def model_inputs(model_dir: str, waves: list) -> list:
    """[(feats [T, D] float32)] by our frontend (the model dir's frontend_conf and am.mvn)."""
    from funasr_lite.frontend.wav_frontend import WavFrontend
    from funasr_lite.utils.config import load_yaml

    config = load_yaml(os.path.join(model_dir, "config.yaml"))
    frontend = WavFrontend(config.get("frontend_conf") or {}, cmvn_file=os.path.join(model_dir, "am.mvn"))
    out = []
    for wave in waves:
        out.append(np.ascontiguousarray(frontend(np.asarray(wave, dtype=np.float32)).numpy(), dtype=np.float32))
    return out


def batches(feats: list, mode: str) -> list:
    if mode == "batch1":
        return [(f[None], np.array([f.shape[0]], dtype=np.int32)) for f in feats]
    longest = max(f.shape[0] for f in feats)
    padded = np.zeros((len(feats), longest, feats[0].shape[1]), dtype=np.float32)
    for i, f in enumerate(feats):
        padded[i, :f.shape[0]] = f
    return [(padded, np.array([f.shape[0] for f in feats], dtype=np.int32))]


def run_once(session, inputs: list) -> float:
    names = [i.name for i in session.get_inputs()]
    start = time.perf_counter()
    for speech, lengths in inputs:
        session.run(None, {names[0]: speech, names[1]: lengths})
    return time.perf_counter() - start


def operator_totals(profile_path: str) -> dict:
    """{op_type: total ms} of the kernel events in an onnxruntime profile."""
    with open(profile_path) as handle:
        events = json.load(handle)
    totals = collections.Counter()
    for event in events:
        args = event.get("args") or {}
        if event.get("cat") == "Node" and event.get("name", "").endswith("_kernel_time"):
            totals[args.get("op_name", "?")] += event.get("dur", 0) / 1000.0
    return dict(totals.most_common())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model_dir", required=True, help="an exported model dir (model.onnx, am.mvn, config.yaml)")
    parser.add_argument("--audio", help=".npz of 16 kHz float arrays")
    parser.add_argument("--wav_scp", help="or: a wav.scp (first --max_utts)")
    parser.add_argument("--max_utts", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--sessions", default="ours,ours_no_arena,ours_cif,funasr_onnx")
    parser.add_argument("--out", help="JSON file to write")
    args = parser.parse_args(argv)
    if args.audio:
        data = np.load(args.audio)
        waves = [data[k] for k in data.files][: args.max_utts]
    elif args.wav_scp:
        import soundfile

        from funasr_lite.data.datadir import read_kv

        waves = [soundfile.read(p, dtype="float32")[0] for p in list(read_kv(args.wav_scp).values())[: args.max_utts]]
    else:
        parser.error("give --audio or --wav_scp")
    seconds = sum(len(w) for w in waves) / 16000.0
    feats = model_inputs(args.model_dir, waves)
    model_path = os.path.join(args.model_dir, "model.onnx")
    kinds = args.sessions.split(",")
    sessions = {kind: make_session(kind, model_path, args.threads) for kind in kinds}
    modes = ("batch1", "batched")
    inputs = {mode: batches(feats, mode) for mode in modes}
    for kind in kinds:  # warm-up
        for mode in modes:
            run_once(sessions[kind], inputs[mode])
    times = {(kind, mode): [] for kind in kinds for mode in modes}
    for repeat in range(args.repeats):
        for mode in modes:
            for kind in harness.rotated(kinds, repeat):
                times[(kind, mode)].append(run_once(sessions[kind], inputs[mode]))
    rows = []
    for mode in modes:
        base = harness.stats(times[("funasr_onnx", mode)])["median"] if "funasr_onnx" in kinds else None
        for kind in kinds:
            spread = harness.stats(times[(kind, mode)])
            median = spread["median"]
            rows.append({"session": kind, "mode": mode, "median_s": round(median, 4), "rtf": round(median / seconds, 4),
                         "vs_funasr_onnx": round(median / base, 3) if base else None,
                         "min_s": round(spread["min"], 4), "max_s": round(spread["max"], 4),
                         "all_s": [round(t, 4) for t in times[(kind, mode)]]})
    profiles = {}
    with tempfile.TemporaryDirectory() as tmp:
        for kind in kinds:
            session = make_session(kind, model_path, args.threads, os.path.join(tmp, kind))
            for mode in modes:
                run_once(session, inputs[mode])
            profiles[kind] = operator_totals(session.end_profiling())
    print(f"{len(waves)} utterances, {seconds:.1f} s of audio, {args.threads} thread(s), median of {args.repeats}")
    print(harness.markdown_table(
        [("mode", "mode"), ("session", "session"), ("seconds", "median_s", ".4f"), ("min s", "min_s", ".4f"),
         ("max s", "max_s", ".4f"), ("RTF", "rtf", ".4f"), ("/ funasr_onnx", "vs_funasr_onnx", ".3f")], rows))
    print("\nper-operator kernel time (ms, one profiled batch1 + batched pass), top 8:")
    for kind, totals in profiles.items():
        top = list(totals.items())[:8]
        print(f"  {kind}: total {sum(totals.values()):.0f}; " + ", ".join(f"{op} {ms:.0f}" for op, ms in top))
    if args.out:
        harness.write_report(args.out, {"benchmark": "onnx_sessions", "environment": harness.environment(args.threads),
                                        "model_dir": args.model_dir, "utterances": len(waves), "audio_s": seconds,
                                        "threads": args.threads, "repeats": args.repeats, "rows": rows,
                                        "profiles": profiles})
    return 0


if __name__ == "__main__":
    sys.exit(main())
