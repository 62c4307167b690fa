#!/usr/bin/env python3
"""The machine's own limit (issue #26 item 1): dense GEMM throughput, and the model's FLOPs per
second of audio, so that every decoding speed can be read as a share of what the hardware does.

    python bench/benchmark_gemm_limit.py --out bench/results/gemm_limit.json        # the full run
    python bench/benchmark_gemm_limit.py --sizes 256 --repeats 3 --audio_s 2       # a smoke run

1. **GEMM**, 1 and 2 threads, each in a fresh worker: fp32 ``torch.matmul`` on square matrices of
   ``--sizes`` and on the shapes a Paraformer layer multiplies (frames x d_model by d_model x
   4 d_model); int8 ``MatMulInteger`` (uint8 x int8 -> int32) in onnxruntime on the same shapes.
   GFLOP/s = 2 M N K / median seconds; the best shape of each kind is "the limit".
2. **Model FLOPs** per second of audio (``torch.utils.flop_counter``, matmuls and convolutions) of
   the encoder, the CIF predictor and the decoder, for ``conf/demo.yaml`` and paraformer-large
   (``conf/paraformer_sanm.yaml``, 8404 tokens), on ``--audio_s`` of input with ``--tokens_per_s``
   output tokens (Mandarin speech: about 4 characters a second).
3. **RTF at the limit**: model FLOPs per audio second / the fp32 limit: no fp32 decoder on this
   machine can have a lower RTF; a measured RTF r is at ``RTF_limit / r`` of the limit.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import harness

REPO = harness.REPO
CONFIGS = {"demo": ("egs/aishell1/conf/demo.yaml", 4234), "paraformer-large": ("egs/aishell1/conf/paraformer_sanm.yaml",
                                                                                8404)}


def _median_seconds(run, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    times.sort()
    return times[len(times) // 2]


def gemm_worker(shapes, repeats):
    """In a worker (threads set by the harness): fp32 torch and int8 onnxruntime GFLOP/s per shape."""
    import numpy as np
    import onnx
    import onnxruntime
    import torch
    from onnx import TensorProto, helper

    threads = torch.get_num_threads()
    rows = []
    for m, k, n in shapes:
        a, b = torch.randn(m, k), torch.randn(k, n)
        torch.matmul(a, b)  # warm-up
        seconds = _median_seconds(lambda: torch.matmul(a, b), repeats)
        rows.append({"kind": "fp32 torch", "shape": f"{m}x{k}x{n}", "gflops": 2 * m * k * n / seconds / 1e9})
        graph = helper.make_graph(
            [helper.make_node("MatMulInteger", ["A", "B"], ["Y"])], "g",
            [helper.make_tensor_value_info("A", TensorProto.UINT8, [m, k]),
             helper.make_tensor_value_info("B", TensorProto.INT8, [k, n])],
            [helper.make_tensor_value_info("Y", TensorProto.INT32, [m, n])])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
        model.ir_version = 8
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        session = onnxruntime.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
        feeds = {"A": np.random.randint(0, 255, (m, k), dtype=np.uint8),
                 "B": np.random.randint(-127, 127, (k, n), dtype=np.int8)}
        session.run(None, feeds)
        seconds = _median_seconds(lambda: session.run(None, feeds), repeats)
        rows.append({"kind": "int8 onnxruntime", "shape": f"{m}x{k}x{n}", "gflops": 2 * m * k * n / seconds / 1e9})
    return {"threads": threads, "rows": rows}


def model_flops(name, audio_s, tokens_per_s):
    """FLOPs per second of audio of the encoder, predictor and decoder of one config."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    sys.path.insert(0, os.path.join(REPO, "bench"))
    from paraformer_pair import lfr_frame_s, model_config

    from funasr_lite.models import build_model

    path, vocab = CONFIGS[name]
    config = model_config(os.path.join(REPO, path), vocab)
    model = build_model(config).eval()
    frames = int(round(audio_s / lfr_frame_s(config)))
    tokens = max(1, int(round(audio_s * tokens_per_s)))
    feats, lengths = torch.randn(1, frames, config["input_size"]), torch.tensor([frames])
    counts = {}
    with torch.no_grad():
        with FlopCounterMode(display=False) as counter:
            encoder_out, encoder_lengths = model.encode(feats, lengths)
        counts["encoder"] = counter.get_total_flops()
        mask = torch.ones(1, encoder_out.size(1), dtype=torch.bool)
        with FlopCounterMode(display=False) as counter:
            embeds = model.predictor(encoder_out, mask, target_lengths=torch.tensor([tokens]))[0]
        counts["predictor"] = counter.get_total_flops()
        with FlopCounterMode(display=False) as counter:
            model.decoder_log_probs(encoder_out, encoder_lengths, embeds, torch.tensor([tokens]))
        counts["decoder"] = counter.get_total_flops()
    per_s = {part: flops / audio_s for part, flops in counts.items()}
    per_s["total"] = sum(per_s.values())
    return {"config": name, "parameters": sum(p.numel() for p in model.parameters()), "lfr_frames": frames,
            "tokens": tokens, "gflop_per_audio_s": {k: v / 1e9 for k, v in per_s.items()}}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024, 2048], help="square GEMM sizes")
    parser.add_argument("--layer_shapes", nargs="*", default=["100x192x768", "100x512x2048", "1000x512x2048"],
                        help="MxKxN shapes of the models' layers (frames x d_model x 4 d_model)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS))
    parser.add_argument("--audio_s", type=float, default=10.0)
    parser.add_argument("--tokens_per_s", type=float, default=4.0)
    parser.add_argument("--out", default="bench/results/gemm_limit.json")
    args = parser.parse_args(argv)
    shapes = [(s, s, s) for s in args.sizes] + [tuple(int(x) for x in s.split("x")) for s in args.layer_shapes]
    report = {"environment": harness.environment(args.threads), "args": vars(args), "gemm": [], "limit": {},
              "models": []}
    for threads in args.threads:
        result = harness.run_in_worker(gemm_worker, threads, shapes=shapes, repeats=args.repeats)
        for row in result["rows"]:
            report["gemm"].append({"threads": threads, **row})
        for kind in ("fp32 torch", "int8 onnxruntime"):
            report["limit"][f"{kind}, {threads} thread(s)"] = max(r["gflops"] for r in result["rows"] if r["kind"] == kind)
    for name in args.configs:
        entry = harness.run_in_worker(model_flops, 1, name=name, audio_s=args.audio_s, tokens_per_s=args.tokens_per_s)
        entry.pop("peak_rss_mb", None)
        for threads in args.threads:
            limit = report["limit"][f"fp32 torch, {threads} thread(s)"]
            entry[f"rtf_at_fp32_limit_{threads}t"] = entry["gflop_per_audio_s"]["total"] / limit
        report["models"].append(entry)
    print(harness.markdown_table([("threads", "threads"), ("kind", "kind"), ("M x K x N", "shape"),
                                  ("GFLOP/s", "gflops", ".1f")], report["gemm"]))
    print()
    print(harness.markdown_table([("limit", "name"), ("GFLOP/s", "value", ".1f")],
                                 [{"name": k, "value": v} for k, v in report["limit"].items()]))
    print()
    rows = [{"config": m["config"], "params": m["parameters"], **{k: v for k, v in m["gflop_per_audio_s"].items()},
             **{k: v for k, v in m.items() if k.startswith("rtf_at")}} for m in report["models"]]
    columns = [("config", "config"), ("parameters", "params"), ("encoder GFLOP/s audio", "encoder", ".3f"),
               ("predictor", "predictor", ".4f"), ("decoder", "decoder", ".3f"), ("total", "total", ".3f")]
    columns += [(f"RTF at the fp32 limit, {t} thread(s)", f"rtf_at_fp32_limit_{t}t", ".5f") for t in args.threads]
    print(harness.markdown_table(columns, rows))
    harness.write_report(args.out, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
