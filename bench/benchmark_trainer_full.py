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

How each trainer is started (the same launcher for both, this file with --worker): the launcher
records a few timestamps and wraps two methods of the trainer class without changing what they
do -- the epoch method (Trainer.train_epoch on both sides) to time it, and the per-batch forward
(our Trainer._forward, FunASR's Trainer.forward_step) to count utterances, unpadded and padded
model-input (LFR) frames of the training batches. One FunASR patch is needed to run at all on a
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

Memory: peak_rss_mb is the trainer process's own peak (ru_maxrss); worker_peak_rss_mb is the
largest peak among its child processes (DataLoader workers: VmHWM of live children at the end of
the epoch -- FunASR's workers are persistent -- and ru_maxrss of reaped ones). A forked worker's
RSS includes pages it shares with the parent, so it overlaps peak_rss_mb.

bench/learning_curve.py reuses the data lists, the config mapping, the launcher and the probe
(which also tallies validation and, with an epoch log, records every epoch) for a multi-epoch run.

    # the full-size measurement (needs recipe stages -1..2 of egs/aishell1: wavs, feats, am.mvn, tokens)
    python bench/benchmark_trainer_full.py --data_dir egs/aishell1/data/train --num_utts 600 \\
        --repeats 3 --threads 2 --out bench_out/trainer_full_demo.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOLS = os.path.dirname(os.path.abspath(__file__))
IMPLEMENTATIONS = ("ours", "funasr")
NEVER = 10 ** 9  # FunASR's validate_interval / save_checkpoint_interval: not within the epoch


# ---------------------------------------------------------------- worker side (one trainer, one process)
def _children_peak_mb() -> float:
    """Largest VmHWM (MB) among this process's live children (read from /proc; 0 when unreadable)."""
    me, peak = str(os.getpid()), 0.0
    try:
        pids = [p for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return 0.0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as handle:
                fields = dict(line.split(":", 1) for line in handle if ":" in line)
        except OSError:
            continue
        if fields.get("PPid", "").strip() == me and "VmHWM" in fields:
            peak = max(peak, int(fields["VmHWM"].split()[0]) / 1024.0)
    return peak


class _EpochProbe:
    """Wraps a trainer's epoch method (timing), its validation method and its per-batch forward
    (counting frames; weighted sums of the model's stats, as our trainer averages them).

    With ``epoch_log`` (bench/learning_curve.py), each epoch's record -- its training counts and
    the validation that follows it -- is appended to that JSON-lines file once the validation is
    done, so a run that is killed keeps the records of its finished epochs."""

    def __init__(self, epoch_log=None):
        self.in_epoch = False
        self.in_valid = False
        self.epochs = []  # one dict per train_epoch call
        self.current = None
        self.valid = None
        self.children_peak_mb = 0.0
        self.epoch_log = epoch_log

    def wrap_epoch(self, method, epoch_of=None):
        probe = self

        def train_epoch(trainer, *args, **kwargs):
            probe.current = {"utterances": 0, "frames": 0, "padded_frames": 0, "batches": 0, "loss_sum": 0.0,
                             "stat_sums": {}, "stat_weights": {}, "start_time": time.time()}
            if epoch_of is not None:
                probe.current["epoch"] = epoch_of(*args, **kwargs)
            probe.in_epoch = True
            start = time.perf_counter()
            try:
                return method(trainer, *args, **kwargs)
            finally:
                probe.current["seconds"] = time.perf_counter() - start
                probe.current["end_time"] = time.time()
                probe.in_epoch = False
                probe.children_peak_mb = max(probe.children_peak_mb, _children_peak_mb())
                probe.epochs.append(probe.current)

        return train_epoch

    def wrap_validate(self, method, is_epoch_end=lambda *args, **kwargs: True):
        """Validation after an epoch (``is_epoch_end``: not a mid-epoch one) is tallied into that
        epoch's record as ``valid`` (weighted averages of the stats), then the record is logged."""
        probe = self

        def validate(trainer, *args, **kwargs):
            if probe.in_epoch or not probe.epochs or not is_epoch_end(*args, **kwargs):
                return method(trainer, *args, **kwargs)
            probe.valid = {"utterances": 0, "batches": 0, "stat_sums": {}, "stat_weights": {}}
            probe.in_valid = True
            try:
                return method(trainer, *args, **kwargs)
            finally:
                probe.in_valid = False
                record = probe.epochs[-1]
                record["valid"] = {"utterances": probe.valid["utterances"], "batches": probe.valid["batches"],
                                   **_weighted_averages(probe.valid)}
                record["train"] = _weighted_averages(record)
                if probe.epoch_log:
                    shown = {k: v for k, v in record.items() if k not in ("stat_sums", "stat_weights")}
                    with open(probe.epoch_log, "a", encoding="utf-8") as handle:
                        handle.write(json.dumps(shown) + "\n")

        return validate

    def count(self, batch, loss, stats=None, weight=None) -> None:
        if self.in_valid:
            target = self.valid
        elif self.in_epoch:
            target = self.current
            lengths = batch["speech_lengths"]
            target["frames"] += int(lengths.sum())
            target["padded_frames"] += int(batch["speech"].shape[0] * batch["speech"].shape[1])
            target["loss_sum"] += float(loss.detach())
        else:
            return
        target["utterances"] += int(batch["speech_lengths"].shape[0])
        target["batches"] += 1
        weight = _number(weight)
        weight = 1.0 if weight is None else weight
        for key, value in {**(stats or {}), "loss": loss}.items():
            number = _number(value)
            if number is not None and math.isfinite(number):
                target["stat_sums"][key] = target["stat_sums"].get(key, 0.0) + number * weight
                target["stat_weights"][key] = target["stat_weights"].get(key, 0.0) + weight


def _number(value):
    """A stat as a float (a tensor's mean, as our trainer reads it); None when absent or empty."""
    if value is None:
        return None
    if hasattr(value, "detach"):
        return float(value.detach().float().mean()) if value.numel() else None
    return float(value)


def _weighted_averages(tally: dict) -> dict:
    return {key: tally["stat_sums"][key] / tally["stat_weights"][key]
            for key in tally["stat_sums"] if tally["stat_weights"][key] > 0}


def _run_ours(spec: dict, probe: _EpochProbe) -> None:
    import funasr_lite.train.trainer as trainer_module
    from funasr_lite.bin.train import main as train_main

    cls = trainer_module.Trainer
    forward = cls._forward

    def counted_forward(trainer, batch, model):
        out = forward(trainer, batch, model)
        probe.count(batch, *out)
        return out

    cls._forward = counted_forward
    cls.train_epoch = probe.wrap_epoch(cls.train_epoch, epoch_of=lambda epoch, *a, **k: int(epoch))
    cls.validate = probe.wrap_validate(cls.validate)
    status = train_main(spec["argv"])
    if status:
        raise SystemExit(status)


def funasr_trainer_on_cpu():
    """FunASR's train_ds Trainer class, patched to run on CPU: train_ds assigns int(LOCAL_RANK) to
    ``trainer.device``, which torch reads as a CUDA ordinal; without CUDA it becomes "cpu"."""
    import torch
    import funasr.train_utils.trainer_ds as trainer_module

    cls = trainer_module.Trainer

    def get_device(trainer):
        return trainer.__dict__["_device"]

    def set_device(trainer, value):
        if isinstance(value, int) and not torch.cuda.is_available():
            value = "cpu"
        trainer.__dict__["_device"] = value

    cls.device = property(get_device, set_device)
    return cls


def _run_funasr(spec: dict, probe: _EpochProbe) -> None:
    cls = funasr_trainer_on_cpu()
    forward_step = cls.forward_step

    def counted_forward_step(trainer, model, batch, loss_dict={}):  # noqa: B006 (FunASR's signature)
        out = forward_step(trainer, model, batch, loss_dict=loss_dict)
        probe.count(batch, loss_dict["loss"], loss_dict.get("stats"), loss_dict.get("weight"))
        return out

    cls.forward_step = counted_forward_step
    # FunASR counts epochs from 0 (train_epoch(epoch=e), checkpoint model.pt.ep{e+1}); records use e+1.
    cls.train_epoch = probe.wrap_epoch(cls.train_epoch, epoch_of=lambda *a, **k: int(k.get("epoch", 0)) + 1)
    # The end-of-epoch validation is the call without step_in_epoch (mid-epoch ones pass it).
    cls.validate_epoch = probe.wrap_validate(cls.validate_epoch,
                                             is_epoch_end=lambda *a, **k: k.get("step_in_epoch") is None)
    from funasr.bin.train_ds import main_hydra

    sys.argv = ["funasr.bin.train_ds", *spec["argv"]]
    main_hydra()


def worker(spec_path: str, result_path: str, impl: str) -> None:
    worker_start = time.time()
    with open(spec_path) as handle:
        spec = json.load(handle)
    import torch

    torch.set_num_threads(spec["threads"])
    probe = _EpochProbe(spec.get("epoch_log"))
    (_run_ours if impl == "ours" else _run_funasr)(spec, probe)
    main_end = time.time()
    if spec.get("epoch_log"):  # bench/learning_curve.py: any number of epochs, recorded as they end
        result = {"impl": impl, "epochs": len(probe.epochs), "torch_threads": torch.get_num_threads()}
        if impl == "funasr":
            import funasr

            result["funasr_version"] = funasr.__version__
        with open(result_path, "w") as handle:
            json.dump(result, handle)
        return
    if len(probe.epochs) != 1:
        raise SystemExit(f"{impl}: expected one training epoch, saw {len(probe.epochs)}")
    epoch = probe.epochs[0]
    reaped_children_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0
    sys.path.insert(0, TOOLS)
    from benchmark_train import peak_rss_mb  # imported only now: it loads funasr_lite's models

    result = {
        "impl": impl, "worker_start_time": worker_start, "main_end_time": main_end,
        "epoch_start_time": epoch["start_time"], "epoch_end_time": epoch["end_time"], "epoch_s": epoch["seconds"],
        "utterances": epoch["utterances"], "frames": epoch["frames"], "padded_frames": epoch["padded_frames"],
        "batches": epoch["batches"], "mean_loss": epoch["loss_sum"] / max(epoch["batches"], 1),
        "peak_rss_mb": peak_rss_mb(), "worker_peak_rss_mb": max(probe.children_peak_mb, reaped_children_mb),
        "torch_threads": torch.get_num_threads(),
    }
    if impl == "funasr":
        import funasr

        result["funasr_version"] = funasr.__version__
    with open(result_path, "w") as handle:
        json.dump(result, handle)


# ---------------------------------------------------------------- driver: data, configs, runs
DATA_FILES = ("feats.scp", "text", "utt2num_frames", "wav.scp")


def read_data_files(data_dir: str) -> tuple:
    """({file name: {utt: value}} of DATA_FILES, the utterances that have all four, in feats.scp
    order); refuses pipe commands in wav.scp (FunASR reads audio files only)."""
    from funasr_lite.data.datadir import read_kv

    files = {name: read_kv(os.path.join(data_dir, name), allow_empty_value=(name == "text")) for name in DATA_FILES}
    keys = [k for k in files["feats.scp"] if all(k in f for f in files.values())]
    if not keys:
        raise SystemExit(f"{data_dir}: no utterance has feats.scp, text, utt2num_frames and wav.scp")
    for key in keys:
        if files["wav.scp"][key].rstrip().endswith("|"):
            raise SystemExit(f"{data_dir}/wav.scp: {key} is a pipe command; FunASR reads audio files only")
    return files, keys


def kept_utterances(data_dir: str, config: dict, token_list: str, cmvn_file: str) -> list:
    """The utterances of ``data_dir`` that our dataset keeps (frame/token limits of dataset_conf)."""
    from funasr_lite.data.dataset import build_dataset
    from funasr_lite.data.tokenizer import build_tokenizer

    dataset = build_dataset(data_dir, build_tokenizer(token_list), cmvn_file, config.get("frontend_conf") or {},
                            config.get("dataset_conf") or {})
    return list(dataset.utt_ids)


def lfr_frames(files: dict, key: str, lfr_n: int) -> int:
    """Model-input (LFR) frames of one utterance: ceil(utt2num_frames / lfr_n)."""
    return math.ceil(int(files["utt2num_frames"][key]) / lfr_n)


def write_jsonl(path: str, files: dict, keys: list, lfr_n: int) -> None:
    """FunASR's jsonl list: key, source (absolute wav path), source_len = LFR frames (so that
    FunASR's token batching counts what our batch_bins counts), target = our text without spaces."""
    with open(path, "w", encoding="utf-8") as handle:
        for key in keys:
            entry = {"key": key, "source": os.path.abspath(files["wav.scp"][key].strip()),
                     "source_len": lfr_frames(files, key, lfr_n), "target": "".join(files["text"][key].split())}
            handle.write(json.dumps(entry, ensure_ascii=False) + "\n")


def prepare_data(args, config: dict, work: str) -> dict:
    """The first --num_utts utterances of --data_dir that our dataset keeps: a data dir for ours,
    jsonl lists for FunASR (train, and a one-utterance valid list)."""
    from funasr_lite.data.datadir import write_kv

    files, keys = read_data_files(args.data_dir)
    keys = keys[: args.num_utts]
    subset = os.path.join(work, "data", "train")
    os.makedirs(subset)
    for name, values in files.items():
        write_kv(os.path.join(subset, name), [(k, values[k]) for k in keys], sort=False)

    # Our dataset decides which utterances are usable (frame/token limits); FunASR gets exactly those.
    kept = set(kept_utterances(subset, config, args.token_list, args.cmvn_file))
    if len(kept) < len(keys):
        keys = [k for k in keys if k in kept]
        for name, values in files.items():
            write_kv(os.path.join(subset, name), [(k, values[k]) for k in keys], sort=False)
    lfr_n = int((config.get("frontend_conf") or {}).get("lfr_n", 1))
    train_jsonl, valid_jsonl = os.path.join(work, "data", "train.jsonl"), os.path.join(work, "data", "valid.jsonl")
    write_jsonl(train_jsonl, files, keys, lfr_n)
    write_jsonl(valid_jsonl, files, keys[:1], lfr_n)
    raw_frames = sum(int(files["utt2num_frames"][k]) for k in keys)
    return {"dir": subset, "train_jsonl": train_jsonl, "valid_jsonl": valid_jsonl, "utterances": len(keys),
            "lfr_frames": int(sum(lfr_frames(files, k, lfr_n) for k in keys)),
            "raw_frames": raw_frames, "audio_hours": raw_frames * 0.01 / 3600}


def funasr_config(config: dict, args, **train_overrides) -> dict:
    """Our training config in FunASR's schema (see the module docstring for each mapping);
    ``train_overrides`` replace entries of FunASR's train_conf (e.g. max_epoch)."""
    import copy

    from benchmark_train import _class_name
    from funasr_lite.models import DECODERS, ENCODERS, MODELS, PREDICTORS, SPECAUGS

    if _class_name(MODELS, config.get("model", "paraformer")) != "Paraformer":
        raise SystemExit(f"only Paraformer configs can be compared, got model {config.get('model')!r}")
    conf = lambda key: copy.deepcopy(config.get(key) or {})  # noqa: E731
    dataset_conf, train_conf = conf("dataset_conf"), conf("train_conf")
    out = {
        "model": "Paraformer", "model_conf": conf("model_conf"),
        "encoder": _class_name(ENCODERS, config["encoder"]), "encoder_conf": conf("encoder_conf"),
        "decoder": _class_name(DECODERS, config["decoder"]), "decoder_conf": conf("decoder_conf"),
        "predictor": _class_name(PREDICTORS, config["predictor"]), "predictor_conf": conf("predictor_conf"),
        "ctc_conf": conf("ctc_conf"),
        "frontend": "WavFrontend",
        "frontend_conf": {**conf("frontend_conf"), "cmvn_file": os.path.abspath(args.cmvn_file), "dither": 0.0},
        "tokenizer": "CharTokenizer",
        "tokenizer_conf": {"token_list": os.path.abspath(args.token_list), "unk_symbol": "<unk>"},
        "optim": config.get("optim", "adam"), "optim_conf": conf("optim_conf"),
        "scheduler": config.get("scheduler", "warmuplr"), "scheduler_conf": conf("scheduler_conf"),
        "dataset": "AudioDataset",
        "dataset_conf": {
            "index_ds": "IndexDSJsonl", "batch_sampler": "BatchSampler", "batch_type": "token",
            "batch_size": int(dataset_conf.get("batch_bins", 20000)),
            "sort_size": int(dataset_conf.get("bucket_size", 1024)),
            "max_token_length": int(dataset_conf.get("max_frames", 3000)),
            "shuffle": bool(dataset_conf.get("shuffle", True)),
            "num_workers": int(dataset_conf.get("num_workers", 2)), "pin_memory": False,
        },
        "train_conf": {
            "max_epoch": 1, "accum_grad": int(train_conf.get("accum_grad", 1)),
            "grad_clip": float(train_conf.get("grad_clip", 5.0)),
            "grad_clip_type": float(train_conf.get("grad_clip_type", 2.0)),
            "log_interval": int(train_conf.get("log_interval", 50)),
            "keep_nbest_models": int(train_conf.get("keep_nbest_models", 10)),
            "avg_nbest_model": int(train_conf.get("avg_nbest_model", 10)),
            "validate_interval": NEVER, "save_checkpoint_interval": NEVER,
            **train_overrides,
        },
        "seed": int(config.get("seed", 0)), "ncpu": args.threads,
    }
    if config.get("specaug"):
        out["specaug"] = _class_name(SPECAUGS, config["specaug"])
        out["specaug_conf"] = conf("specaug_conf")
    return out


def commands(args, data: dict, work: str, run_dir: str) -> dict:
    """argv of each trainer (as run by the launcher), and the equivalent shell command lines."""
    seed = str(args.seed_value)
    ours = ["--config", os.path.abspath(args.config), "--train_data", data["dir"],
            "--token_list", os.path.abspath(args.token_list), "--cmvn_file", os.path.abspath(args.cmvn_file),
            "--output_dir", os.path.join(run_dir, "exp"), "--device", "cpu", "--resume", "false",
            "++train_conf.max_epoch=1", "++train_conf.oom_check=false", f"++seed={seed}"]
    funasr = ["--config-path", work, "--config-name", "funasr.yaml",
              f"++train_data_set_list={data['train_jsonl']}", f"++valid_data_set_list={data['valid_jsonl']}",
              f"++output_dir={os.path.join(run_dir, 'exp')}", "++device=cpu",
              f"hydra.run.dir={os.path.join(run_dir, 'hydra')}", "hydra.output_subdir=null"]
    return {"ours": ours, "funasr": funasr}


def launch_worker(impl: str, argv: list, threads: int, run_dir: str, timeout: float, **spec) -> tuple:
    """Run one trainer (``impl``) with ``argv`` in a fresh process of this file's --worker mode,
    in ``run_dir`` (created; log.txt, spec.json, result.json); ``spec`` adds worker options
    (epoch_log). Returns (result dict, spawn time, exit time); a failure exits with the log's tail."""
    os.makedirs(run_dir)
    spec_path, result_path = os.path.join(run_dir, "spec.json"), os.path.join(run_dir, "result.json")
    with open(spec_path, "w") as handle:
        json.dump({"argv": argv, "threads": threads, **spec}, handle)
    python_path = os.pathsep.join(filter(None, [REPO, os.environ.get("PYTHONPATH")]))
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads),
               FUNASR_LITE_NO_PROGRESS="1", PYTHONPATH=python_path)
    log_path = os.path.join(run_dir, "log.txt")
    with open(log_path, "w") as log:
        spawn = time.time()
        proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--worker", impl, "--spec", spec_path,
                               "--result", result_path], cwd=run_dir, env=env, stdout=log, stderr=subprocess.STDOUT,
                              timeout=timeout)
        exit_time = time.time()
    if proc.returncode != 0 or not os.path.isfile(result_path):
        with open(log_path, errors="replace") as handle:
            tail = handle.read()[-5000:]
        raise SystemExit(f"{impl} trainer failed ({proc.returncode}), log {log_path}:\n{tail}")
    with open(result_path) as handle:
        return json.load(handle), spawn, exit_time


def run_one(impl: str, argv: list, args, run_dir: str) -> dict:
    result, spawn, exit_time = launch_worker(impl, argv, args.threads, run_dir, args.timeout)
    result["total_s"] = exit_time - spawn
    result["startup_s"] = result["epoch_start_time"] - spawn
    result["after_s"] = exit_time - result["epoch_end_time"]
    result["frames_per_s"] = result["frames"] / result["epoch_s"]
    result["x_real_time"] = result["frames"] * args.frame_s / result["epoch_s"]
    result["total_frames_per_s"] = result["frames"] / result["total_s"]
    for key in ("worker_start_time", "main_end_time", "epoch_start_time", "epoch_end_time"):
        result.pop(key)
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default=os.path.join(REPO, "egs/aishell1/conf/demo.yaml"))
    parser.add_argument("--data_dir", default=os.path.join(REPO, "egs/aishell1/data/train"),
                        help="feats.scp, text, utt2num_frames and wav.scp (plain paths)")
    parser.add_argument("--token_list", help="default <data_dir>/../lang_char/tokens.txt")
    parser.add_argument("--cmvn_file", help="default <data_dir>/am.mvn")
    parser.add_argument("--num_utts", type=int, default=600, help="the first N utterances of --data_dir")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per trainer run")
    parser.add_argument("--work_dir", help="keep data lists, configs and every run's logs here (default: a temp dir)")
    parser.add_argument("--out", help="JSON file to write")
    parser.add_argument("--worker", choices=IMPLEMENTATIONS, help=argparse.SUPPRESS)
    parser.add_argument("--spec", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.spec, args.result, args.worker)
        return

    sys.path.insert(0, TOOLS)
    sys.path.insert(0, REPO)
    import torch
    import yaml
    from benchmark_train import environment, lfr_frame_s, write_report
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
            yaml.safe_dump(funasr_config(config, args), handle, allow_unicode=True, sort_keys=False)
        print(f"{data['utterances']} utterances, {data['lfr_frames']} LFR frames "
              f"({data['audio_hours'] * 60:.1f} min of audio); work dir {work}", file=sys.stderr)
        runs = {impl: [] for impl in IMPLEMENTATIONS}
        for repeat in range(args.repeats):
            order = IMPLEMENTATIONS if repeat % 2 == 0 else IMPLEMENTATIONS[::-1]
            for impl in order:
                run_dir = os.path.join(work, f"run{repeat + 1}_{impl}")
                argvs = commands(args, data, work, run_dir)
                result = run_one(impl, argvs[impl], args, run_dir)
                runs[impl].append(result)
                print(f"repeat {repeat + 1}/{args.repeats} {impl}: epoch {result['epoch_s']:.1f} s, "
                      f"{result['frames_per_s']:.0f} frames/s, total {result['total_s']:.1f} s", file=sys.stderr)
    finally:
        if temp is not None:
            temp.cleanup()

    summary = {}
    for impl, impl_runs in runs.items():
        med = lambda key: statistics.median(r[key] for r in impl_runs)  # noqa: E731
        summary[impl] = {
            "epoch_s": med("epoch_s"), "total_s": med("total_s"), "startup_s": med("startup_s"),
            "after_s": med("after_s"), "frames_per_s": med("frames_per_s"), "x_real_time": med("x_real_time"),
            "total_frames_per_s": med("total_frames_per_s"),
            "utterances": impl_runs[0]["utterances"], "frames": impl_runs[0]["frames"],
            "padded_frames": impl_runs[0]["padded_frames"], "batches": impl_runs[0]["batches"],
            "peak_rss_mb": max(r["peak_rss_mb"] for r in impl_runs),
            "worker_peak_rss_mb": max(r["worker_peak_rss_mb"] for r in impl_runs),
            "runs": impl_runs,
        }
    ratios = [o["frames_per_s"] / f["frames_per_s"] for o, f in zip(runs["ours"], runs["funasr"])]
    total_ratios = [f["total_s"] / o["total_s"] for o, f in zip(runs["ours"], runs["funasr"])]
    # each side's command line as its first run was given it
    shown = {impl: [a.replace(work, "<work>") for a in commands(args, data, work, os.path.join(work, f"run1_{impl}"))[impl]]
             for impl in IMPLEMENTATIONS}
    report = {
        "benchmark": "trainer_full",
        "timed": {"epoch_s": "Trainer.train_epoch of one epoch (data loading + features on FunASR's side, "
                             "forward, backward, clip, Adam, scheduler, logging)",
                  "total_s": "process spawn to exit (start-up, imports, setup, epoch, validation, checkpoints)"},
        "environment": dict(environment(args.threads), funasr=runs["funasr"][0].get("funasr_version")),
        "config": os.path.abspath(args.config), "data_dir": os.path.abspath(args.data_dir),
        "num_utts": args.num_utts, "repeats": args.repeats, "lfr_frame_s": args.frame_s,
        "data": {key: data[key] for key in ("utterances", "lfr_frames", "raw_frames", "audio_hours")},
        "funasr_config": funasr_config(config, args),
        "commands": {
            "ours": "python -m funasr_lite.bin.train " + shlex.join(shown["ours"]),
            "funasr": "python -m funasr.bin.train_ds " + shlex.join(shown["funasr"]),
            "launcher": "both run as `python bench/benchmark_trainer_full.py --worker IMPL` (timing wrappers "
                        "+ FunASR's CPU device fix, see the docstring)",
        },
        "results": summary,
        "throughput_ratio_ours_over_funasr": {"median_per_repeat": statistics.median(ratios), "per_repeat": ratios},
        "total_time_ratio_funasr_over_ours": {"median_per_repeat": statistics.median(total_ratios),
                                              "per_repeat": total_ratios},
    }
    print(f"\nfull trainer, one epoch, {os.path.basename(args.config)}, {data['utterances']} utterances of "
          f"{args.data_dir}, {args.repeats} repeat(s), {args.threads} thread(s), torch {torch.__version__}")
    header = (f"{'impl':7} {'epoch s':>8} {'total s':>8} {'start s':>8} {'utts':>5} {'frames':>8} {'batches':>7} "
              f"{'frames/s':>9} {'x RT':>6} {'RSS MB':>7} {'wkr MB':>7}")
    print(header)
    for impl, row in summary.items():
        print(f"{impl:7} {row['epoch_s']:8.1f} {row['total_s']:8.1f} {row['startup_s']:8.1f} {row['utterances']:5d} "
              f"{row['frames']:8d} {row['batches']:7d} {row['frames_per_s']:9.0f} {row['x_real_time']:6.1f} "
              f"{row['peak_rss_mb']:7.0f} {row['worker_peak_rss_mb']:7.0f}")
    print(f"ours / funasr epoch throughput (median of per-repeat ratios): "
          f"{report['throughput_ratio_ours_over_funasr']['median_per_repeat']:.3f}")
    print(f"funasr / ours total wall time (median of per-repeat ratios): "
          f"{report['total_time_ratio_funasr_over_ours']['median_per_repeat']:.3f}")
    if args.out:
        write_report(args.out, report)


if __name__ == "__main__":
    main()
