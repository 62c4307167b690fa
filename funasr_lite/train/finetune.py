"""Fine-tuning a released model dir on ``<data>/{train,validation}/{text,wav.scp}``.

The model dir gives everything that must not change: ``config.yaml`` (model and
``frontend_conf``), ``am.mvn``, the token list and the weights (``init_param``). Nothing is
re-estimated: no new CMVN, no new vocabulary. Steps (:func:`run_finetune`):

1. check the model dir (:func:`funasr_lite.inference.model_dir.load_model_dir`: a missing ``am.mvn``
   or parts that disagree are named) and resolve the training config: the model's
   ``config.yaml`` + the fine-tuning defaults (:data:`FINETUNE_DEFAULTS`) + the user's overrides;
2. check each split (:mod:`funasr_lite.data.check`) into ``<out>/data/<split>`` (the kept
   utterances, ``data_check.txt``); counts printed and logged; a train split with nothing usable
   stops here, an empty validation split is named and training goes on without validation;
3. ``small``: Kaldi fbank of the kept utterances into ``<out>/data/<split>/feats.scp`` by the
   model's own frontend (dither 0); ``large``: train audio written into tar shards
   (:mod:`funasr_lite.data.shards`, features on the fly), validation as in ``small``;
4. the trainer (``<out>`` is the exp dir: checkpoints, ``train.log``, ``model.avgN.pt``), under
   ``torchrun`` too (rank 0 prepares the data, the others wait for its ``.prepared`` marker);
5. ``<out>/model_dir``: the averaged weights in the model dir's layout (config.yaml with relative
   names, model.pt, am.mvn, the token list), which our API and FunASR's AutoModel decode.

``batch_bins``: fbank (10 ms) frames per padded batch for ``small`` (the trainer counts
model-input frames, so it gets ``batch_bins // lfr_n``), milliseconds of audio for ``large``.
The learning rate is constant by default (``scheduler: constantlr``): a released config's warm-up
of tens of thousands of steps would keep a short fine-tuning near lr 0. Override with
``++scheduler=warmuplr ++scheduler_conf.warmup_steps=N``.
"""

from __future__ import annotations

import json
import logging
import os
import time
from typing import Any, Dict, List, Optional, Sequence

from funasr_lite.data.check import DataCheckError, check_split, log_report, summary_counts, write_checked_dir
from funasr_lite.data.tokenizer import build_tokenizer, write_token_list
from funasr_lite.export.model_dir import export_model_dir
from funasr_lite.frontend.fbank import extract_fbank_job
from funasr_lite.frontend.wav_frontend import FBANK_OPTIONS_FILE, WavFrontend, write_fbank_options
from funasr_lite.inference.model_dir import ModelDirError, load_model_dir, resolve_model_files
from funasr_lite.train.config import resolve_training_config
from funasr_lite.utils.config import ConfigError

logger = logging.getLogger(__name__)

DATASET_TYPES = ("small", "large")
SPLITS = ("train", "validation")
PREPARED_MARKER = ".prepared"
MODEL_DIR_NAME = "model_dir"
# Overrides applied before the user's (theirs win): a constant learning rate (see module docstring).
FINETUNE_DEFAULTS = ("++scheduler=constantlr", "++scheduler_conf={}")
# How long ranks > 0 wait for rank 0 to prepare the data.
PREPARE_WAIT_S = 24 * 3600.0


class FinetuneError(ValueError):
    """Fine-tuning cannot start; the message names the file or setting."""


def finetune_overrides(*, max_epoch: int, lr: float, batch_bins: int, dataset_type: str, lfr_n: int,
                       num_avg: int, user: Sequence[str] = ()) -> List[str]:
    """The ``++key=value`` list of a fine-tuning run: defaults, the named options, then ``user``."""
    if dataset_type == "small":
        bins = [f"++dataset_conf.batch_bins={max(1, int(batch_bins) // int(lfr_n))}"]
    else:  # milliseconds; validation (precomputed features) counts model-input frames
        bins = [f"++dataset_conf.batch_bins={int(batch_bins)}",
                f"++dataset_conf.valid_batch_bins={max(1, int(batch_bins) // (10 * int(lfr_n)))}"]
    return [*FINETUNE_DEFAULTS, f"++train_conf.max_epoch={int(max_epoch)}", f"++optim_conf.lr={float(lr)!r}",
            f"++train_conf.avg_nbest_model={int(num_avg)}", *bins, *user]


def resolve_finetune_config(model_dir, output_dir, *, dataset_type: str = "small", batch_bins: int = 2000,
                            max_epoch: int = 50, lr: float = 5e-5, num_avg: int = 5,
                            overrides: Sequence[str] = ()) -> Dict[str, Any]:
    """The training config of fine-tuning ``model_dir`` into ``output_dir`` (data paths filled in).

    Raises FinetuneError (ModelDirError/ConfigError messages) naming the file.
    """
    if dataset_type not in DATASET_TYPES:
        raise FinetuneError(f"dataset_type must be one of {', '.join(DATASET_TYPES)}, got {dataset_type!r}")
    try:
        files, model_config = resolve_model_files(model_dir)
        load_model_dir(model_dir)  # every part must agree before any work is done
    except ModelDirError as e:
        raise FinetuneError(str(e)) from None
    output_dir = os.path.abspath(os.fspath(output_dir))
    token_list = files.token_list
    if token_list is None:  # a 2023 config.yaml holding the list itself
        token_list = os.path.join(output_dir, "data", "tokens.txt")
        os.makedirs(os.path.dirname(token_list), exist_ok=True)
        write_token_list(token_list, [str(t) for t in model_config["token_list"]])
    lfr_n = int((model_config.get("frontend_conf") or {}).get("lfr_n", 1))
    data = os.path.join(output_dir, "data")
    train_data = os.path.join(data, "train", "shards.list") if dataset_type == "large" else os.path.join(data, "train")
    try:
        config = resolve_training_config(
            files.config,
            finetune_overrides(max_epoch=max_epoch, lr=lr, batch_bins=batch_bins, dataset_type=dataset_type,
                               lfr_n=lfr_n, num_avg=num_avg, user=overrides),
            token_list=token_list, cmvn_file=files.cmvn, train_data=train_data,
            valid_data=os.path.join(data, "validation"), output_dir=output_dir, init_param=files.weights,
        )
    except ConfigError as e:
        raise FinetuneError(str(e)) from None
    if files.bpe_model:
        config.setdefault("tokenizer_conf", {})["bpemodel"] = files.bpe_model
    return config


# ---------------------------------------------------------------------- data


def _frontend(config: Dict[str, Any], with_cmvn: bool = False) -> WavFrontend:
    return WavFrontend(config["frontend_conf"], config["cmvn_file"] if with_cmvn else None, source="the model's config.yaml")


def check_data(config: Dict[str, Any], data_dir, *, resample: bool = True) -> Dict[str, Dict[str, int]]:
    """Check ``<data_dir>/{train,validation}`` into ``<out>/data/<split>``; print and log the counts.

    Returns {split: counts}. Raises DataCheckError when no training utterance is usable.
    """
    tokenizer = build_tokenizer(config["token_list"], (config.get("tokenizer_conf") or {}).get("bpemodel"))
    frontend = _frontend(config)
    dataset_conf = config["dataset_conf"]
    limits = {key: int(dataset_conf[key]) for key in ("min_frames", "max_frames", "min_tokens", "max_tokens")}
    counts = {}
    for split in SPLITS:
        report = check_split(os.path.join(os.fspath(data_dir), split), tokenizer, frontend, name=split,
                             resample=resample, **limits)
        log_report(report)
        for line in report.lines():
            print(line, flush=True)
        counts[split] = summary_counts(report)
        if split == "train" and not report.kept:
            raise DataCheckError(f"{report.data_dir}: no usable training utterance (see the lines above)")
        write_checked_dir(report, os.path.join(config["output_dir"], "data", split))
    return counts


def make_features(config: Dict[str, Any], split_dir: str) -> None:
    """Kaldi fbank of a checked split by the model's frontend (dither 0) into the split dir."""
    frontend = _frontend(config)
    summary = extract_fbank_job(
        os.path.join(split_dir, "wav.scp"), os.path.join(split_dir, "feats.ark"), os.path.join(split_dir, "feats.scp"),
        os.path.join(split_dir, "utt2num_frames"), frontend)
    write_fbank_options(os.path.join(split_dir, FBANK_OPTIONS_FILE), frontend.fbank_options())
    logger.info("%s features: %s", split_dir, summary.describe())


def prepare_data(config: Dict[str, Any], data_dir, *, dataset_type: str = "small", resample: bool = True,
                 shard_size: int = 1000, nj: int = 1) -> Dict[str, Any]:
    """Check the data, then features (small) or shards (large); leaves ``<out>/data/.prepared``.

    A rerun with the same data and settings reuses what is there.
    """
    data = os.path.join(config["output_dir"], "data")
    marker = os.path.join(data, PREPARED_MARKER)
    settings = {"data_dir": os.path.abspath(os.fspath(data_dir)), "dataset_type": dataset_type, "resample": resample,
                "frontend_conf": config["frontend_conf"], "token_list": config["token_list"],
                "limits": {k: config["dataset_conf"][k] for k in ("min_frames", "max_frames", "min_tokens", "max_tokens")}}
    if os.path.isfile(marker):
        with open(marker, encoding="utf-8") as f:
            previous = json.load(f)
        if previous.get("settings") == json.loads(json.dumps(settings)):
            logger.info("%s: data already prepared with these settings", data)
            return previous
        os.unlink(marker)
    counts = check_data(config, data_dir, resample=resample)
    for split in SPLITS:
        split_dir = os.path.join(data, split)
        if not counts[split]["kept"]:
            continue
        if split == "train" and dataset_type == "large":
            from funasr_lite.data.shards import write_shards

            write_shards(split_dir, os.path.join(split_dir, "shards"), os.path.join(split_dir, "shards.list"),
                         frontend=_frontend(config), utts_per_shard=shard_size, nj=nj)
        else:
            make_features(config, split_dir)
    record = {"settings": settings, "counts": counts}
    with open(marker + ".tmp", "w", encoding="utf-8") as f:
        json.dump(record, f, ensure_ascii=False, indent=1)
    os.replace(marker + ".tmp", marker)
    return record


def wait_for_prepared(output_dir, timeout_s: float = PREPARE_WAIT_S) -> Dict[str, Any]:
    """Ranks > 0: wait until rank 0 has prepared the data."""
    marker = os.path.join(os.fspath(output_dir), "data", PREPARED_MARKER)
    start = time.monotonic()
    while not os.path.isfile(marker):
        if time.monotonic() - start > timeout_s:
            raise FinetuneError(f"{marker}: not written by rank 0 within {timeout_s:.0f} s")
        time.sleep(1.0)
    with open(marker, encoding="utf-8") as f:
        return json.load(f)


# ---------------------------------------------------------------------- the run


def run_finetune(model_dir, data_dir, output_dir, *, dataset_type: str = "small", batch_bins: int = 2000,
                 max_epoch: int = 50, lr: float = 5e-5, num_avg: int = 5, overrides: Sequence[str] = (),
                 resample: bool = True, shard_size: int = 1000, nj: int = 1, device: str = "auto",
                 prepare_only: bool = False) -> Optional[str]:
    """Fine-tune ``model_dir`` on ``data_dir`` into ``output_dir`` (see module docstring).

    Returns the written model dir (rank 0) or None (other ranks, or ``prepare_only``: steps 1-3).
    """
    from funasr_lite.train.engine import final_model_name
    from funasr_lite.train.tasks.asr import run_training

    rank = int(os.environ.get("RANK", "0"))
    config = resolve_finetune_config(model_dir, output_dir, dataset_type=dataset_type, batch_bins=batch_bins,
                                     max_epoch=max_epoch, lr=lr, num_avg=num_avg, overrides=overrides)
    if rank == 0:
        prepared = prepare_data(config, data_dir, dataset_type=dataset_type, resample=resample,
                                shard_size=shard_size, nj=nj)
    else:
        prepared = wait_for_prepared(config["output_dir"])
    if prepare_only:
        return None
    if not prepared["counts"]["validation"]["kept"]:
        logger.warning("%s/validation: no usable utterance; training without validation (the newest epochs are "
                       "averaged)", data_dir)
        config["valid_data"] = None
    run_training(config, resume=True, device=device)
    if rank != 0:
        return None
    averaged = final_model_name(num_avg)
    checkpoint = averaged if num_avg > 0 and os.path.isfile(os.path.join(config["output_dir"], averaged)) else None
    out = export_model_dir(config["output_dir"], os.path.join(config["output_dir"], MODEL_DIR_NAME), checkpoint)
    logger.info("fine-tuned model dir: %s", out)
    return out


__all__ = [
    "DATASET_TYPES", "FINETUNE_DEFAULTS", "FinetuneError", "MODEL_DIR_NAME", "check_data", "finetune_overrides",
    "make_features", "prepare_data", "resolve_finetune_config", "run_finetune",
]
