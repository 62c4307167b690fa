#!/usr/bin/env python3
r"""Fine-tuning side by side: ours (``funasr_lite.bin.finetune``) and FunASR's own (``funasr.bin.train_ds``
on jsonl lists from FunASR's ``scp2jsonl``), same base model dir, same data, same epochs, learning
rate and batch size; wall time, frames/s, peak RSS, and CER before -> after on each eval set.

    python bench/benchmark_finetune.py --model_dir M --data_dir example_data \
        --eval_sets validation=example_data/validation forget=egs/aishell1/data/test \
        --max_epoch 10 --lr 2e-4 --batch_bins 6000 --threads 1 --work_dir bench_out/ft \
        --out bench_out/finetune.json

What each side runs (the commands are also written into the JSON):

- ours: ``python -m funasr_lite.bin.finetune --model_dir M --data_dir D --output_dir W/ours
  --dataset_type small --batch_bins B --max_epoch E --lr LR --num_avg K`` (data check, fbank,
  training with validation each epoch, average of the K best epochs, model dir);
- FunASR: ``python -m funasr.datasets.audio_datasets.scp2jsonl ++scp_file_list=[wav.scp,text]
  ++data_type_list=[source,target] ++jsonl_file_out=...`` per split (the ``scp2jsonl`` console
  script), then ``python -m funasr.bin.train_ds ++model=M ++train_data_set_list=... ++valid_data_set_list=...
  ++dataset_conf.batch_type=token ++dataset_conf.batch_size=B ++train_conf.max_epoch=E
  ++optim_conf.lr=LR ++train_conf.avg_nbest_model=K`` -- FunASR's fine-tuning
  recipe (``examples/industrial_data_pretraining/paraformer/finetune.sh``) with CPU settings,
  run by this file's ``--train_ds`` mode: FunASR's main with its Trainer's ``device`` patched to
  "cpu" (train_ds sets it to the CUDA ordinal LOCAL_RANK; bench/trainer_pair.py).
  ``++model`` is a copy of the base dir (files linked) whose config.yaml says ``scheduler: steplr``
  with ``step_size`` 1e9 and ``gamma`` 1: a constant learning rate, as ours (a released config's
  warm-up would keep a short run near lr 0). The scheduler cannot be changed by overrides:
  train_ds merges them into the model dir's ``scheduler_conf``, whose ``warmup_steps`` StepLR
  refuses, and FunASR's own ``custom_lambdalr`` fails to construct under torch 2.11.
  ``batch_type: token`` with ``scp2jsonl``'s ``source_len`` (10 ms fbank frames) batches at most B
  fbank frames of padded input, which is what ``--batch_bins B`` means on our small path.

Both trainers run one after the other in fresh processes with OMP/MKL threads = ``--threads``
(harness.run_command); peak RSS is the largest sum of VmRSS over the process tree (trainer + loader
workers), sampled every 0.2 s. frames/s = training frames x epochs / wall seconds of the training command (both
include start-up, feature or list preparation that is part of the command, and per-epoch
validation). Both results are decoded by the same decoder (``funasr_lite.bin.infer``, greedy, 1
thread; FunASR's averaged ``model.pt.avgK`` is put in a model dir next to the base model's
config, am.mvn and tokens) and scored by ``funasr_lite.scoring.cer``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys

import harness


def fbank_frames(wav_scp: str) -> dict:
    """{utt: 10 ms frames} as scp2jsonl counts them (samples at 16 kHz * 100 / 16000), read with soundfile."""
    import soundfile

    from funasr_lite.data.datadir import read_kv

    out = {}
    for key, path in read_kv(wav_scp).items():
        info = soundfile.info(path)
        out[key] = int(info.frames * 16000 / info.samplerate * 1000 / 16000 / 10)
    return out


def decode_and_score(model_dir: str, data_dir: str, out_dir: str) -> dict:
    from funasr_lite.scoring.decode_dir import score_decode_dir

    argv = [sys.executable, "-m", "funasr_lite.bin.infer", "--model_dir", model_dir, "--data_dir", data_dir,
            "--output_dir", out_dir, "--num_threads", "1"]
    if not os.path.isfile(os.path.join(out_dir, "1best_recog", "text")):
        harness.run_command(argv, os.path.join(out_dir, "decode.log"), 1)
    score = score_decode_dir(os.path.join(data_dir, "text"), os.path.join(out_dir, "1best_recog", "text"), out_dir)
    return {"cer": round(float(score.cer_percent), 2), "num_utts": len(score.utts), "command": " ".join(argv[1:])}


def funasr_model_dir(base: str, checkpoint: str, out: str) -> str:
    """A model dir: the base dir's files with model.pt replaced by ``checkpoint``'s weights."""
    import torch

    from funasr_lite.models.load import extract_model_state

    os.makedirs(out, exist_ok=True)
    for name in os.listdir(base):
        if name != "model.pt" and os.path.isfile(os.path.join(base, name)):
            shutil.copy(os.path.join(base, name), os.path.join(out, name))
    state = extract_model_state(torch.load(checkpoint, map_location="cpu", weights_only=True), checkpoint)
    torch.save(dict(state), os.path.join(out, "model.pt"))
    return out


def run_ours(args, work: str) -> dict:
    out = os.path.join(work, "ours")
    if os.path.isdir(out):
        shutil.rmtree(out)
    argv = [sys.executable, "-m", "funasr_lite.bin.finetune", "--model_dir", args.model_dir, "--data_dir", args.data_dir,
            "--output_dir", out, "--dataset_type", "small", "--batch_bins", str(args.batch_bins),
            "--max_epoch", str(args.max_epoch), "--lr", str(args.lr), "--num_avg", str(args.num_avg), "--device", "cpu"]
    result = harness.run_command(argv, os.path.join(work, "logs", "ours_finetune.log"), args.threads)
    from funasr_lite.train.train_log import EPOCHS_FILE, read_epoch_records

    records = read_epoch_records(os.path.join(out, EPOCHS_FILE))
    result["epoch_seconds"] = [round(float(r["seconds"]), 2) for r in records]
    result["model_dir"] = os.path.join(out, "model_dir")
    return result


def constant_lr_model_dir(base: str, out: str) -> str:
    """``base`` with its files linked and config.yaml's scheduler replaced by a constant one."""
    import yaml

    os.makedirs(out)
    for name in os.listdir(base):
        if name != "config.yaml":
            os.symlink(os.path.join(base, name), os.path.join(out, name))
    with open(os.path.join(base, "config.yaml"), encoding="utf-8") as handle:
        config = yaml.safe_load(handle)
    config["scheduler"], config["scheduler_conf"] = "steplr", {"step_size": 10 ** 9, "gamma": 1.0}
    with open(os.path.join(out, "config.yaml"), "w", encoding="utf-8") as handle:
        yaml.safe_dump(config, handle, allow_unicode=True, sort_keys=False)
    return out


def run_funasr(args, work: str) -> dict:
    out = os.path.join(work, "funasr")
    if os.path.isdir(out):
        shutil.rmtree(out)
    os.makedirs(out)
    base = constant_lr_model_dir(args.model_dir, os.path.join(out, "base_model_dir"))
    lists = {}
    result = {"scp2jsonl": []}
    for split in ("train", "validation"):
        src = os.path.join(args.data_dir, split)
        lists[split] = os.path.join(out, f"{split}.jsonl")
        argv = [sys.executable, "-m", "funasr.datasets.audio_datasets.scp2jsonl",
                f"++scp_file_list=['{os.path.join(src, 'wav.scp')}', '{os.path.join(src, 'text')}']",
                "++data_type_list=['source', 'target']", f"++jsonl_file_out={lists[split]}"]
        log = os.path.join(work, "logs", f"funasr_scp2jsonl_{split}.log")
        result["scp2jsonl"].append(harness.run_command(argv, log, args.threads, cwd=out))
    # train_ds through this file's --train_ds mode: FunASR's own main, its Trainer patched for CPU
    argv = [sys.executable, os.path.abspath(__file__), "--train_ds", f"++model={base}",
            f"++train_data_set_list={lists['train']}", f"++valid_data_set_list={lists['validation']}",
            "++dataset_conf.index_ds=IndexDSJsonl", "++dataset_conf.batch_sampler=BatchSampler",
            "++dataset_conf.batch_type=token", f"++dataset_conf.batch_size={args.batch_bins}",
            f"++dataset_conf.max_token_length={args.max_fbank_frames}", "++dataset_conf.shuffle=true",
            "++dataset_conf.num_workers=1", f"++train_conf.max_epoch={args.max_epoch}",
            f"++train_conf.keep_nbest_models={args.max_epoch}", f"++train_conf.avg_nbest_model={args.num_avg}",
            "++train_conf.log_interval=10", f"++optim_conf.lr={args.lr}",
            f"++output_dir={os.path.join(out, 'exp')}", "++device=cpu", f"++ncpu={args.threads}",
            f"hydra.run.dir={os.path.join(out, 'hydra')}", "hydra.output_subdir=null"]
    result.update(harness.run_command(argv, os.path.join(work, "logs", "funasr_train_ds.log"), args.threads, cwd=out))
    checkpoint = os.path.join(out, "exp", f"model.pt.avg{args.num_avg}")
    if not os.path.isfile(checkpoint):
        raise SystemExit(f"FunASR wrote no {checkpoint}")
    result["model_dir"] = funasr_model_dir(args.model_dir, checkpoint, os.path.join(out, "model_dir"))
    return result


def train_ds_on_cpu(argv: list) -> int:
    """``python -m funasr.bin.train_ds ARGV`` on a machine without CUDA (trainer_pair's patch)."""
    from trainer_pair import funasr_trainer_on_cpu

    funasr_trainer_on_cpu()
    from funasr.bin.train_ds import main_hydra

    sys.argv = ["funasr.bin.train_ds", *argv]
    main_hydra()
    return 0


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--train_ds"]:
        return train_ds_on_cpu(argv[1:])
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model_dir", required=True, help="base (released-layout) model dir")
    parser.add_argument("--data_dir", required=True, help="train/ and validation/ with text and wav.scp")
    parser.add_argument("--eval_sets", nargs="+", required=True, help="name=data_dir (text, wav.scp) decoded before/after")
    parser.add_argument("--max_epoch", type=int, default=10)
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--batch_bins", type=int, default=6000, help="fbank frames per padded batch (both)")
    parser.add_argument("--max_fbank_frames", type=int, default=3000, help="longest utterance kept (both; ours: config max_frames x lfr_n)")
    parser.add_argument("--num_avg", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--work_dir", default="bench_out/finetune")
    parser.add_argument("--out", default="bench_out/finetune.json")
    parser.add_argument("--skip", nargs="*", default=[], choices=("ours", "funasr"))
    args = parser.parse_args(argv)
    args.model_dir, args.data_dir = os.path.abspath(args.model_dir), os.path.abspath(args.data_dir)
    work = os.path.abspath(args.work_dir)
    os.makedirs(work, exist_ok=True)
    eval_sets = dict(item.split("=", 1) for item in args.eval_sets)
    eval_sets = {name: os.path.abspath(path) for name, path in eval_sets.items()}

    frames = fbank_frames(os.path.join(args.data_dir, "train", "wav.scp"))
    train_frames = sum(v for v in frames.values() if v <= args.max_fbank_frames)
    report = {"tool": "benchmark_finetune", "environment": harness.environment(args.threads), "threads": args.threads,
              "model_dir": args.model_dir, "data_dir": args.data_dir, "train_utts": len(frames),
              "train_fbank_frames": train_frames,
              "max_epoch": args.max_epoch, "lr": args.lr, "batch_bins": args.batch_bins, "num_avg": args.num_avg,
              "before": {}, "runs": {}}
    print("decoding the eval sets with the base model", file=sys.stderr)
    for name, path in eval_sets.items():
        report["before"][name] = decode_and_score(args.model_dir, path, os.path.join(work, "decode", f"base_{name}"))
    for impl, fn in (("ours", run_ours), ("funasr", run_funasr)):
        if impl in args.skip:
            continue
        print(f"fine-tuning: {impl}", file=sys.stderr)
        run = fn(args, work)
        run["train_frames_per_s"] = round(train_frames * args.max_epoch / run["wall_s"], 1)
        run["after"] = {name: decode_and_score(run["model_dir"], path, os.path.join(work, "decode", f"{impl}_{name}"))
                        for name, path in eval_sets.items()}
        report["runs"][impl] = run
    harness.write_report(args.out, report)

    print(f"\n{report['train_utts']} training utterances, {train_frames} fbank frames; {args.max_epoch} epochs, "
          f"lr {args.lr}, batch {args.batch_bins} frames, {args.threads} thread(s); one run each")
    names = list(eval_sets)
    table = [dict(run, trainer=impl, **{f"cer_{n}": f"{report['before'][n]['cer']:.2f} -> {run['after'][n]['cer']:.2f}"
                                        for n in names}) for impl, run in report["runs"].items()]
    print(harness.markdown_table(
        [("trainer", "trainer"), ("wall s", "wall_s", ".1f"), ("frames/s", "train_frames_per_s", ".0f"),
         ("peak RSS MB", "peak_rss_mb", ".0f")] + [(f"CER {n} before -> after", f"cer_{n}") for n in names], table))
    return 0


if __name__ == "__main__":
    sys.exit(main())
