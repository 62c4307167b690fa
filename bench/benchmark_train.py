#!/usr/bin/env python3
"""Training-step throughput: funasr_lite's Paraformer vs FunASR's Paraformer class, side by side.

What is timed: the MODEL STEP only -- forward (loss), backward, grad-norm clipping
(train_conf.grad_clip) and an Adam step (optim_conf.lr) -- for both implementations built from the
SAME config, starting from the SAME weights (ours are built with --seed and copied into FunASR's
model with strict=True) and fed the SAME batches (saved once, loaded by both). Data loading, the
LR scheduler, checkpointing, logging and DDP are not timed, on either side. FunASR's whole trainer
(funasr.bin.train_ds: jsonl lists, on-the-fly features, its own loop) mixes data pipeline, trainer
and model; bench/benchmark_trainer_full.py compares the two whole trainers on one epoch of the same
config and data.

Each implementation runs in its own harness worker process per repeat (order alternates between
repeats; medians reported), so peak RSS (VmHWM, whole process) is per implementation; "step_hwm_mb" is the
peak of the warm-up + timed steps alone (the peak is reset via /proc/self/clear_refs before them).
Throughput counts unpadded model-input frames (after LFR); x real time = frames * LFR frame
duration (lfr_n * frame_shift, 60 ms) / compute s. Numerics are not compared here (see
tests/models/test_sanm_parity.py): dropout/SpecAug draw different random numbers in the two
implementations and FunASR does not zero padded frames before the predictor.

    # random features, the demo config (smoke: add --steps 1 --warmup 1 --repeats 1)
    python bench/benchmark_train.py --config egs/aishell1/conf/demo.yaml --batch_frames 6000 \
        --warmup 3 --steps 10 --repeats 3 --threads 2 --out bench_out/train_demo.json
    # real LFR+CMVN features and tokens of a data dir
    python bench/benchmark_train.py --data_dir egs/aishell1/data/train --steps 10 --repeats 3 \
        --out bench_out/train_demo_data.json
    # on a GPU, bf16 autocast (bench/gpu_check.py runs this and the fp32 form on the device)
    python bench/benchmark_train.py --device cuda --precision bf16 --batch_frames 8000 \
        --out bench_out/train_demo_cuda_bf16.json

``--device`` (cpu | cuda | cuda:N) puts both models, their optimizers and the batches on that
device (the batches are copied there before the untimed warm-up); on CUDA the timed region starts
and ends with ``torch.cuda.synchronize()`` and ``cuda_peak_mb`` is the peak of
``torch.cuda.max_memory_allocated`` during the steps. ``--precision`` bf16 | fp16 runs the forward
(loss) under ``torch.autocast`` for both implementations; fp16 adds a GradScaler (scale, unscale
before clipping, step, update), as our trainer does, and is a CUDA path only. ``--impls ours``
times our model alone (where FunASR is not installed, e.g. on a bare GPU machine).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import tempfile
import time

import numpy as np
import torch

import harness
from paraformer_pair import LARGE_VOCAB, build_funasr_paraformer, lfr_frame_s, model_config

from funasr_lite.models import build_model  # noqa: E402  (after harness: the repo on sys.path)

IMPLEMENTATIONS = ("ours", "funasr")


# ---------------------------------------------------------------- batches
def random_batches(count, batch_frames, dim, vocab_size, min_frames, max_frames, seed):
    """Bucket-like batches: each draws a longest length, fills batch_frames with similar lengths."""
    rng = np.random.default_rng(seed)
    batches = []
    for _ in range(count):
        longest = int(rng.integers(min_frames, max_frames + 1))
        size = max(1, batch_frames // longest)
        lengths = np.sort(rng.integers(int(0.8 * longest), longest + 1, size))[::-1].copy()
        lengths[0] = longest
        speech = torch.from_numpy(rng.standard_normal((size, longest, dim)).astype(np.float32))
        for i, length in enumerate(lengths):
            speech[i, length:] = 0.0
        text_lengths = np.maximum(1, np.round(lengths / 3.3)).astype(np.int64)  # ~1 char per 200 ms
        text = torch.full((size, int(text_lengths.max())), -1, dtype=torch.long)
        for i, n in enumerate(text_lengths):
            text[i, :n] = torch.from_numpy(rng.integers(3, vocab_size - 1, n))
        batches.append({"speech": speech, "speech_lengths": torch.from_numpy(lengths.astype(np.int64)),
                        "text": text, "text_lengths": torch.from_numpy(text_lengths)})
    return batches


def data_dir_batches(count, batch_frames, config, data_dir, token_list, cmvn_file, seed):
    """Batches of real features: shuffled utterances, length-sorted buckets of 512, cut by batch_frames."""
    from funasr_lite.data.batch_sampler import split_into_batches
    from funasr_lite.data.collate import collate_batch
    from funasr_lite.data.dataset import AsrDataset
    from funasr_lite.data.tokenizer import CharTokenizer

    conf = config.get("frontend_conf") or {}
    max_frames = int((config.get("dataset_conf") or {}).get("max_frames", 1_000_000))
    dataset = AsrDataset(data_dir, CharTokenizer.from_file(token_list), cmvn_file, lfr_m=int(conf.get("lfr_m", 1)),
                         lfr_n=int(conf.get("lfr_n", 1)), max_frames=max_frames)
    order = np.random.default_rng(seed).permutation(len(dataset))
    batches = []
    for start in range(0, len(order), 512):
        bucket = sorted(order[start:start + 512], key=lambda i: -dataset.lengths[i])
        for batch in split_into_batches(bucket, dataset.lengths, batch_frames):
            collated = collate_batch([dataset[i] for i in batch])
            collated.pop("utt_ids")
            batches.append(collated)
            if len(batches) == count:
                return batches
    raise SystemExit(f"{data_dir}: only {len(batches)} batches of {batch_frames} frames; need {count}")


# ---------------------------------------------------------------- worker: one implementation, one repeat
def measure_steps(impl: str, work: str, warmup: int, seed: int, frame_s: float, device: str = "cpu",
                  precision: str = "fp32") -> dict:
    """(harness worker) Build ``impl``'s model from work/config.json with work/init.pt's weights on
    ``device`` and time the steps on work/batches.pt after ``warmup`` untimed ones, the forward under
    ``precision``'s autocast (fp16: with a GradScaler)."""
    torch.manual_seed(seed)
    with open(os.path.join(work, "config.json")) as handle:
        config = json.load(handle)
    model = build_model(copy.deepcopy(config)) if impl == "ours" else build_funasr_paraformer(config)
    model.load_state_dict(torch.load(os.path.join(work, "init.pt"), weights_only=True, mmap=True), strict=True)
    model.to(device).train()
    batches = [{key: value.to(device) if isinstance(value, torch.Tensor) else value for key, value in batch.items()}
               for batch in torch.load(os.path.join(work, "batches.pt"), weights_only=True)]
    optimizer = torch.optim.Adam(model.parameters(), lr=float((config.get("optim_conf") or {}).get("lr", 1e-3)))
    grad_clip = float((config.get("train_conf") or {}).get("grad_clip", 5.0))
    parameters = [p for p in model.parameters() if p.requires_grad]
    scaler = torch.amp.GradScaler(torch.device(device).type) if precision == "fp16" else None
    cuda = torch.device(device).type == "cuda"

    def step(batch):
        with harness.autocast(device, precision):
            loss = model(batch["speech"], batch["speech_lengths"], batch["text"], batch["text_lengths"])[0]
        if scaler is None:
            loss.backward()
            torch.nn.utils.clip_grad_norm_(parameters, grad_clip)
            optimizer.step()
        else:
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(parameters, grad_clip)
            scaler.step(optimizer)
            scaler.update()
        optimizer.zero_grad(set_to_none=True)
        return loss.detach()

    timed = batches[warmup:]
    with harness.PeakRss() as steps_peak:  # the warm-up + timed steps alone (setup excluded)
        for batch in batches[:warmup]:
            float(step(batch))
        if cuda:
            torch.cuda.reset_peak_memory_stats(device)
        harness.synchronize(device)
        start = time.perf_counter()
        losses = [step(batch) for batch in timed]  # no .item() per step: no extra sync in the timed loop
        harness.synchronize(device)
        seconds = time.perf_counter() - start
    frames = int(sum(int(b["speech_lengths"].sum()) for b in timed))
    return {"impl": impl, "seconds": seconds, "frames": frames, "frames_per_s": frames / seconds,
            "x_real_time": frames * frame_s / seconds, "steps": len(timed), "last_loss": float(losses[-1]),
            "step_hwm_mb": steps_peak.mb, "parameters": sum(p.numel() for p in model.parameters()),
            "cuda_peak_mb": torch.cuda.max_memory_allocated(device) / 2 ** 20 if cuda else None,
            "scaler_scale": float(scaler.get_scale()) if scaler is not None else None}


# ---------------------------------------------------------------- driver
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default=os.path.join(harness.REPO, "egs/aishell1/conf/demo.yaml"))
    parser.add_argument("--data_dir", help="real features (feats.scp, text, utt2num_frames); default: random")
    parser.add_argument("--token_list", help="with --data_dir; default <data_dir>/../lang_char/tokens.txt")
    parser.add_argument("--cmvn_file", help="with --data_dir; default <data_dir>/am.mvn")
    parser.add_argument("--vocab_size", type=int, default=LARGE_VOCAB, help="random mode only")
    parser.add_argument("--batch_frames", type=int, default=6000, help="padded LFR frames per batch")
    parser.add_argument("--min_frames", type=int, default=40, help="random mode: shortest longest-utterance")
    parser.add_argument("--max_frames", type=int, default=150, help="random mode: LFR frames (150 = 9 s)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N (both implementations)")
    parser.add_argument("--precision", default="fp32", choices=harness.PRECISIONS,
                        help="autocast dtype of the forward; fp16 (CUDA only) adds a GradScaler")
    parser.add_argument("--impls", default=",".join(IMPLEMENTATIONS),
                        help="comma-separated: ours,funasr (default) or ours alone where FunASR is not installed")
    parser.add_argument("--out", help="JSON file to write")
    args = parser.parse_args(argv)
    harness.check_device(args.device, args.precision)
    impls = tuple(i for i in args.impls.split(",") if i)
    if not impls or set(impls) - set(IMPLEMENTATIONS):
        raise SystemExit(f"--impls {args.impls!r}: a comma-separated subset of {','.join(IMPLEMENTATIONS)}")

    vocab_size = args.vocab_size
    if args.data_dir:
        from funasr_lite.data.tokenizer import read_token_list
        args.token_list = args.token_list or os.path.join(os.path.dirname(os.path.abspath(args.data_dir)),
                                                          "lang_char", "tokens.txt")
        args.cmvn_file = args.cmvn_file or os.path.join(args.data_dir, "am.mvn")
        if not os.path.isfile(args.cmvn_file):
            raise SystemExit(f"no CMVN file {args.cmvn_file}: give --cmvn_file (the training set's am.mvn)")
        vocab_size = len(read_token_list(args.token_list))
    config = model_config(args.config, vocab_size)
    frame_s = lfr_frame_s(config)
    count = args.warmup + args.steps
    with tempfile.TemporaryDirectory(prefix="bench_train_") as work:
        if args.data_dir:
            batches = data_dir_batches(count, args.batch_frames, config, args.data_dir, args.token_list,
                                       args.cmvn_file, args.seed)
        else:
            batches = random_batches(count, args.batch_frames, config["input_size"], vocab_size, args.min_frames,
                                     args.max_frames, args.seed)
        torch.manual_seed(args.seed)
        torch.save(build_model(copy.deepcopy(config)).state_dict(), os.path.join(work, "init.pt"))
        torch.save(batches, os.path.join(work, "batches.pt"))
        with open(os.path.join(work, "config.json"), "w") as handle:
            json.dump(config, handle)

        failed = {}

        def measure(impl, repeat):
            if impl in failed:  # it failed once: the setting does not run, no point in retrying
                return failed[impl]
            try:
                result = harness.run_in_worker(measure_steps, args.threads, impl=impl, work=work, warmup=args.warmup,
                                               seed=args.seed, frame_s=frame_s, device=args.device,
                                               precision=args.precision)
            except harness.WorkerError as error:
                failed[impl] = dict(harness.worker_failure(error), impl=impl)
                print(f"repeat {repeat + 1}/{args.repeats} {impl}: FAILED: {failed[impl]['error']}", file=sys.stderr)
                return failed[impl]
            print(f"repeat {repeat + 1}/{args.repeats} {impl}: {result['frames_per_s']:.0f} frames/s", file=sys.stderr)
            return result

        runs = harness.side_by_side(impls, args.repeats, measure)

    timed = batches[args.warmup:]
    summary = {}
    for impl, impl_runs in runs.items():
        if impl in failed:  # an implementation that cannot run this setting: its error, no numbers
            summary[impl] = {"impl": impl, "error": failed[impl]["error"], "error_tail": failed[impl]["error_tail"]}
            continue
        summary[impl] = {
            "impl": impl, **harness.medians(impl_runs, ("frames_per_s", "x_real_time")),
            "peak_rss_mb": max(r["peak_rss_mb"] for r in impl_runs),
            "step_hwm_mb": max((r["step_hwm_mb"] or 0.0) for r in impl_runs) or None,
            "parameters": impl_runs[0]["parameters"], "runs": impl_runs,
            "cuda_peak_mb": max((r.get("cuda_peak_mb") or 0.0) for r in impl_runs) or None,
        }
    report = {
        "benchmark": "train_step", "timed": "forward + backward + grad clip + Adam step (no data loading)",
        "environment": harness.environment(args.threads, args.device, args.precision),
        "device": args.device, "precision": args.precision, "impls": list(impls),
        "config": os.path.abspath(args.config), "features": args.data_dir or "random",
        "vocab_size": vocab_size, "batch_frames": args.batch_frames, "warmup": args.warmup, "steps": args.steps,
        "repeats": args.repeats, "seed": args.seed, "lfr_frame_s": frame_s,
        "timed_batches": {"count": len(timed), "utterances": sum(len(b["speech_lengths"]) for b in timed),
                          "frames": int(sum(int(b["speech_lengths"].sum()) for b in timed)),
                          "padded_frames": int(sum(b["speech"].shape[0] * b["speech"].shape[1] for b in timed))},
        "results": summary,
        "throughput_ratio_ours_over_funasr": (harness.paired_ratios(runs["ours"], runs["funasr"], "frames_per_s")
                                              if {"ours", "funasr"} <= set(runs) - set(failed) else None),
    }
    where = report["environment"]["device_name"] if args.device != "cpu" else f"{args.threads} thread(s)"
    print(f"\ntraining step, {os.path.basename(args.config)}, {report['features']} features, "
          f"{args.steps} steps, median of {args.repeats} repeats, {args.device} ({where}), {args.precision}, "
          f"torch {torch.__version__}")
    columns = [("impl", "impl"), ("frames/s", "frames_per_s", ".0f"), ("x real time", "x_real_time", ".1f"),
               ("peak RSS MB", "peak_rss_mb", ".0f"), ("step HWM MB", "step_hwm_mb", ".0f")]
    if args.device != "cpu":
        columns.append(("CUDA peak MB", "cuda_peak_mb", ".0f"))
    print(harness.markdown_table(columns, summary.values()))
    for impl in failed:
        print(f"{impl} FAILED under --device {args.device} --precision {args.precision}: {failed[impl]['error']}")
    if report["throughput_ratio_ours_over_funasr"]:
        ratio = report["throughput_ratio_ours_over_funasr"]["median_per_repeat"]
        print(f"ours / funasr throughput (median of per-repeat ratios): {ratio:.3f}")
    elif len(impls) == 1:
        print(f"timed {impls[0]} alone (--impls): no ours / funasr ratio")
    if args.out:
        harness.write_report(args.out, report)
    if "ours" in failed or len(failed) == len(impls):
        raise SystemExit(f"{', '.join(failed)} failed: {'; '.join(f['error'] for f in failed.values())}")


if __name__ == "__main__":
    main()
