#!/usr/bin/env python3
"""Greedy decoding speed: funasr_lite's Paraformer vs FunASR's Paraformer, same weights, same input.

Sources (each timed for both implementations):
  model_dir  --model_dir: a model dir or training exp dir (e.g. the demo model), decoding the first
             --max_utts utterances of --data_dir's feats.scp (LFR + CMVN with the dir's am.mvn).
  large      the paraformer-large config (--large_config, vocab 8404) with random weights (seed
             --seed; CIF output bias logit(0.3), so ~1 token per 3 frames as a trained model); on the
             model dir's features when it takes 560-dim input, else random N(0, 1) features with the
             data dir's lengths (utt2num_frames), else 3-6 s random lengths.
For each source x --threads x batch mode (batch 1; batched: sorted longest first and cut at
--batch_bins padded frames, by default --batch_utts x the median length) the two implementations
run in their own harness worker process (so peak RSS is per configuration): ours = Paraformer.decode_greedy,
FunASR = Paraformer.inference(data_type="fbank") (encode + CIF predictor + NAR decoder + argmax),
on the identical (B, T', D) padded model input. Not timed: reading features, LFR, CMVN, text.

RTF = compute s / audio s (audio s = raw frames x frame shift, or LFR frames x 60 ms for random
input); median over --repeats passes after one warm-up batch. "match" = fraction of utterances whose
argmax token ids are identical in both. Batched rows may match less than batch-1 rows: FunASR's CIF
predictor reads padded encoder frames unmasked (ours zeroes them), so its batched output depends on
the padding; "match_own_batch1" compares each implementation's batched tokens with its own batch-1
tokens. peak_rss_mb: whole process incl. loading (VmHWM); decode_hwm_mb: the peak during the
decoding passes alone (model + libraries + activations; the peak is reset via clear_refs first).

    python bench/benchmark_decode.py --model_dir egs/aishell1/exp/demo --data_dir egs/aishell1/data/test \
        --max_utts 32 --threads 1,2 --repeats 3 --out bench_out/decode.json
    # quick look: the demo model only, 4 utterances, one pass, one thread
    python bench/benchmark_decode.py --model_dir egs/aishell1/exp/demo --no_large --max_utts 4 --repeats 1 --threads 1
    # paraformer-large alone (random weights, random features with the test set's lengths)
    python bench/benchmark_decode.py --max_utts 32 --threads 1,2 --out bench_out/decode_large.json

``--ours_int8`` adds a third implementation beside the two: ours as ``infer --quantized`` decodes
(``funasr_lite.inference.quantize.quantize_int8``: the encoder's and decoder's Linears with int8
weights per channel, activations quantized per call; the CIF predictor and output layers float),
with its speed-up over FunASR and its token agreement with FunASR's fp32. It is a CPU path
(quantized kernels of fbgemm/onednn) and is refused with ``--device cuda``.

``--device`` (cpu | cuda | cuda:N) puts both models and the padded inputs on that device (FunASR's
``inference(..., device=...)``; the inputs are copied there before the warm-up, not timed); on
CUDA each timed pass ends with ``torch.cuda.synchronize()`` and ``decode_cuda_peak_mb`` is the peak
of ``torch.cuda.max_memory_allocated`` over the passes. ``--precision`` bf16 | fp16 decodes both
under ``torch.autocast`` (weights stay fp32; fp16 is CUDA only). ``--modes batched`` skips batch 1
(then no ``match_own_batch1``); ``--impls ours`` times our model alone. An implementation that
fails a setting (FunASR's CIF under CPU bf16 autocast, say) gets its error in the row, not numbers.

    # paraformer-large batched on a GPU (what bench/gpu_check.py runs, random weights and features)
    python bench/benchmark_decode.py --data_dir '' --max_utts 64 --batch_utts 16 --modes batched \
        --device cuda --precision bf16 --threads 4 --out bench_out/decode_large_cuda_bf16.json
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import tempfile

import numpy as np
import torch

import harness
from paraformer_pair import (LARGE_VOCAB, build_funasr_paraformer, fire_about_every_third_frame, lfr_frame_s,
                             model_config)

from funasr_lite.data.batch_sampler import split_into_batches  # noqa: E402  (after harness: the repo on sys.path)
from funasr_lite.inference.quantize import quantize_int8  # noqa: E402
from funasr_lite.models import build_model  # noqa: E402

IMPLEMENTATIONS = ("ours", "funasr")
MODES = ("batch1", "batched")
TRAINING_ONLY = ("specaug", "specaug_conf")


# ---------------------------------------------------------------- inputs (driver)
def save_case(work, name, config, state, feats, audio_s):
    case = os.path.join(work, name)
    os.makedirs(case)
    config = {k: v for k, v in config.items() if k not in TRAINING_ONLY}
    with open(os.path.join(case, "config.json"), "w") as handle:
        json.dump(config, handle)
    torch.save(state, os.path.join(case, "init.pt"))
    torch.save({"feats": feats, "audio_s": audio_s}, os.path.join(case, "feats.pt"))
    return case


def model_dir_case(work, args):
    """The model dir's model, config and its LFR + CMVN features of the data dir's first utterances."""
    from funasr_lite.inference.speech2text import Speech2Text, items_from_data_dir
    from funasr_lite.inference.model_dir import load_model_dir

    loaded = load_model_dir(args.model_dir, checkpoint=args.checkpoint)
    speech2text = Speech2Text(loaded)
    prepared = [speech2text.prepare(i, item) for i, item in enumerate(items_from_data_dir(args.data_dir)[: args.max_utts])]
    prepared = [p for p in prepared if p.model_input is not None]
    config = dict(loaded.config, input_size=loaded.input_size, vocab_size=len(loaded.token_list))
    feats = [p.model_input for p in prepared]
    case = save_case(work, "model_dir", config, loaded.model.state_dict(), feats, [p.audio_s for p in prepared])
    return case, feats, [p.audio_s for p in prepared]


def random_lengths(args, frame_s, lfr_n):
    """LFR lengths of the data dir's first utterances (utt2num_frames), else 3-6 s at random."""
    from funasr_lite.data.datadir import read_kv
    from funasr_lite.frontend.lfr import lfr_length

    path = os.path.join(args.data_dir or "", "utt2num_frames")
    if args.data_dir and os.path.isfile(path):
        return [int(lfr_length(int(n), lfr_n)) for n in list(read_kv(path).values())[: args.max_utts]]
    rng = np.random.default_rng(args.seed)
    return [int(s / frame_s) for s in rng.uniform(3.0, 6.0, args.max_utts)]


def large_case(work, args, dir_feats, dir_audio_s):
    config = model_config(args.large_config, LARGE_VOCAB)
    frame_s, lfr_n = lfr_frame_s(config), int(config["frontend_conf"].get("lfr_n", 1))
    torch.manual_seed(args.seed)
    model = build_model({k: v for k, v in config.items() if k not in TRAINING_ONLY})
    fire_about_every_third_frame(model)
    if dir_feats and dir_feats[0].shape[1] == config["input_size"]:
        feats, audio_s, kind = dir_feats, dir_audio_s, "model_dir features"
    else:
        generator = torch.Generator().manual_seed(args.seed)
        feats = [torch.randn(n, config["input_size"], generator=generator) for n in random_lengths(args, frame_s, lfr_n)]
        audio_s, kind = [f.shape[0] * frame_s for f in feats], "random features"
    case = save_case(work, "large", config, model.state_dict(), feats, audio_s)
    del model
    gc.collect()
    return case, kind


# ---------------------------------------------------------------- worker: one implementation, one configuration
def decode_batch(impl, model, feats, lengths, device="cpu"):
    """(B, T', D), (B,) -> B lists of token ids (<blank>, <s>, </s> dropped)."""
    if impl in ("ours", "ours_int8"):
        return [r["token_ids"] for r in model.decode_greedy(feats, lengths)]
    keys = [f"utt{i}" for i in range(feats.size(0))]
    results = model.inference(feats, lengths[:, None], key=keys, tokenizer=None, device=device, data_type="fbank")
    if not results:  # FunASR returns [] when no utterance has a token
        return [[] for _ in keys]
    return [list(r["token_int"]) for r in results[0]]


def decode_case(impl: str, case: str, mode: str, batch_bins: int, repeats: int, device: str = "cpu",
                precision: str = "fp32") -> dict:
    """(harness worker) ``impl``'s model of the case dir decodes its features ``repeats`` times on
    ``device`` under ``precision``'s autocast after one warm-up batch: batch 1, or batched (longest
    first, cut at ``batch_bins``)."""
    with open(os.path.join(case, "config.json")) as handle:
        config = json.load(handle)
    model = build_model(config) if impl != "funasr" else build_funasr_paraformer(config, with_specaug=False)
    model.load_state_dict(torch.load(os.path.join(case, "init.pt"), weights_only=True, mmap=True), strict=True)
    model.eval()
    if impl == "ours_int8":  # what infer --quantized / quantized=True decodes with
        model = quantize_int8(model, device)
    model.to(device)
    cuda = torch.device(device).type == "cuda"
    gc.collect()
    data = torch.load(os.path.join(case, "feats.pt"), weights_only=True)
    feats, audio_s = data["feats"], sum(data["audio_s"])
    lengths = np.array([f.shape[0] for f in feats])
    if mode == "batch1":
        batches = [[i] for i in range(len(feats))]
    else:
        batches = split_into_batches(sorted(range(len(feats)), key=lambda i: -lengths[i]), lengths, batch_bins)
    inputs = [(torch.nn.utils.rnn.pad_sequence([feats[i] for i in b], batch_first=True).to(device),
               torch.tensor(lengths[b], dtype=torch.long).to(device)) for b in batches]
    tokens = [None] * len(feats)

    def one_pass():
        output = [decode_batch(impl, model, x, n, device) for x, n in inputs]
        harness.synchronize(device)
        return output

    with torch.no_grad(), harness.autocast(device, precision), harness.PeakRss() as decode_peak:
        decode_batch(impl, model, *inputs[0], device)  # warm-up
        harness.synchronize(device)
        if cuda:
            torch.cuda.reset_peak_memory_stats(device)
        seconds, outputs = harness.time_repeats(one_pass, repeats)
    for batch, output in zip(batches, outputs):
        for i, ids in zip(batch, output):
            tokens[i] = [int(t) for t in ids]
    return {"impl": impl, "rtf": statistics.median(seconds) / audio_s, "seconds": seconds,
            "audio_s": audio_s, "utterances": len(feats), "batches": len(batches),
            "mean_tokens": sum(map(len, tokens)) / len(tokens), "tokens": tokens, "decode_hwm_mb": decode_peak.mb,
            "decode_cuda_peak_mb": torch.cuda.max_memory_allocated(device) / 2 ** 20 if cuda else None}


# ---------------------------------------------------------------- driver
def pair_row(results: dict, tokens: dict, a: str, b: str) -> dict:
    """Token agreement and speed-up of ``a`` over ``b`` where both ran; None where either did not."""
    if a not in tokens or b not in tokens:
        return {"match": None, "speed_up": None}
    return {"match": sum(x == y for x, y in zip(tokens[a], tokens[b])) / len(tokens[a]),
            "speed_up": results[b]["rtf"] / results[a]["rtf"]}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model_dir", help="model dir or exp dir to time (source model_dir)")
    parser.add_argument("--checkpoint", help="exp dir: which model.*.pt (default: as load_model_dir)")
    parser.add_argument("--data_dir", default=os.path.join(harness.REPO, "egs/aishell1/data/test"),
                        help="its utt2num_frames gives the random features' lengths ('': 3-6 s at random)")
    parser.add_argument("--max_utts", type=int, default=32)
    parser.add_argument("--large_config", default=os.path.join(harness.REPO, "egs/aishell1/conf/paraformer_sanm.yaml"))
    parser.add_argument("--no_large", action="store_true", help="skip the paraformer-large source")
    parser.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    parser.add_argument("--batch_utts", type=int, default=16, help="batched mode: ~utterances per batch")
    parser.add_argument("--batch_bins", type=int, help="batched mode: padded frames per batch (overrides)")
    parser.add_argument("--modes", default=",".join(MODES), help="comma-separated: batch1,batched")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--ours_int8", action="store_true", help="also time ours with int8 dynamic Linear layers")
    parser.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N (both implementations)")
    parser.add_argument("--precision", default="fp32", choices=harness.PRECISIONS,
                        help="autocast dtype of the decoding (fp16: CUDA only)")
    parser.add_argument("--impls", default=",".join(IMPLEMENTATIONS),
                        help="comma-separated: ours,funasr (default) or ours alone where FunASR is not installed")
    parser.add_argument("--out", help="JSON file to write")
    args = parser.parse_args(argv)
    if args.ours_int8 and args.device != "cpu":
        raise SystemExit(f"--ours_int8 is a CPU path (dynamic int8 quantized Linear kernels); "
                         f"drop it with --device {args.device}")
    harness.check_device(args.device, args.precision)
    threads = [int(t) for t in args.threads.split(",")]
    modes = [m for m in args.modes.split(",") if m]
    if not modes or set(modes) - set(MODES):
        raise SystemExit(f"--modes {args.modes!r}: a comma-separated subset of {','.join(MODES)}")
    impls = tuple(i for i in args.impls.split(",") if i)
    if not impls or set(impls) - set(IMPLEMENTATIONS):
        raise SystemExit(f"--impls {args.impls!r}: a comma-separated subset of {','.join(IMPLEMENTATIONS)}")
    implementations = impls + (("ours_int8",) if args.ours_int8 else ())
    if not args.model_dir and args.no_large:
        raise SystemExit("nothing to time: give --model_dir and/or drop --no_large")

    rows, batch1_tokens, failures = [], {}, []
    with tempfile.TemporaryDirectory(prefix="bench_decode_") as work:
        cases, dir_feats, dir_audio_s = {}, None, None
        if args.model_dir:
            case, dir_feats, dir_audio_s = model_dir_case(work, args)
            cases["model_dir"] = (case, f"{args.model_dir} on {args.data_dir}")
        if not args.no_large:
            case, kind = large_case(work, args, dir_feats, dir_audio_s)
            cases["large"] = (case, f"{os.path.basename(args.large_config)}, random weights, {kind}")
        for source, (case, description) in cases.items():
            lengths = [f.shape[0] for f in torch.load(os.path.join(case, "feats.pt"), weights_only=True)["feats"]]
            batch_bins = args.batch_bins or args.batch_utts * int(statistics.median(lengths))
            for n_threads in threads:
                for mode in modes:
                    results = {}
                    for impl in harness.rotated(implementations, len(rows)):  # who goes first alternates
                        try:
                            results[impl] = harness.run_in_worker(
                                decode_case, n_threads, impl=impl, case=case, mode=mode, batch_bins=batch_bins,
                                repeats=args.repeats, device=args.device, precision=args.precision)
                        except harness.WorkerError as error:
                            results[impl] = dict(harness.worker_failure(error), impl=impl)
                            failures.append(f"{source} {mode} {impl}: {results[impl]['error']}")
                            print(f"{source} {mode} {n_threads} thread(s) {impl}: FAILED: {results[impl]['error']}",
                                  file=sys.stderr)
                    tokens = {impl: r.pop("tokens") for impl, r in results.items() if "tokens" in r}
                    # Padding invariance: batched tokens vs the same implementation's batch-1 tokens.
                    for impl in ("ours", "funasr"):
                        if impl not in tokens:
                            continue
                        if mode == "batch1":
                            batch1_tokens[source, n_threads, impl] = tokens[impl]
                        elif (source, n_threads, impl) in batch1_tokens:
                            same = zip(tokens[impl], batch1_tokens[source, n_threads, impl])
                            results[impl]["match_own_batch1"] = sum(a == b for a, b in same) / len(tokens[impl])
                    versus = pair_row(results, tokens, "ours", "funasr")
                    rows.append({"source": source, "description": description, "threads": n_threads, "mode": mode,
                                 "batch_bins": batch_bins if mode == "batched" else None,
                                 "device": args.device, "precision": args.precision, **results,
                                 "token_match": versus["match"],
                                 "throughput_ratio_ours_over_funasr": versus["speed_up"]})
                    if "ours_int8" in results:
                        versus_int8 = pair_row(results, tokens, "ours_int8", "funasr")
                        rows[-1].update({"token_match_int8": versus_int8["match"],
                                         "throughput_ratio_ours_int8_over_funasr": versus_int8["speed_up"]})
                    print(f"{source} {mode} {n_threads} thread(s): RTF "
                          + " ".join(f"{impl} {results[impl]['rtf']:.4f}" for impl in implementations
                                     if "rtf" in results[impl]), file=sys.stderr)

    environment = harness.environment(threads, args.device, args.precision)
    where = environment["device_name"] if args.device != "cpu" else "threads as in the table"
    print(f"\ngreedy decoding, median of {args.repeats} pass(es), {args.device} ({where}), {args.precision}, "
          f"torch {torch.__version__}")
    table = []
    for row in rows:
        for impl in implementations:
            extra = {}
            if impl == "ours":
                extra = {"speed_up": row["throughput_ratio_ours_over_funasr"], "match": row["token_match"]}
            elif impl == "ours_int8":
                extra = {"speed_up": row["throughput_ratio_ours_int8_over_funasr"], "match": row["token_match_int8"]}
            if "error" in row[impl]:
                extra["note"] = "FAILED: " + row[impl]["error"][:120]
            table.append(dict(row[impl], source=row["source"], mode=row["mode"], threads=row["threads"], impl=impl,
                              **extra))
    columns = [("source", "source"), ("batch", "mode"), ("thr", "threads"), ("impl", "impl"), ("RTF", "rtf", ".4f"),
               ("peak RSS MB", "peak_rss_mb", ".0f"), ("decode HWM MB", "decode_hwm_mb", ".0f")]
    if args.device != "cpu":
        columns.append(("CUDA peak MB", "decode_cuda_peak_mb", ".0f"))
    columns += [("speed-up", "speed_up", ".2f"), ("match", "match", ".2f")]
    if failures:
        columns.append(("note", "note"))
    print(harness.markdown_table(columns, table))
    print("speed-up = funasr RTF / ours RTF (> 1: ours faster); match = identical argmax tokens")
    for source, (_, description) in cases.items():
        print(f"  {source}: {description}")
    if args.out:
        report = {"benchmark": "decode_greedy", "environment": environment, "device": args.device,
                  "precision": args.precision, "impls": list(implementations), "modes": modes,
                  "max_utts": args.max_utts, "repeats": args.repeats, "seed": args.seed, "rows": rows,
                  "failures": failures}
        harness.write_report(args.out, report)
    if any("error" in row.get(impl, {}) for row in rows for impl in ("ours", "ours_int8")) \
            or all("error" in row[impl] for row in rows for impl in implementations):
        raise SystemExit("failed: " + "; ".join(failures))


if __name__ == "__main__":
    main()
