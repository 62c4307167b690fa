"""The training engine: ONE epoch driver for every model family (ASR, LM, punctuation, ...).

A *task* (:class:`funasr_lite.train.task.Task`) says what differs: the data and its batches, the
model, the loss of a batch, the validation metric and any extra output. The engine owns the rest,
the same for every task: one process or ``torchrun`` DDP, resume, epoch order, the non-finite
policy, validation, best-epoch ranking, checkpoint retention, the logs and the final model.

Outputs under ``<exp>`` (rank 0 writes everything):
  config.yaml            the resolved config (what decoding / loading reads; the task may lay it out)
  train.log              text log (appended on resume), with ``[progress]`` lines (epoch, batch,
                         step, elapsed, ETA, last validation result) the job runner shows on a terminal
  tensorboard/           scalars: train/<loss parts>, train/lr, train/grad_norm, train/<unit>_per_s
                         (every ``log_interval`` updates), valid/<metric> (every epoch)
  epochs.jsonl           one JSON record per epoch: train averages over the epoch, validation
                         metrics, lr, seconds, skipped updates (``egs/aishell1/local/plot_curves.py``)
  epoch_N.pt             full state at the end of epoch N (retention below)
  checkpoint_latest.pt   full state of the newest save (epoch end, or every ``save_every_steps``)
  best.json              validation history and the ranking by ``train_conf.best_metric``
  model.avg{N}.pt        THE FINAL MODEL (rule below)
  train.done             written last: ``epoch E step S``

The final-model rule (one for every task): at the end of training the engine writes
``<exp>/model.avg{N}.pt``, N = ``train_conf.avg_nbest_model``: the element-wise mean of the model
weights of the N best epochs by the task's validation metric (``best_metric``), a plain state dict.
N = 1 is the best epoch's weights as they are. Without a validation set the newest N epochs count as
the best. N = 0 writes no final model. A task that must also publish a model dir in another layout
(punctuation: FunASR's ``model.pt``) does so in :meth:`Task.export` from this file.

Retention (one policy): after each epoch ``epoch_N.pt`` files are deleted unless among the
``train_conf.keep_nbest_models`` best epochs (by ``best_metric``) or the newest; 0 keeps all.

Non-finite policy (one): an update whose loss (on any rank) or gradient norm is not finite is
skipped (no optimizer step, no scheduler step, gradients dropped), logged with the ids of the
batch's items and counted (``nonfinite_total`` in the checkpoint, ``skipped_updates`` per epoch in
epochs.jsonl); more than ``train_conf.max_consecutive_nonfinite`` skipped updates in a row raise
:class:`NonFiniteLossError`.

Resume (one mechanism): a run finds ``<exp>/checkpoint_latest.pt`` and continues from it exactly:
model, optimizer, scheduler, grad scaler, batch-sampler position (mid-epoch too), epoch/step,
every rank's RNG states, validation history, and the task's own training state (``task``:
data2vec's EMA teacher; :meth:`Task.training_state`), which the final model never holds. The config keys the task lists in
``RESUME_MUST_MATCH`` must equal those of ``<exp>/config.yaml`` (else :class:`ResumeMismatchError`);
other differences are warnings. ``train.done`` makes a rerun a no-op while its epoch/step already
reach ``max_epoch``/``max_steps``; a rerun with a larger ``max_epoch`` continues the experiment.

Seeding (one rule): seed ``seed``; the task reads its data and builds the model (the same initial
weights on every rank); seed ``seed + rank`` (different dropout/augmentation draws per rank).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch

from funasr_lite.train.average import average_best_checkpoints, final_model_name, write_best
from funasr_lite.train.checkpoint import (
    capture_rng_state,
    epoch_checkpoint_name,
    link_or_copy,
    load_checkpoint,
    load_encoder_weights,
    load_matching_weights,
    remove_stale_checkpoint_temps,
    restore_rng_state,
    save_checkpoint,
    seed_everything,
)
from funasr_lite.train.distributed import DistributedContext, init_distributed, shutdown_distributed, wrap_ddp
from funasr_lite.train.optim import build_optimizer, freeze_parameters
from funasr_lite.train.scheduler import build_scheduler
from funasr_lite.train.task import Task
from funasr_lite.train.train_log import (
    EPOCHS_FILE,
    LOG_FORMAT,
    RunProgress,
    append_epoch_record,
    experiment_logging,
    read_epoch_records,
    tensorboard_writer,
)
from funasr_lite.utils.config import TRAIN_CONF_SCHEMA, config_differences, read_config, write_config
from funasr_lite.utils.progress import progress

logger = logging.getLogger(__name__)

LATEST_CHECKPOINT = "checkpoint_latest.pt"
DONE_MARKER = "train.done"
CONFIG_FILE = "config.yaml"
# A [progress] line at least this often (besides every log_interval steps and each epoch end).
PROGRESS_EVERY_S = 60.0
# The engine's train_conf keys and defaults (utils.config's schema, which the ASR config is checked
# against, minus validate_cer: that one is the ASR task's). Tasks add their own batching keys.
ENGINE_TRAIN_CONF: Dict[str, Any] = {key: default for key, (default, _) in TRAIN_CONF_SCHEMA.items()
                                     if key != "validate_cer"}

StepCallback = Callable[[Dict[str, Any]], None]


class NonFiniteLossError(RuntimeError):
    """Too many consecutive updates had a non-finite loss or gradient."""


class ResumeMismatchError(ValueError):
    """The experiment to resume was trained with a different value of a key that must match."""


def stat_value(value: Any) -> Optional[float]:
    """A stat or weight as a float (a tensor's mean); None for None or an empty tensor."""
    if value is None:
        return None
    if torch.is_tensor(value):
        return float(value.detach().float().mean()) if value.numel() else None
    return float(value)


class StatsAccumulator:
    """Weighted sums of the stats dicts a task's loss returns, for averages over many batches."""

    def __init__(self):
        self.sums: Dict[str, float] = {}
        self.weights: Dict[str, float] = {}

    def add(self, stats: Dict[str, Any], weight: float) -> None:
        for key, value in stats.items():
            number = stat_value(value)
            if number is None or not math.isfinite(number):
                continue
            self.sums[key] = self.sums.get(key, 0.0) + number * weight
            self.weights[key] = self.weights.get(key, 0.0) + weight

    def merge(self, other_sums: Dict[str, float], other_weights: Dict[str, float]) -> None:
        for key, value in other_sums.items():
            self.sums[key] = self.sums.get(key, 0.0) + value
            self.weights[key] = self.weights.get(key, 0.0) + other_weights[key]

    def averages(self) -> Dict[str, float]:
        return {key: self.sums[key] / self.weights[key] for key in self.sums if self.weights[key] > 0}


class Engine:
    """Trains ``task``'s model: optimizer, scheduler, batches, checkpoints and bookkeeping.

    Args:
        task: what is trained (set up: its data read, see :func:`run_task`).
        model: the task's bare model (moved to the device here, wrapped in DDP by :meth:`fit`).
        config: the resolved config: ``seed``, ``optim``/``optim_conf``, ``scheduler``/
            ``scheduler_conf``, ``train_conf`` (:data:`ENGINE_TRAIN_CONF` keys + the task's).
        context: distributed context (rank, world size, device).
        exp_dir: where the outputs go (module docstring).
        step_callback: called on every rank after each optimizer update with a dict
            (step, epoch, loss, lr, grad_norm, utt_ids); for tests and external monitoring.
    """

    def __init__(
        self,
        task: Task,
        model: torch.nn.Module,
        config: Dict[str, Any],
        context: DistributedContext,
        exp_dir: str,
        step_callback: Optional[StepCallback] = None,
    ):
        self.task = task
        self.config = config
        self.context = context
        self.device = context.device
        self.step_callback = step_callback
        self.exp_dir = exp_dir
        self.train_conf = config["train_conf"]
        best_metric = self.train_conf["best_metric"]
        if best_metric not in task.METRICS:
            raise ValueError(f"train_conf.best_metric {best_metric!r}: {task.name} validation gives {sorted(task.METRICS)}")
        self.lower_is_better = bool(task.METRICS[best_metric])
        task.check_train_conf(self.train_conf)

        self.raw_model = model.to(self.device)
        # Wrapped in DDP by fit(), after the memory check has shown which parameters get gradients.
        self.model: torch.nn.Module = self.raw_model
        self.unused_parameters: List[str] = []
        self.optimizer = build_optimizer(
            [p for p in self.raw_model.parameters() if p.requires_grad], config["optim"], config.get("optim_conf")
        )
        self.scheduler = build_scheduler(self.optimizer, config.get("scheduler"), config.get("scheduler_conf"))

        precision = self.train_conf["precision"]
        if precision != "fp32" and self.device.type != "cuda":
            logger.warning("train_conf.precision=%s needs a GPU; training in fp32 on %s", precision, self.device)
            precision = "fp32"
        self.autocast_dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
        self.scaler = torch.amp.GradScaler("cuda") if precision == "fp16" else None

        # The sampler: epoch, position, set_epoch, advance, len, state_dict/load_state_dict (see Task).
        self.train_sampler, self.train_loader = task.train_batches(context)
        task.prepare_validation(context)

        self.global_step = 0
        self.consecutive_nonfinite = 0
        self.nonfinite_total = 0
        self.nonfinite_at_epoch_start = 0
        self.history: List[Dict[str, Any]] = []
        self.writer = tensorboard_writer(self.exp_dir, context.is_main)
        self.run_progress = RunProgress()
        self.epoch_stats = StatsAccumulator()  # train averages of the current epoch (epochs.jsonl)
        self.epoch_seconds = 0.0

    # ------------------------------------------------------------------ state

    def state_dict(self) -> Dict[str, Any]:
        """The full training state of this moment; a collective call (gathers RNG states)."""
        rng_states = self.context.all_gather_object(capture_rng_state())
        state = {
            "model": self.raw_model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler is not None else {},
            "sampler": self.train_sampler.state_dict(),
            "epoch": self.train_sampler.epoch,
            "step": self.global_step,
            "rng": rng_states,
            "world_size": self.context.world_size,
            "history": self.history,
            "nonfinite_total": self.nonfinite_total,
        }
        task_state = self.task.training_state(self.raw_model)
        if task_state:  # only a task with state of its own (data2vec's teacher): the others' checkpoints are as before
            state["task"] = task_state
        return state

    def load_state_dict(self, state: Dict[str, Any], source: str) -> None:
        self.raw_model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.train_sampler.load_state_dict(state["sampler"])
        self.global_step = int(state["step"])
        self.task.load_training_state(self.raw_model, state.get("task") or {})
        self.history = list(state.get("history", []))
        self.nonfinite_total = int(state.get("nonfinite_total", 0))
        rng_states = state.get("rng") or []
        if len(rng_states) == self.context.world_size:
            restore_rng_state(rng_states[self.context.rank])
        else:
            logger.warning(
                "%s was written by %d process(es), this run has %d: RNG streams are re-seeded, "
                "so the continuation is not bit-exact",
                source,
                len(rng_states),
                self.context.world_size,
            )
            seed_everything(int(self.config["seed"]) + self.global_step + self.context.rank)
        logger.info(
            "resumed from %s: epoch %d, batch %d of the epoch, step %d",
            source,
            self.train_sampler.epoch,
            self.train_sampler.position,
            self.global_step,
        )

    def save(self, path: str) -> None:
        """Write the full state to ``path`` (rank 0) atomically; all ranks must call this."""
        state = self.state_dict()
        if self.context.is_main:
            save_checkpoint(state, path)
            logger.info("saved %s (epoch %d, step %d)", path, state["epoch"], state["step"])

    # ------------------------------------------------------------------ one batch

    def autocast(self):
        """The mixed-precision context of the forward passes (a no-op in fp32)."""
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.autocast_dtype)

    def _forward(self, batch: Any, model: torch.nn.Module):
        """-> (loss, stats, weight) of the task's loss under autocast."""
        with self.autocast():
            return self.task.compute_loss(model, batch)

    def _agree_finite(self, loss: torch.Tensor, units: float) -> Tuple[bool, float]:
        """(all ranks' losses finite, batch units over all ranks): one small all-reduce."""
        flags = torch.tensor([0.0 if torch.isfinite(loss.detach()).all() else 1.0, float(units)], dtype=torch.float64)
        flags = self.context.all_reduce_sum(flags)
        return bool(flags[0] == 0), float(flags[1])

    def _backward(self, loss: torch.Tensor, sync: bool) -> None:
        scaled = loss / self.train_conf["accum_grad"]
        if self.scaler is not None:
            scaled = self.scaler.scale(scaled)
        if self.context.is_distributed and not sync:
            with self.model.no_sync():
                scaled.backward()
        else:
            scaled.backward()

    def _optimizer_step(self) -> Tuple[bool, float]:
        """Clip and step; -> (stepped, grad norm). A non-finite grad norm skips the update."""
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        max_norm = self.train_conf["grad_clip"]
        if max_norm is None or max_norm <= 0:
            max_norm = float("inf")
        grad_norm = float(
            torch.nn.utils.clip_grad_norm_(
                [p for p in self.raw_model.parameters() if p.grad is not None],
                max_norm,
                norm_type=self.train_conf["grad_clip_type"],
            )
        )
        stepped = math.isfinite(grad_norm)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)  # skips by itself on inf/nan gradients
            self.scaler.update()
        elif stepped:
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return stepped, grad_norm

    def _record_nonfinite(self, item_ids: Sequence[str], what: str) -> None:
        """The non-finite policy (module docstring): count, log, abort after too many in a row."""
        self.consecutive_nonfinite += 1
        self.nonfinite_total += 1
        items = self.task.ITEM_NAME
        logger.warning(
            "non-finite %s at step %d (epoch %d): update skipped (%d in a row, %d in all); %s: %s",
            what,
            self.global_step + 1,
            self.train_sampler.epoch,
            self.consecutive_nonfinite,
            self.nonfinite_total,
            items,
            " ".join(item_ids[:20]) + (" ..." if len(item_ids) > 20 else ""),
        )
        limit = self.train_conf["max_consecutive_nonfinite"]
        if self.consecutive_nonfinite > limit:
            raise NonFiniteLossError(
                f"{self.consecutive_nonfinite} consecutive updates had a non-finite {what} "
                f"(train_conf.max_consecutive_nonfinite={limit}); last {items}: {' '.join(item_ids[:20])}"
            )

    # ------------------------------------------------------------------ OOM probe

    def probe_largest_batches(self) -> None:
        """Forward+backward the task's costliest batches once so an out-of-memory shows at once.

        Runs on the bare model (before DDP wrapping) and records in ``unused_parameters`` the
        trainable parameters that got no gradient. Not a training step: gradients are dropped,
        and model buffers (e.g. BatchNorm statistics), the task's training state (data2vec's
        teacher) and RNG states are restored, so the training that follows is unchanged.
        """
        rng_state = capture_rng_state()
        buffers = {name: buffer.detach().clone() for name, buffer in self.raw_model.named_buffers()}
        task_state = self.task.training_state(self.raw_model)
        self.model.train()
        batch: Any = None
        try:
            for batch in self.task.probe_batches(self.train_sampler):
                loss, _, _ = self._forward(batch, self.model)
                finite, _ = self._agree_finite(loss, self.task.batch_units(batch))
                if finite:
                    self._backward(loss, sync=True)
                if finite:
                    self.unused_parameters = [
                        name for name, p in self.raw_model.named_parameters() if p.requires_grad and p.grad is None
                    ]
                logger.info(
                    "memory check: %s ran forward+backward%s",
                    self.task.describe_batch(batch),
                    "" if finite else " (loss not finite: backward skipped)",
                )
        except torch.OutOfMemoryError as e:
            raise RuntimeError(
                f"out of memory on one of the largest batches ({self.task.describe_batch(batch)}): "
                f"{self.task.batch_size_advice()}. {e}"
            ) from None
        finally:
            self.optimizer.zero_grad(set_to_none=True)
            with torch.no_grad():
                for name, buffer in self.raw_model.named_buffers():
                    buffer.copy_(buffers[name])
            self.task.load_training_state(self.raw_model, task_state)
            restore_rng_state(rng_state)
            if self.device.type == "cuda":
                torch.cuda.empty_cache()

    def wrap_distributed(self) -> None:
        """Wrap the model in DDP (multi-process runs). Parameters without gradients (seen by the
        memory check on any rank) switch on ``find_unused_parameters``, else DDP would fail."""
        if not self.context.is_distributed or self.model is not self.raw_model:
            return
        find_unused = self.train_conf["find_unused_parameters"]
        unused_anywhere = int(self.context.all_reduce_sum(torch.tensor([len(self.unused_parameters)]))[0])
        if unused_anywhere and not find_unused:
            logger.warning(
                "parameters without gradients (e.g. %s): DDP runs with find_unused_parameters=True "
                "(set train_conf.find_unused_parameters to silence this)",
                ", ".join(self.unused_parameters[:3]) or "on another rank",
            )
            find_unused = True
        self.model = wrap_ddp(self.raw_model, self.context, find_unused)

    # ------------------------------------------------------------------ training

    def _current_lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def _log_train(
        self, epoch: int, stats: StatsAccumulator, lr: float, grad_norm: float, units: float, seconds: float
    ) -> None:
        averages = self.task.derived_metrics(stats.averages())
        units_per_s = units / seconds if seconds > 0 else 0.0
        parts = " ".join(f"{key} {value:.4g}" for key, value in averages.items())
        logger.info(
            "epoch %d step %d [%d/%d] %s lr %.3e grad_norm %.3g %s",
            epoch,
            self.global_step,
            self.train_sampler.position,
            len(self.train_sampler),
            parts,
            lr,
            grad_norm,
            self.task.describe_throughput(units_per_s),
        )
        if self.writer is not None:
            for key, value in averages.items():
                self.writer.add_scalar(f"train/{key}", value, self.global_step)
            self.writer.add_scalar("train/lr", lr, self.global_step)
            self.writer.add_scalar("train/grad_norm", grad_norm, self.global_step)
            self.writer.add_scalar(f"train/{self.task.UNIT}_per_s", units_per_s, self.global_step)

    def _batches_left(self, epoch: int, position: Optional[int] = None) -> int:
        """Batches still to train in the run (this epoch's rest from ``position``, by default the
        sampler's, and the later epochs), capped by what ``max_steps`` leaves."""
        per_epoch = len(self.train_sampler)
        done = self.train_sampler.position if position is None else position
        left = per_epoch - done + (self.train_conf["max_epoch"] - epoch) * per_epoch
        max_steps = self.train_conf["max_steps"]
        if max_steps:
            left = min(left, (max_steps - self.global_step) * self.train_conf["accum_grad"])
        return max(0, left)

    def log_progress(self, epoch: int, batches_left: Optional[int] = None, in_epoch: bool = True) -> None:
        """Log the ``[progress]`` line: epoch/batch/step, elapsed, ETA, the last validation result."""
        if not self.context.is_main:
            return
        metric = self.task.progress_metric(self.train_conf)
        validated = [entry for entry in self.history if entry.get(metric) is not None]
        logger.info(
            "%s",
            self.run_progress.message(
                epoch,
                self.train_conf["max_epoch"],
                self._batches_left(epoch) if batches_left is None else batches_left,
                position=self.train_sampler.position if in_epoch else None,
                epoch_batches=len(self.train_sampler),
                step=self.global_step,
                last_valid=validated[-1] if validated else None,
                metric=metric,
            ),
        )

    def train_epoch(self, epoch: int) -> bool:
        """Train the rest of ``epoch``; -> True when max_steps was reached (training should stop)."""
        accum_grad = self.train_conf["accum_grad"]
        log_interval = self.train_conf["log_interval"]
        save_every = self.train_conf["save_every_steps"]
        max_steps = self.train_conf["max_steps"]
        total = len(self.train_sampler)
        self.model.train()
        interval_stats = StatsAccumulator()
        interval_units = 0.0
        interval_start = time.perf_counter()
        window_losses: List[float] = []
        window_ids: List[str] = []
        window_skip = False
        bar = progress(total=total, initial=self.train_sampler.position, desc=f"epoch {epoch}", unit="batch")
        try:
            for batch in self.train_loader:
                self.train_sampler.advance()
                position = self.train_sampler.position
                boundary = position % accum_grad == 0 or position == total
                window_ids.extend(self.task.batch_ids(batch))
                units = self.task.batch_units(batch)
                if window_skip:
                    _, all_units = self._agree_finite(torch.zeros(()), units)
                else:
                    loss, stats, weight = self._forward(batch, self.model)
                    finite, all_units = self._agree_finite(loss, units)
                    if finite:
                        self._backward(loss, sync=boundary)
                        window_losses.append(float(loss.detach()))
                        interval_stats.add(stats, float(stat_value(weight) or 1.0))
                        self.epoch_stats.add(stats, float(stat_value(weight) or 1.0))
                    else:
                        window_skip = True
                        self.optimizer.zero_grad(set_to_none=True)
                interval_units += all_units
                bar.update(1)
                self.run_progress.batch_done()
                if not boundary:
                    continue

                if window_skip:
                    self.optimizer.zero_grad(set_to_none=True)
                    self._record_nonfinite(window_ids, "loss")
                    stepped, grad_norm = False, float("nan")
                else:
                    stepped, grad_norm = self._optimizer_step()
                    if not stepped:
                        self._record_nonfinite(window_ids, "gradient")
                if stepped:
                    self.consecutive_nonfinite = 0
                    self.global_step += 1
                    lr_used = self._current_lr()
                    self.scheduler.step()
                    self.task.on_update(self.raw_model, self.global_step)
                    if self.step_callback is not None:
                        self.step_callback(
                            {
                                "step": self.global_step,
                                "epoch": epoch,
                                "loss": sum(window_losses) / len(window_losses),
                                "lr": lr_used,
                                "grad_norm": grad_norm,
                                "utt_ids": list(window_ids),
                            }
                        )
                    if self.global_step % log_interval == 0:
                        now = time.perf_counter()
                        self._log_train(epoch, interval_stats, lr_used, grad_norm, interval_units, now - interval_start)
                        interval_stats, interval_units, interval_start = StatsAccumulator(), 0.0, now
                        self.log_progress(epoch)
                    elif self.run_progress.due(PROGRESS_EVERY_S):
                        self.log_progress(epoch)
                    if save_every and self.global_step % save_every == 0 and position < len(self.train_sampler):
                        self.save(os.path.join(self.exp_dir, LATEST_CHECKPOINT))
                window_losses, window_ids, window_skip = [], [], False
                if max_steps and self.global_step >= max_steps:
                    logger.info("reached train_conf.max_steps=%d", max_steps)
                    return True
        finally:
            bar.close()
        return False

    # ------------------------------------------------------------------ validation

    @torch.no_grad()
    def validate(self) -> Dict[str, float]:
        """The task's validation metrics (summed over ranks by the task), in eval mode; the
        training's random stream is left as it was."""
        if not self.task.has_validation():
            return {}
        rng_state = capture_rng_state()  # validation must not shift the training's random stream
        self.raw_model.eval()
        try:
            return self.task.validate(self.raw_model, self.autocast)
        finally:
            self.raw_model.train()
            restore_rng_state(rng_state)

    # ------------------------------------------------------------------ epoch end

    def ranking(self) -> List[Dict[str, Any]]:
        """Epochs best first by ``best_metric`` (ties: the newer first); without validation
        results, newest first."""
        metric = self.train_conf["best_metric"]
        scored = [entry for entry in self.history if entry.get(metric) is not None and math.isfinite(entry[metric])]
        if not scored:  # no validation set: the newest epochs count as the best
            ordered = sorted(self.history, key=lambda e: -e["epoch"])
            return [{"epoch": e["epoch"], metric: None, "checkpoint": epoch_checkpoint_name(e["epoch"])} for e in ordered]
        sign = 1.0 if self.lower_is_better else -1.0
        ranked = sorted(scored, key=lambda e: (sign * e[metric], -e["epoch"]))
        return [{"epoch": e["epoch"], metric: e[metric], "checkpoint": epoch_checkpoint_name(e["epoch"])} for e in ranked]

    def _epoch_train_averages(self) -> Dict[str, float]:
        """This epoch's training averages over all ranks (a collective call); resets them."""
        total = StatsAccumulator()
        for sums, weights in self.context.all_gather_object((self.epoch_stats.sums, self.epoch_stats.weights)):
            total.merge(sums, weights)
        self.epoch_stats = StatsAccumulator()
        return self.task.derived_metrics(total.averages())

    def end_epoch(self, epoch: int, metrics: Dict[str, float]) -> None:
        """Record validation, save epoch_N.pt (+ latest), update best.json and epochs.jsonl, prune
        old epochs (retention: module docstring)."""
        self.history = [entry for entry in self.history if entry["epoch"] != epoch]
        self.history.append({"epoch": epoch, "step": self.global_step, **metrics})
        train_averages = self._epoch_train_averages()
        if metrics:
            logger.info(
                "epoch %d validation: %s",
                epoch,
                " ".join(f"{key} {value:.4g}" for key, value in metrics.items()),
            )
        if self.context.is_main:
            append_epoch_record(self.exp_dir, {
                "epoch": epoch, "step": self.global_step, "seconds": round(self.epoch_seconds, 3),
                "lr": self._current_lr(), "train": train_averages, "valid": dict(metrics),
                "skipped_updates": self.nonfinite_total - self.nonfinite_at_epoch_start})
        self.log_progress(epoch, batches_left=self._batches_left(epoch, position=len(self.train_sampler)),
                          in_epoch=False)
        if self.writer is not None:
            for key, value in metrics.items():
                self.writer.add_scalar(f"valid/{key}", value, epoch)
            self.writer.flush()
        self.train_sampler.set_epoch(epoch + 1)  # the saved state continues at the next epoch
        epoch_path = os.path.join(self.exp_dir, epoch_checkpoint_name(epoch))
        self.save(epoch_path)
        if not self.context.is_main:
            return
        link_or_copy(epoch_path, os.path.join(self.exp_dir, LATEST_CHECKPOINT))
        ranking = self.ranking()
        keep = self.train_conf["keep_nbest_models"]
        write_best(
            self.exp_dir,
            {
                "metric": self.train_conf["best_metric"],
                "lower_is_better": self.lower_is_better,
                "ranking": ranking[:keep] if keep > 0 else ranking,
                "history": self.history,
            },
        )
        if keep > 0:
            kept = {entry["epoch"] for entry in ranking[:keep]} | {epoch}
            for entry in self.history:
                path = os.path.join(self.exp_dir, epoch_checkpoint_name(entry["epoch"]))
                if entry["epoch"] not in kept and os.path.exists(path):
                    os.unlink(path)
                    logger.info("removed %s (not among the %d best by %s)", path, keep, self.train_conf["best_metric"])

    # ------------------------------------------------------------------ the whole run

    def fit(self, resume_from: Optional[str] = None) -> None:
        if resume_from is not None:
            self.load_state_dict(load_checkpoint(resume_from), resume_from)
        self.task.on_update(self.raw_model, self.global_step)
        max_epoch = self.train_conf["max_epoch"]
        max_steps = self.train_conf["max_steps"]
        start_epoch = self.train_sampler.epoch
        finished = start_epoch > max_epoch or bool(max_steps and self.global_step >= max_steps)
        if not finished and self.train_conf["oom_check"]:
            self.probe_largest_batches()
        self.wrap_distributed()
        logger.info(
            "training %s on %d process(es), epochs %d..%d, %d batches per epoch per process",
            self.task.describe_data(),
            self.context.world_size,
            start_epoch,
            max_epoch,
            len(self.train_sampler),
        )
        self.run_progress = RunProgress()
        if not finished:
            self.log_progress(start_epoch)
        epoch = start_epoch
        while not finished and epoch <= max_epoch:
            self.train_sampler.set_epoch(epoch)
            self.nonfinite_at_epoch_start = self.nonfinite_total
            epoch_start = time.perf_counter()
            # max_steps may stop inside the epoch: the partial epoch is then validated and saved as the last.
            stop = self.train_epoch(epoch)
            self.epoch_seconds = time.perf_counter() - epoch_start
            logger.info("epoch %d trained in %.1f s", epoch, self.epoch_seconds)
            metrics = self.validate()
            self.end_epoch(epoch, metrics)
            finished = stop
            epoch += 1
        if self.context.is_main:
            num_avg = self.train_conf["avg_nbest_model"]
            final_model = None
            if num_avg > 0 and self.history:
                final_model = average_best_checkpoints(self.exp_dir, num_avg)
            self.task.export(self.exp_dir, final_model)
            if self.nonfinite_total:
                logger.warning("%d update(s) were skipped for non-finite loss/gradients", self.nonfinite_total)
        if self.writer is not None:
            self.writer.close()


# ---------------------------------------------------------------------- the run


@dataclass
class TrainResult:
    """What :func:`run_task` did: ``trained`` (False: train.done said there was nothing to do),
    the epoch records of ``epochs.jsonl`` (rank 0; empty on other ranks), the best epoch by
    ``best_metric`` and the number of skipped (non-finite) updates."""

    trained: bool
    is_main: bool = True
    epochs: List[Dict[str, Any]] = field(default_factory=list)
    best_epoch: Optional[int] = None
    nonfinite_updates: int = 0


def _done_reaches(done_path: str, train_conf: Dict[str, Any]) -> bool:
    """True when ``train.done`` records an epoch/step that already reaches max_epoch/max_steps
    (an unreadable marker counts as finished)."""
    try:
        with open(done_path, encoding="utf-8") as f:
            words = f.read().split()
        epoch, step = int(words[1]), int(words[3])
    except (OSError, IndexError, ValueError):
        return True
    return epoch >= train_conf["max_epoch"] or bool(train_conf["max_steps"] and step >= train_conf["max_steps"])


def _recorded_result(exp_dir: str, trained: bool, is_main: bool, best_epoch=None, nonfinite: int = 0) -> TrainResult:
    path = os.path.join(exp_dir, EPOCHS_FILE)
    epochs = read_epoch_records(path) if is_main and os.path.exists(path) else []
    return TrainResult(trained, is_main, epochs, best_epoch, nonfinite)


def _check_resume_config(task: Task, config: Dict[str, Any], config_path: str, latest: str, is_main: bool) -> None:
    """The task's RESUME_MUST_MATCH keys must equal the experiment's config.yaml; other
    differences are a warning (rank 0)."""
    if not os.path.exists(config_path):
        return
    saved = read_config(config_path)
    written = task.config_to_write(config)
    changed = config_differences(saved, written, task.RESUME_MUST_MATCH)
    if changed:
        raise ResumeMismatchError(f"{latest} was trained with a different {', '.join(changed)} (see {config_path}); "
                                  "use a new output dir")
    others = config_differences(saved, written)
    if others and is_main:
        logger.warning("resuming with a config that differs from %s in: %s", config_path, ", ".join(others))


def run_task(
    task: Task,
    config: Dict[str, Any],
    exp_dir: str,
    *,
    resume: bool = True,
    device: str = "auto",
    step_callback: Optional[StepCallback] = None,
) -> TrainResult:
    """Train ``task`` into ``exp_dir`` (module docstring): alone or under torchrun
    (RANK/WORLD_SIZE/LOCAL_RANK). ``resume`` continues from ``<exp>/checkpoint_latest.pt`` when it
    exists. ``config`` holds ``seed``, ``optim*``, ``scheduler*``, ``train_conf`` and, optionally,
    ``init_param`` (weights to start from: parameters with matching names and shapes) and
    ``init_encoder`` (a pretrained model's ``encoder.*`` weights only; after init_param)."""
    if not exp_dir:
        raise ValueError("no experiment dir (output_dir)")
    done_path = os.path.join(exp_dir, DONE_MARKER)
    if os.path.exists(done_path):
        if _done_reaches(done_path, config["train_conf"]):
            logger.info("%s exists: training already finished, nothing to do (remove it to train again)", done_path)
            return _recorded_result(exp_dir, False, int(os.environ.get("RANK", 0)) == 0)
    context = init_distributed(device)
    try:
        with experiment_logging(exp_dir, context.rank, LOG_FORMAT):
            config_path = os.path.join(exp_dir, CONFIG_FILE)
            latest = os.path.join(exp_dir, LATEST_CHECKPOINT)
            resume_from = latest if resume and os.path.exists(latest) else None
            if resume_from:  # every rank: all of them must stop on a mismatch
                _check_resume_config(task, config, config_path, latest, context.is_main)
            if context.is_main:
                if os.path.exists(done_path):
                    logger.info("%s: continuing the finished experiment to max_epoch %d",
                                done_path, config["train_conf"]["max_epoch"])
                    os.unlink(done_path)
                for path in remove_stale_checkpoint_temps(exp_dir):
                    logger.info("removed %s (left by a checkpoint write that was killed)", path)
                if os.path.exists(latest) and not resume:
                    logger.warning("resume is off: %s will be overwritten by a fresh run", latest)
                write_config(task.config_to_write(config), config_path)
            seed_everything(int(config["seed"]))
            task.setup(context, exp_dir)
            model = task.build_model()
            if config.get("init_param") and resume_from is None:
                load_matching_weights(model, config["init_param"])
            if config.get("init_encoder") and resume_from is None:
                load_encoder_weights(model, config["init_encoder"])
            frozen = freeze_parameters(model, config.get("freeze_param"))
            if frozen:
                logger.info("freeze_param: %d tensors not trained (%d values)", len(frozen),
                            sum(p.numel() for n, p in model.named_parameters() if n in set(frozen)))
            num_params = sum(p.numel() for p in model.parameters())
            logger.info("model: %s, %d parameters (%.1f M)", type(model).__name__, num_params, num_params / 1e6)
            # Same initial weights on every rank (seeded above); different dropout/augmentation per rank.
            seed_everything(int(config["seed"]) + context.rank)
            engine = Engine(task, model, config, context, exp_dir, step_callback)
            engine.fit(resume_from)
            context.barrier()
            ranking = engine.ranking()
            if context.is_main:
                with open(done_path + ".tmp", "w", encoding="utf-8") as f:
                    f.write(f"epoch {engine.train_sampler.epoch - 1} step {engine.global_step}\n")
                os.replace(done_path + ".tmp", done_path)
                logger.info("training finished: %s", exp_dir)
            return _recorded_result(exp_dir, True, context.is_main, ranking[0]["epoch"] if ranking else None,
                                    engine.nonfinite_total)
    finally:
        shutdown_distributed(context)


__all__ = [
    "CONFIG_FILE",
    "DONE_MARKER",
    "ENGINE_TRAIN_CONF",
    "Engine",
    "LATEST_CHECKPOINT",
    "NonFiniteLossError",
    "ResumeMismatchError",
    "StatsAccumulator",
    "TrainResult",
    "final_model_name",
    "stat_value",
    "run_task",
]
