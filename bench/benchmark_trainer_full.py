#!/usr/bin/env python3
"""Whole-trainer throughput: `python -m funasr_lite.bin.train` vs FunASR's `funasr.bin.train_ds`.

Both trainers train ONE epoch of the same model config on the same utterances (the first
--num_utts of --data_dir that our dataset keeps), each in its own fresh process, --repeats times
with the order of the two alternating between repeats; medians are reported.

What runs on each side
  ours:   funasr_lite.bin.train.main() with the arguments of egs/aishell1/run.sh train_paraformer
          (--config --train_data --token_list --cmvn_file --output_dir) and ++train_conf.max_epoch=1.
          It reads PRECOMPUTED fbank (feats.scp, stage 1 of the recipe) in its DataLoader workers
          and applies LFR + CMVN there.
  funasr: funasr.bin.train_ds.main_hydra() (what `python -m funasr.bin.train_ds --config-path DIR
          --config-name funasr.yaml ++key=value ...` runs; a single process, so no torchrun and no
          DDP) with FunASR's own AudioDataset + IndexDSJsonl + BatchSampler reading jsonl lists,
          its WavFrontend computing fbank + LFR + CMVN ON THE FLY from the wav files in its
          DataLoader workers, and its own Trainer (trainer_ds.Trainer).
  That feature difference is the real design difference between the two pipelines and is part
  of what is measured, not hidden: ours pays for fbank once, before training (recipe stage 1);
  FunASR pays for it in every epoch (in the data workers, so it costs throughput only when the
  workers cannot keep up with the model).

How each trainer is started (the same launcher for both: trainer_pair.train_probed in a harness
worker process, bench/harness.py): the launcher records a few timestamps and wraps two methods
of the trainers without changing what they do -- the epoch method (our Engine.train_epoch,
FunASR's Trainer.train_epoch) to time it, and the per-batch loss (our AsrTask.compute_loss, FunASR's
Trainer.forward_step) to count utterances, unpadded and padded model-input (LFR) frames of the
training batches. One FunASR patch is needed to run at all on a
CPU-only machine: train_ds sets ``trainer.device = int(LOCAL_RANK)`` after building the Trainer,
and a bare integer device means cuda:0 to torch, so the launcher maps an integer device to "cpu"
when CUDA is unavailable (a property on trainer_ds.Trainer). Audio needs no patch: FunASR's
load_audio_text_image_video tries torchaudio.load (which needs the absent torchcodec), catches
the error and reads the file with soundfile (~0.1 ms per utterance extra, measured).

What is timed
  epoch_s  the call of Trainer.train_epoch: DataLoader worker start-up, data loading (+ feature
           extraction on FunASR's side), forward, backward, grad clipping, Adam step, LR
           scheduler, the per-log_interval log lines (and our tensorboard scalars; FunASR's
           tensorboard writer needs tensorboardX, which is not installed, so it writes none).
           frames/s and x real time are computed from it.
  total_s  process start (spawn by this driver) to process exit: interpreter start-up, imports,
           config, model, datasets, the epoch, validation, checkpoint saving, checkpoint
           averaging, exit. startup_s = spawn -> epoch start; after_s = epoch end -> exit.
Overheads outside the epoch are made as similar as the two trainers allow: ours gets no
validation set (it then validates nothing) and ++train_conf.oom_check=false (no largest-batch
probe before training, FunASR has none); FunASR insists on a validation list, so it gets a
one-utterance one; validate_interval / save_checkpoint_interval are set beyond the epoch's steps
so FunASR neither validates nor saves inside the epoch. Both save and average checkpoints at the
end as configured.

Config mapping (our demo.yaml -> FunASR's schema; written to <work>/funasr.yaml)
  model/encoder/decoder/predictor/specaug: our registry aliases -> FunASR class names
    (Paraformer, SANMEncoder, ParaformerSANMDecoder, CifPredictorV2, SpecAugLFR); *_conf as is.
  frontend: WavFrontend with our frontend_conf + cmvn_file=<am.mvn> + dither=0.0 (our features
    were extracted with dither 0; FunASR's default is 1.0).
  tokenizer: CharTokenizer, token_list=<tokens.txt>, unk_symbol <unk>; the jsonl targets are our
    text with whitespace removed (what our char tokenizer does).
  dataset_conf: batch_sampler BatchSampler with batch_type "token" and sort_size>0, i.e. FunASR's
    buffered dynamic batcher: shuffle, cut into buffers of sort_size utterances, sort each by
    source_len, fill a batch while max(source_len) * utterances <= batch_size. We write the jsonl
    ourselves with source_len = the utterance's LFR frame count, ceil(utt2num_frames / lfr_n)
    (FunASR's own scp2jsonl would count 10 ms frames), so batch_size = our batch_bins has exactly
    our meaning (padded model-input frames per batch), sort_size = our bucket_size,
    max_token_length = our max_frames (the jsonl has no target_len, so FunASR's index filter
    source_len + target_len <= max_token_length is our max_frames filter), num_workers = ours,
    pin_memory false (ours pins only on CUDA). Remaining differences: FunASR sorts each buffer
    shortest-first and keeps the batch order, ours sorts longest-first and shuffles the batches;
    FunASR caps a batch below batch_size_sample_max=200 utterances; the permutations differ. So
    the batches are not identical; their count and padded frames are reported for each side.
  optim/scheduler/train_conf: the same adam / warmuplr / grad_clip / accum_grad / log_interval /
    keep_nbest_models / avg_nbest_model; max_epoch 1 on both sides (FunASR counts from 0).
  seed: the config's seed on both sides; ncpu = --threads (FunASR's model builder otherwise
    calls torch.set_num_threads(4)).
Threads: OMP_NUM_THREADS / MKL_NUM_THREADS = --threads and torch.set_num_threads(--threads) in
both processes (DataLoader workers run one thread each, as torch sets them).

Memory: peak_rss_mb is the trainer process's own peak (VmHWM); worker_peak_rss_mb is the
largest peak among its child processes (DataLoader workers: VmHWM of live children at the end of
the epoch -- FunASR's workers are persistent -- and ru_maxrss of reaped ones). A forked worker's
RSS includes pages it shares with the parent, so it overlaps peak_rss_mb.

The data lists, the config mapping, the launcher and the probe live in bench/trainer_pair.py;
bench/learning_curve.py uses them (the probe also tallies validation and, with an epoch log,
records every epoch) for a multi-epoch run.

    # the full-size measurement (needs recipe stages -1..2 of egs/aishell1: wavs, feats, am.mvn, tokens)
    python bench/benchmark_trainer_full.py --data_dir egs/aishell1/data/train --num_utts 600 \\
        --repeats 3 --threads 2 --out bench_out/trainer_full_demo.json
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import tempfile
import time

import harness
import trainer_pair
from paraformer_pair import lfr_frame_s

IMPLEMENTATIONS = ("ours", "funasr")
TIMES = ("epoch_s", "total_s", "startup_s", "after_s", "frames_per_s", "x_real_time", "total_frames_per_s")


# ---------------------------------------------------------------- driver: data, configs, runs
def prepare_data(args, config: dict, work: str) -> dict:
    """The first --num_utts utterances of --data_dir that our dataset keeps: a data dir for ours,
    jsonl lists for FunASR (train, and a one-utterance valid list)."""
    from funasr_lite.data.datadir import write_kv

    files, keys = trainer_pair.read_data_files(args.data_dir)
    keys = keys[: args.num_utts]
    subset = os.path.join(work, "data", "train")
    os.makedirs(subset)
    for name, values in files.items():
        write_kv(os.path.join(subset, name), [(k, values[k]) for k in keys], sort=False)

    # Our dataset decides which utterances are usable (frame/token limits); FunASR gets exactly those.
    kept = set(trainer_pair.kept_utterances(subset, config, args.token_list, args.cmvn_file))
    if len(kept) < len(keys):
        keys = [k for k in keys if k in kept]
        for name, values in files.items():
            write_kv(os.path.join(subset, name), [(k, values[k]) for k in keys], sort=False)
    lfr_n = int((config.get("frontend_conf") or {}).get("lfr_n", 1))
    train_jsonl, valid_jsonl = os.path.join(work, "data", "train.jsonl"), os.path.join(work, "data", "valid.jsonl")
    trainer_pair.write_jsonl(train_jsonl, files, keys, lfr_n)
    trainer_pair.write_jsonl(valid_jsonl, files, keys[:1], lfr_n)
    raw_frames = sum(int(files["utt2num_frames"][k]) for k in keys)
    return {"dir": subset, "train_jsonl": train_jsonl, "valid_jsonl": valid_jsonl, "utterances": len(keys),
            "lfr_frames": int(sum(trainer_pair.lfr_frames(files, k, lfr_n) for k in keys)),
            "raw_frames": raw_frames, "audio_hours": raw_frames * 0.01 / 3600}


def run_one(impl: str, argv: list, args, run_dir: str) -> dict:
    """One trainer, one epoch, in a fresh process: the probe's counts plus the process's times."""
    spawn = time.time()
    result = trainer_pair.launch_trainer(impl, argv, args.threads, run_dir, args.timeout)
    exit_time = time.time()
    result["total_s"] = exit_time - spawn
    result["startup_s"] = result.pop("epoch_start_time") - spawn
    result["after_s"] = exit_time - result.pop("epoch_end_time")
    result["frames_per_s"] = result["frames"] / result["epoch_s"]
    result["x_real_time"] = result["frames"] * args.frame_s / result["epoch_s"]
    result["total_frames_per_s"] = result["frames"] / result["total_s"]
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default=os.path.join(harness.REPO, "egs/aishell1/conf/demo.yaml"))
    parser.add_argument("--data_dir", default=os.path.join(harness.REPO, "egs/aishell1/data/train"),
                        help="feats.scp, text, utt2num_frames and wav.scp (plain paths)")
    parser.add_argument("--token_list", help="default <data_dir>/../lang_char/tokens.txt")
    parser.add_argument("--cmvn_file", help="default <data_dir>/am.mvn")
    parser.add_argument("--num_utts", type=int, default=600, help="the first N utterances of --data_dir")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per trainer run")
    parser.add_argument("--work_dir", help="keep data lists, configs and every run's logs here (default: a temp dir)")
    parser.add_argument("--out", help="JSON file to write")
    args = parser.parse_args(argv)

    import torch
    import yaml
    from funasr_lite.train.config import resolve_training_config

    # Absolute paths: each trainer runs with its own run directory as the working directory.
    for name in ("config", "data_dir", "token_list", "cmvn_file", "work_dir", "out"):
        if getattr(args, name):
            setattr(args, name, os.path.abspath(getattr(args, name)))
    args.token_list = args.token_list or os.path.join(os.path.dirname(os.path.abspath(args.data_dir)),
                                                      "lang_char", "tokens.txt")
    args.cmvn_file = args.cmvn_file or os.path.join(args.data_dir, "am.mvn")
    for path in (args.config, args.token_list, args.cmvn_file):
        if not os.path.isfile(path):
            raise SystemExit(f"missing {path}")
    # Validated, with our trainer's defaults filled in (what `python -m funasr_lite.bin.train` would use).
    config = resolve_training_config(args.config, token_list=args.token_list, cmvn_file=args.cmvn_file)
    args.seed_value = int(config.get("seed", 0))
    args.frame_s = lfr_frame_s(config)

    temp = None
    if args.work_dir:
        os.makedirs(args.work_dir, exist_ok=True)
        work = tempfile.mkdtemp(prefix="trainer_full_", dir=args.work_dir)
    else:
        temp = tempfile.TemporaryDirectory(prefix="trainer_full_")
        work = temp.name
    try:
        data = prepare_data(args, config, work)
        with open(os.path.join(work, "funasr.yaml"), "w", encoding="utf-8") as handle:
            yaml.safe_dump(trainer_pair.funasr_config(config, args), handle, allow_unicode=True, sort_keys=False)
        print(f"{data['utterances']} utterances, {data['lfr_frames']} LFR frames "
              f"({data['audio_hours'] * 60:.1f} min of audio); work dir {work}", file=sys.stderr)

        def measure(impl, repeat):
            run_dir = os.path.join(work, f"run{repeat + 1}_{impl}")
            result = run_one(impl, trainer_pair.commands(args, data, work, run_dir)[impl], args, run_dir)
            print(f"repeat {repeat + 1}/{args.repeats} {impl}: epoch {result['epoch_s']:.1f} s, "
                  f"{result['frames_per_s']:.0f} frames/s, total {result['total_s']:.1f} s", file=sys.stderr)
            return result

        runs = harness.side_by_side(IMPLEMENTATIONS, args.repeats, measure)
    finally:
        if temp is not None:
            temp.cleanup()

    summary = {}
    for impl, impl_runs in runs.items():
        first = impl_runs[0]
        summary[impl] = {
            "impl": impl, **harness.medians(impl_runs, TIMES),
            **{key: first[key] for key in ("utterances", "frames", "padded_frames", "batches")},
            "peak_rss_mb": max(r["peak_rss_mb"] for r in impl_runs),
            "worker_peak_rss_mb": max(r["worker_peak_rss_mb"] for r in impl_runs),
            "runs": impl_runs,
        }
    # each side's command line as its first run was given it
    first_runs = {impl: trainer_pair.commands(args, data, work, os.path.join(work, f"run1_{impl}"))[impl]
                  for impl in IMPLEMENTATIONS}
    shown = {impl: [a.replace(work, "<work>") for a in argv] for impl, argv in first_runs.items()}
    report = {
        "benchmark": "trainer_full",
        "timed": {"epoch_s": "Trainer.train_epoch of one epoch (data loading + features on FunASR's side, "
                             "forward, backward, clip, Adam, scheduler, logging)",
                  "total_s": "process spawn to exit (start-up, imports, setup, epoch, validation, checkpoints)"},
        "environment": harness.environment(args.threads),
        "config": os.path.abspath(args.config), "data_dir": os.path.abspath(args.data_dir),
        "num_utts": args.num_utts, "repeats": args.repeats, "lfr_frame_s": args.frame_s,
        "data": {key: data[key] for key in ("utterances", "lfr_frames", "raw_frames", "audio_hours")},
        "funasr_config": trainer_pair.funasr_config(config, args),
        "commands": {
            "ours": "python -m funasr_lite.bin.train " + shlex.join(shown["ours"]),
            "funasr": "python -m funasr.bin.train_ds " + shlex.join(shown["funasr"]),
            "launcher": "both run as bench/trainer_pair.py's train_probed in a harness worker (`python "
                        "bench/harness.py --worker SPEC RESULT`: timing wrappers + FunASR's CPU device fix, "
                        "see the docstring)",
        },
        "results": summary,
        "throughput_ratio_ours_over_funasr": harness.paired_ratios(runs["ours"], runs["funasr"], "frames_per_s"),
        "total_time_ratio_funasr_over_ours": harness.paired_ratios(runs["funasr"], runs["ours"], "total_s"),
    }
    print(f"\nfull trainer, one epoch, {os.path.basename(args.config)}, {data['utterances']} utterances of "
          f"{args.data_dir}, median of {args.repeats} repeat(s), {args.threads} thread(s), torch {torch.__version__}")
    print(harness.markdown_table(
        [("impl", "impl"), ("epoch s", "epoch_s", ".1f"), ("total s", "total_s", ".1f"),
         ("start s", "startup_s", ".1f"), ("utts", "utterances"), ("frames", "frames"), ("batches", "batches"),
         ("frames/s", "frames_per_s", ".0f"), ("x RT", "x_real_time", ".1f"), ("RSS MB", "peak_rss_mb", ".0f"),
         ("worker RSS MB", "worker_peak_rss_mb", ".0f")], summary.values()))
    print(f"ours / funasr epoch throughput (median of per-repeat ratios): "
          f"{report['throughput_ratio_ours_over_funasr']['median_per_repeat']:.3f}")
    print(f"funasr / ours total wall time (median of per-repeat ratios): "
          f"{report['total_time_ratio_funasr_over_ours']['median_per_repeat']:.3f}")
    if args.out:
        harness.write_report(args.out, report)


if __name__ == "__main__":
    main()
