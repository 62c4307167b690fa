"""Our whole trainer and FunASR's ``funasr.bin.train_ds`` made comparable, for
benchmark_trainer_full.py (one epoch, side by side) and learning_curve.py (many epochs):
the data lists (FunASR jsonl with source_len = LFR frames), our config in FunASR's schema, each
side's command line, and the probed launch -- a harness worker that runs one trainer with its
epoch method timed and its per-batch forward counted (see benchmark_trainer_full.py's docstring).
"""

from __future__ import annotations

import json
import math
import os
import sys
import time

import harness

NEVER = 10 ** 9  # FunASR's validate_interval / save_checkpoint_interval: not within the epoch


# ---------------------------------------------------------------- worker side (one trainer, one process)
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
                probe.children_peak_mb = max(probe.children_peak_mb, harness.children_peak_rss_mb())
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


def _run_ours(argv: list, probe: _EpochProbe) -> None:
    import funasr_lite.train.engine as engine_module
    import funasr_lite.train.tasks.asr as asr_task_module
    from funasr_lite.bin.train import main as train_main

    task_cls = asr_task_module.AsrTask
    compute_loss = task_cls.compute_loss

    def counted_compute_loss(task, model, batch):
        out = compute_loss(task, model, batch)  # (loss, stats, weight), training and validation alike
        probe.count(batch, *out)
        return out

    task_cls.compute_loss = counted_compute_loss
    cls = engine_module.Engine
    cls.train_epoch = probe.wrap_epoch(cls.train_epoch, epoch_of=lambda epoch, *a, **k: int(epoch))
    cls.validate = probe.wrap_validate(cls.validate)
    status = train_main(argv)
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


def _run_funasr(argv: list, probe: _EpochProbe) -> None:
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

    sys.argv = ["funasr.bin.train_ds", *argv]
    main_hydra()


def train_probed(impl: str, argv: list, epoch_log: str = None) -> dict:
    """(harness worker) Run one trainer -- ours (funasr_lite.bin.train) or FunASR's train_ds -- with
    ``argv``, probed. Without ``epoch_log``: one epoch's counts, times and the loader workers' peak
    RSS; with it (learning_curve.py): any number of epochs, each recorded in that file as it ends.
    Nothing of funasr_lite is imported before the trainer is, so FunASR's peak RSS holds FunASR alone."""
    import torch

    probe = _EpochProbe(epoch_log)
    (_run_ours if impl == "ours" else _run_funasr)(argv, probe)
    result = {"impl": impl, "torch_threads": torch.get_num_threads()}
    if impl == "funasr":
        import funasr

        result["funasr_version"] = funasr.__version__
    if epoch_log:
        return dict(result, epochs=len(probe.epochs))
    if len(probe.epochs) != 1:
        raise SystemExit(f"{impl}: expected one training epoch, saw {len(probe.epochs)}")
    epoch = probe.epochs[0]
    return dict(result, epoch_start_time=epoch["start_time"], epoch_end_time=epoch["end_time"],
                epoch_s=epoch["seconds"], utterances=epoch["utterances"], frames=epoch["frames"],
                padded_frames=epoch["padded_frames"], batches=epoch["batches"],
                mean_loss=epoch["loss_sum"] / max(epoch["batches"], 1),
                worker_peak_rss_mb=max(probe.children_peak_mb, harness.children_peak_rss_mb()))


# ---------------------------------------------------------------- data lists, configs, commands
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


def funasr_config(config: dict, args, **train_overrides) -> dict:
    """Our training config in FunASR's schema (see the module docstring for each mapping);
    ``train_overrides`` replace entries of FunASR's train_conf (e.g. max_epoch)."""
    import copy

    from paraformer_pair import funasr_module_names, require_paraformer  # (not at import: see train_probed)

    require_paraformer(config)
    conf = lambda key: copy.deepcopy(config.get(key) or {})  # noqa: E731
    dataset_conf, train_conf = conf("dataset_conf"), conf("train_conf")
    out = {
        "model": "Paraformer", "model_conf": conf("model_conf"), **funasr_module_names(config),
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


def launch_trainer(impl: str, argv: list, threads: int, run_dir: str, timeout: float, epoch_log: str = None) -> dict:
    """train_probed in a harness worker, in ``run_dir`` (created; its output in run_dir/log.txt);
    a failure or timeout raises harness.WorkerError with the log's tail."""
    os.makedirs(run_dir)
    return harness.run_in_worker(train_probed, threads, log=os.path.join(run_dir, "log.txt"), cwd=run_dir,
                                 timeout=timeout, impl=impl, argv=argv, epoch_log=epoch_log)
