"""The self-supervised pretraining task: data2vec (``model: data2vec``) on audio without transcripts.

:func:`run_pretraining` trains the experiment a resolved config describes
(:func:`funasr_lite.train.config.resolve_training_config`; no token list) with the engine
(:mod:`funasr_lite.train.engine`: outputs, final ``model.avg{N}.pt``, resume, retention), the way
FunASR 0.x's pretraining recipe (``egs/aishell2/data2vec_pretrain``) trained it:

- Data: a Kaldi data dir's ``feats.scp`` + ``utt2num_frames`` through the ASR task's dataset in its
  text-free mode (``AsrDataset(tokenizer=None)``: ``text`` is neither needed nor read), the ASR
  task's frame batching (``FrameBatchSampler``: padded model-input frames per batch, length
  buckets, per-(seed, epoch) order). Tar shards are refused (they carry transcripts).
- Loss: the model's (``model(speech, speech_lengths) -> (loss per masked frame, stats, masked
  frames)``).
- The EMA teacher: :meth:`PretrainTask.on_update` calls ``model.set_num_updates(step)`` before
  training and after every optimizer update, as FunASR 0.x's trainer did, so the teacher's decay
  anneals from ``ema_decay`` to ``ema_end_decay`` over ``ema_anneal_end_step`` updates (FunASR
  1.x's trainer never calls it). The teacher is not a model weight (FunASR's layout, so
  ``model.avg{N}.pt`` is FunASR's too); the training checkpoints carry it under ``task``
  (:meth:`training_state`), so a resumed run continues with the same teacher and equals an
  uninterrupted one. FunASR saves no teacher: its resumed runs start a new one from the student.
- Validation: the pretraining loss (and target/prediction variance) on a held-out data dir, with
  the same masks every epoch (each batch's mask drawn from ``numpy.random.RandomState(seed +
  batch number)``), so epochs are compared on one set of masked frames. The targets still come
  from the current teacher: the loss is a moving target, not an absolute measure.
- ``scheduler: tri_stage`` without ``scheduler_conf.max_update`` takes ``train_conf.max_steps``.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Dict, Optional

import numpy as np
import torch

from funasr_lite.data.dataset import build_dataset
from funasr_lite.train.distributed import DistributedContext
from funasr_lite.train.engine import StatsAccumulator, StepCallback, run_task, stat_value
from funasr_lite.train.tasks.asr import AsrTask
from funasr_lite.utils.config import PRETRAINING_MODELS, ConfigError
from funasr_lite.utils.progress import progress

logger = logging.getLogger(__name__)

# Config entries that must not change between a run and its resumption.
RESUME_MUST_MATCH = ("model", "encoder", "encoder_conf", "frontend_conf", "optim", "optim_conf", "scheduler",
                     "scheduler_conf", "seed")


def is_pretraining(config: Dict[str, Any]) -> bool:
    """True for a config this task trains (``model: data2vec``)."""
    return config.get("model") in PRETRAINING_MODELS


class PretrainTask(AsrTask):
    """Audio without transcripts -> a pretrained data2vec encoder (module docstring)."""

    name = "pretraining"
    METRICS = {"loss": True}
    RESUME_MUST_MATCH = RESUME_MUST_MATCH

    def check_train_conf(self, train_conf: Dict[str, Any]) -> None:
        pass  # validate_cer is an ASR option; best_metric is checked by the engine against METRICS

    def setup(self, context: DistributedContext, exp_dir: str) -> None:
        config = self.config
        self.device = context.device
        self.exp_dir, self.is_main = exp_dir, context.is_main
        if os.path.isfile(config["train_data"]):
            raise ConfigError(f"train_data {config['train_data']}: pretraining reads a data dir (feats.scp), "
                              "not tar shards")
        frontend_conf = config["frontend_conf"]
        self.train_set = build_dataset(config["train_data"], None, config["cmvn_file"], frontend_conf,
                                       self.dataset_conf)
        if config.get("valid_data"):
            self.valid_set = build_dataset(config["valid_data"], None, config["cmvn_file"], frontend_conf,
                                           self.dataset_conf)

    def build_model(self) -> torch.nn.Module:
        from funasr_lite.models import build_model

        model = self.model_builder(self.config) if self.model_builder is not None else build_model(self.config)
        if not hasattr(model, "set_num_updates"):
            raise ConfigError(f"model {self.config.get('model')!r}: the pretraining task needs a model with "
                              "set_num_updates (data2vec)")
        return model

    # ---------------------------------------------------------------- per-update state

    def on_update(self, model, num_updates: int) -> None:
        model.set_num_updates(num_updates)

    def training_state(self, model) -> Dict[str, Any]:
        teacher = model.encoder.teacher_state()
        return {} if teacher is None else {"teacher": teacher}

    def load_training_state(self, model, state: Dict[str, Any]) -> None:
        model.encoder.load_teacher_state(state.get("teacher"))

    # ---------------------------------------------------------------- batches

    def _speech(self, batch: Dict[str, Any]):
        non_blocking = self.device.type == "cuda"
        return (batch["speech"].to(self.device, non_blocking=non_blocking),
                batch["speech_lengths"].to(self.device, non_blocking=non_blocking))

    def compute_loss(self, model, batch):
        speech, speech_lengths = self._speech(batch)
        return model(speech, speech_lengths)

    # ---------------------------------------------------------------- validation

    def progress_metric(self, train_conf: Dict[str, Any]) -> str:
        return "loss"

    def validate(self, model, autocast) -> Dict[str, float]:
        """The pretraining loss and variances over the validation set (fixed masks), all ranks."""
        stats = StatsAccumulator()
        base = int(self.config["seed"]) * 100003 + self.context.rank * 1000003
        for index, batch in enumerate(progress(self.valid_loader, desc="valid", unit="batch")):
            speech, speech_lengths = self._speech(batch)
            with autocast():
                _, batch_stats, weight = model(speech, speech_lengths, rng=np.random.RandomState(base + index))
            batch_stats = {key: value for key, value in batch_stats.items() if key != "ema_decay"}
            stats.add(batch_stats, float(stat_value(weight) or 1.0))
        total = StatsAccumulator()
        for sums, weights in self.context.all_gather_object((stats.sums, stats.weights)):
            total.merge(sums, weights)
        return total.averages()


def resolve_pretraining_config(config: Dict[str, Any]) -> Dict[str, Any]:
    """Fill what the pretraining config may leave out: ``scheduler_conf.max_update`` of tri_stage
    from ``train_conf.max_steps``. Returns ``config`` (changed in place)."""
    if (config.get("scheduler") or "").lower() == "tri_stage":
        scheduler_conf = config.setdefault("scheduler_conf", {}) or {}
        config["scheduler_conf"] = scheduler_conf
        if "max_update" not in scheduler_conf:
            max_steps = int(config["train_conf"]["max_steps"])
            if max_steps <= 0:
                raise ConfigError("scheduler tri_stage needs scheduler_conf.max_update or train_conf.max_steps "
                                  "(the run's optimizer updates)")
            scheduler_conf["max_update"] = max_steps
    return config


def run_pretraining(
    config: Dict[str, Any],
    *,
    resume: bool = True,
    device: str = "auto",
    model_builder=None,
    step_callback: Optional[StepCallback] = None,
) -> bool:
    """Pretrain the experiment of a resolved ``config`` into ``config["output_dir"]`` (alone or
    under torchrun). Returns False when ``<exp>/train.done`` said there was nothing to do."""
    if not config.get("output_dir"):
        raise ValueError("config has no output_dir")
    if not is_pretraining(config):
        raise ConfigError(f"model {config.get('model')!r} is not a pretraining model ({', '.join(PRETRAINING_MODELS)})")
    task = PretrainTask(resolve_pretraining_config(config), model_builder)
    result = run_task(task, config, config["output_dir"], resume=resume, device=device, step_callback=step_callback)
    return result.trained


__all__ = ["PretrainTask", "RESUME_MUST_MATCH", "is_pretraining", "resolve_pretraining_config", "run_pretraining"]
