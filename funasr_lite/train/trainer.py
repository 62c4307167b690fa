"""The training loop: one process or ``torchrun`` DDP, resumable exactly.

Outputs under ``<exp>`` (rank 0 writes everything):
  config.yaml            the resolved config (decoding reads only this)
  train.log              text log (also on stderr), with ``[progress]`` lines (epoch, batch, step,
                         elapsed, ETA, last validation CER) that the job runner shows on a terminal
  tensorboard/           scalars: train/<loss parts>, train/acc, train/lr, train/grad_norm,
                         train/frames_per_s, valid/loss, valid/acc, valid/cer
  epochs.jsonl           one JSON record per epoch: train averages over the epoch, validation
                         metrics, lr, seconds (``egs/aishell1/local/plot_curves.py`` draws curves.png from it)
  epoch_N.pt             full state at the end of epoch N (best ``keep_nbest_models`` + latest kept)
  checkpoint_latest.pt   full state of the newest save (epoch end, or every ``save_every_steps``)
  best.json              validation history and the ranking by ``best_metric``
  model.avg{N}.pt        average of the N best epochs (``avg_nbest_model``), plain state dict
  train.done             written last; a rerun of a finished experiment does nothing

A full state holds model, optimizer, scheduler, grad scaler, batch-sampler position,
epoch/step, every rank's RNG states and the validation history, so ``resume`` continues as if
never stopped (same batches, same dropout/SpecAug draws, same losses).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch
from torch.utils.data import DataLoader

from funasr_lite.data.batch_sampler import FrameBatchSampler
from funasr_lite.data.collate import collate_batch
from funasr_lite.data.dataset import AsrDataset, build_dataset
from funasr_lite.scoring.cer import char_errors  # validation CER: the scoring alignment
from funasr_lite.train.average import average_best_checkpoints, write_best
from funasr_lite.train.checkpoint import (
    capture_rng_state,
    epoch_checkpoint_name,
    link_or_copy,
    load_checkpoint,
    load_model_weights,
    remove_stale_checkpoint_temps,
    restore_rng_state,
    save_checkpoint,
    seed_everything,
)
from funasr_lite.train.distributed import DistributedContext, init_distributed, shutdown_distributed, wrap_ddp
from funasr_lite.train.optim import build_optimizer
from funasr_lite.train.scheduler import build_scheduler
from funasr_lite.train.train_log import (
    LOG_FORMAT,
    RunProgress,
    append_epoch_record,
    experiment_logging,
    tensorboard_writer,
)
from funasr_lite.utils.config import config_differences, read_config, write_config
from funasr_lite.utils.progress import progress

logger = logging.getLogger(__name__)

LATEST_CHECKPOINT = "checkpoint_latest.pt"
DONE_MARKER = "train.done"
# Lower is better for these validation metrics; higher for the others (acc).
LOWER_IS_BETTER = {"cer": True, "loss": True, "acc": False}
# A [progress] line at least this often (besides every log_interval steps and each epoch end).
PROGRESS_EVERY_S = 60.0

StepCallback = Callable[[Dict[str, Any]], None]


class NonFiniteLossError(RuntimeError):
    """Too many consecutive updates had a non-finite loss or gradient."""


def _stat_value(value: Any) -> Optional[float]:
    if value is None:
        return None
    if torch.is_tensor(value):
        return float(value.detach().float().mean()) if value.numel() else None
    return float(value)


class StatsAccumulator:
    """Weighted sums of the stats dicts a model returns, for averages over many batches."""

    def __init__(self):
        self.sums: Dict[str, float] = {}
        self.weights: Dict[str, float] = {}

    def add(self, stats: Dict[str, Any], weight: float) -> None:
        for key, value in stats.items():
            number = _stat_value(value)
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


class Trainer:
    """Owns the model, optimizer, scheduler, data loaders and the bookkeeping of one experiment.

    Args:
        config: the resolved config (``funasr_lite.train.config.resolve_training_config``).
        model: the bare model (moved to the device and wrapped in DDP here).
        tokenizer: for validation CER (``ids2tokens``/``tokens2text``).
        train_set, valid_set: datasets (``lengths`` attribute, items as in ``AsrDataset``).
        context: distributed context (rank, world size, device).
        step_callback: called on every rank after each optimizer update with a dict
            (step, epoch, loss, lr, grad_norm); for tests and external monitoring.
    """

    def __init__(
        self,
        config: Dict[str, Any],
        model: torch.nn.Module,
        tokenizer,
        train_set: AsrDataset,
        valid_set: Optional[AsrDataset],
        context: DistributedContext,
        step_callback: Optional[StepCallback] = None,
    ):
        self.config = config
        self.context = context
        self.device = context.device
        self.tokenizer = tokenizer
        self.train_set = train_set
        self.valid_set = valid_set
        self.step_callback = step_callback
        self.exp_dir = config["output_dir"]
        self.train_conf = config["train_conf"]
        dataset_conf = config["dataset_conf"]
        frontend_conf = config["frontend_conf"]
        # Seconds of audio per model-input frame (for the real-time factor of training).
        self.seconds_per_frame = float(frontend_conf.get("frame_shift", 10)) / 1000.0 * int(frontend_conf.get("lfr_n", 1))
        if self.train_conf["best_metric"] == "cer" and not self.train_conf["validate_cer"]:
            raise ValueError("train_conf.best_metric is 'cer' but validate_cer is false; choose loss or acc")

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

        num_workers = dataset_conf["num_workers"]
        if getattr(train_set, "is_stream", False):  # tar shards (data/shards.py): a stream with its own position
            from funasr_lite.data.shards import StreamLoader

            self.train_sampler = StreamLoader(train_set, num_workers=num_workers, context=context,
                                              pin_memory=self.device.type == "cuda")
            self.train_loader = self.train_sampler
        else:
            self._init_map_style_loader(train_set, dataset_conf, config, context)
        self.valid_loader = None
        if valid_set is not None:
            self.valid_sampler = FrameBatchSampler(
                valid_set.lengths,
                dataset_conf["valid_batch_bins"] or dataset_conf["batch_bins"],
                shuffle=False,
                world_size=context.world_size,
                rank=context.rank,
                equal_batches=False,
            )
            self.valid_loader = DataLoader(
                valid_set,
                batch_sampler=self.valid_sampler,
                collate_fn=collate_batch,
                num_workers=num_workers,
                generator=torch.Generator(),
            )
            self.valid_texts = None  # filled lazily: utt id -> reference transcript

        self.global_step = 0
        self.consecutive_nonfinite = 0
        self.nonfinite_total = 0
        self.history: List[Dict[str, Any]] = []
        self.writer = tensorboard_writer(self.exp_dir, context.is_main)
        self.run_progress = RunProgress()
        self.epoch_stats = StatsAccumulator()  # train averages of the current epoch (epochs.jsonl)
        self.epoch_seconds = 0.0

    def _init_map_style_loader(self, train_set, dataset_conf, config, context) -> None:
        self.train_sampler = FrameBatchSampler(
            train_set.lengths,
            dataset_conf["batch_bins"],
            shuffle=dataset_conf["shuffle"],
            bucket_size=dataset_conf["bucket_size"],
            sortagrad=dataset_conf["sortagrad"],
            seed=int(config["seed"]),
            world_size=context.world_size,
            rank=context.rank,
            equal_batches=True,
        )
        num_workers = dataset_conf["num_workers"]
        # A private generator: creating a loader iterator must not consume the global torch RNG,
        # or a resumed run would draw different dropout/SpecAug numbers.
        self.train_loader = DataLoader(
            train_set,
            batch_sampler=self.train_sampler,
            collate_fn=collate_batch,
            num_workers=num_workers,
            pin_memory=self.device.type == "cuda",
            generator=torch.Generator(),
        )

    # ------------------------------------------------------------------ state

    def state_dict(self) -> Dict[str, Any]:
        """The full training state of this moment; a collective call (gathers RNG states)."""
        rng_states = self.context.all_gather_object(capture_rng_state())
        return {
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

    def load_state_dict(self, state: Dict[str, Any], source: str) -> None:
        self.raw_model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.train_sampler.load_state_dict(state["sampler"])
        self.global_step = int(state["step"])
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

    def _autocast(self):
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.autocast_dtype)

    def _to_device(self, batch: Dict[str, Any]) -> Tuple[torch.Tensor, ...]:
        non_blocking = self.device.type == "cuda"
        return tuple(
            batch[key].to(self.device, non_blocking=non_blocking)
            for key in ("speech", "speech_lengths", "text", "text_lengths")
        )

    def _forward(self, batch: Dict[str, Any], model: torch.nn.Module):
        speech, speech_lengths, text, text_lengths = self._to_device(batch)
        with self._autocast():
            loss, stats, weight = model(speech, speech_lengths, text, text_lengths)
        return loss, stats, weight

    def _agree_finite(self, loss: torch.Tensor, frames: int) -> Tuple[bool, float]:
        """(all ranks' losses finite, frames over all ranks): one small all-reduce."""
        flags = torch.tensor([0.0 if torch.isfinite(loss.detach()).all() else 1.0, float(frames)], dtype=torch.float64)
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

    def _record_nonfinite(self, utt_ids: Sequence[str], what: str) -> None:
        self.consecutive_nonfinite += 1
        self.nonfinite_total += 1
        logger.warning(
            "non-finite %s at step %d (epoch %d): update skipped (%d in a row, %d in all); utterances: %s",
            what,
            self.global_step + 1,
            self.train_sampler.epoch,
            self.consecutive_nonfinite,
            self.nonfinite_total,
            " ".join(utt_ids[:20]) + (" ..." if len(utt_ids) > 20 else ""),
        )
        limit = self.train_conf["max_consecutive_nonfinite"]
        if self.consecutive_nonfinite > limit:
            raise NonFiniteLossError(
                f"{self.consecutive_nonfinite} consecutive updates had a non-finite {what} "
                f"(train_conf.max_consecutive_nonfinite={limit}); last utterances: {' '.join(utt_ids[:20])}"
            )

    # ------------------------------------------------------------------ OOM probe

    def probe_largest_batches(self, count: int = 2) -> None:
        """Forward+backward the costliest batches once so an out-of-memory shows at once.

        Runs on the bare model (before DDP wrapping) and records in ``unused_parameters`` the
        trainable parameters that got no gradient. Not a training step: gradients are dropped,
        and model buffers (e.g. BatchNorm statistics) and RNG states are restored, so the
        training that follows is unchanged.
        """
        batches = self.train_sampler.largest_batches(1)
        longest = max(self.train_sampler.rank_batches(), key=lambda b: int(self.train_set.lengths[b].max()))
        batches = (batches + [longest])[:count]
        rng_state = capture_rng_state()
        buffers = {name: buffer.detach().clone() for name, buffer in self.raw_model.named_buffers()}
        self.model.train()
        batch: Dict[str, Any] = {"speech": torch.zeros(0, 0)}
        try:
            for indices in batches:
                batch = collate_batch([self.train_set[i] for i in indices])
                frames = int(batch["speech"].shape[0] * batch["speech"].shape[1])
                loss, _, _ = self._forward(batch, self.model)
                finite, _ = self._agree_finite(loss, frames)
                if finite:
                    self._backward(loss, sync=True)
                if finite:
                    self.unused_parameters = [
                        name for name, p in self.raw_model.named_parameters() if p.requires_grad and p.grad is None
                    ]
                logger.info(
                    "memory check: batch of %d utterances x %d frames (%d padded frames) ran forward+backward%s",
                    batch["speech"].shape[0],
                    batch["speech"].shape[1],
                    frames,
                    "" if finite else " (loss not finite: backward skipped)",
                )
        except torch.OutOfMemoryError as e:
            raise RuntimeError(
                f"out of memory on one of the largest batches ({batch['speech'].shape[0]} utterances x "
                f"{batch['speech'].shape[1]} frames): lower dataset_conf.batch_bins "
                f"(now {self.config['dataset_conf']['batch_bins']}) or max_frames. {e}"
            ) from None
        finally:
            self.optimizer.zero_grad(set_to_none=True)
            with torch.no_grad():
                for name, buffer in self.raw_model.named_buffers():
                    buffer.copy_(buffers[name])
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
        self, epoch: int, stats: StatsAccumulator, lr: float, grad_norm: float, frames: float, seconds: float
    ) -> None:
        averages = stats.averages()
        frames_per_s = frames / seconds if seconds > 0 else 0.0
        realtime = frames_per_s * self.seconds_per_frame
        parts = " ".join(f"{key} {value:.4g}" for key, value in averages.items())
        logger.info(
            "epoch %d step %d [%d/%d] %s lr %.3e grad_norm %.3g frames/s %.0f (%.1fx real time)",
            epoch,
            self.global_step,
            self.train_sampler.position,
            len(self.train_sampler),
            parts,
            lr,
            grad_norm,
            frames_per_s,
            realtime,
        )
        if self.writer is not None:
            for key, value in averages.items():
                self.writer.add_scalar(f"train/{key}", value, self.global_step)
            self.writer.add_scalar("train/lr", lr, self.global_step)
            self.writer.add_scalar("train/grad_norm", grad_norm, self.global_step)
            self.writer.add_scalar("train/frames_per_s", frames_per_s, self.global_step)

    def _batches_left(self, epoch: int) -> int:
        """Batches still to train in the run (this epoch's rest and the later epochs; max_steps)."""
        per_epoch = len(self.train_sampler)
        left = per_epoch - self.train_sampler.position + (self.train_conf["max_epoch"] - epoch) * per_epoch
        max_steps = self.train_conf["max_steps"]
        if max_steps:
            left = min(left, (max_steps - self.global_step) * self.train_conf["accum_grad"])
        return max(0, left)

    def log_progress(self, epoch: int, batches_left: Optional[int] = None, in_epoch: bool = True) -> None:
        """Log the ``[progress]`` line: epoch/batch/step, elapsed, ETA, the last validation result."""
        if not self.context.is_main:
            return
        metric = "cer" if self.train_conf["validate_cer"] else self.train_conf["best_metric"]
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
        interval_frames = 0.0
        interval_start = time.perf_counter()
        window_losses: List[float] = []
        window_utts: List[str] = []
        window_skip = False
        bar = progress(total=total, initial=self.train_sampler.position, desc=f"epoch {epoch}", unit="batch")
        try:
            for batch in self.train_loader:
                self.train_sampler.advance()
                position = self.train_sampler.position
                boundary = position % accum_grad == 0 or position == total
                window_utts.extend(batch["utt_ids"])
                frames = int(batch["speech_lengths"].sum())
                if window_skip:
                    _, all_frames = self._agree_finite(torch.zeros(()), frames)
                else:
                    loss, stats, weight = self._forward(batch, self.model)
                    finite, all_frames = self._agree_finite(loss, frames)
                    if finite:
                        self._backward(loss, sync=boundary)
                        window_losses.append(float(loss.detach()))
                        interval_stats.add(stats, float(_stat_value(weight) or 1.0))
                        self.epoch_stats.add(stats, float(_stat_value(weight) or 1.0))
                    else:
                        window_skip = True
                        self.optimizer.zero_grad(set_to_none=True)
                interval_frames += all_frames
                bar.update(1)
                self.run_progress.batch_done()
                if not boundary:
                    continue

                if window_skip:
                    self.optimizer.zero_grad(set_to_none=True)
                    self._record_nonfinite(window_utts, "loss")
                    stepped, grad_norm = False, float("nan")
                else:
                    stepped, grad_norm = self._optimizer_step()
                    if not stepped:
                        self._record_nonfinite(window_utts, "gradient")
                if stepped:
                    self.consecutive_nonfinite = 0
                    self.global_step += 1
                    lr_used = self._current_lr()
                    self.scheduler.step()
                    if self.step_callback is not None:
                        self.step_callback(
                            {
                                "step": self.global_step,
                                "epoch": epoch,
                                "loss": sum(window_losses) / len(window_losses),
                                "lr": lr_used,
                                "grad_norm": grad_norm,
                                "utt_ids": list(window_utts),
                            }
                        )
                    if self.global_step % log_interval == 0:
                        now = time.perf_counter()
                        self._log_train(epoch, interval_stats, lr_used, grad_norm, interval_frames, now - interval_start)
                        interval_stats, interval_frames, interval_start = StatsAccumulator(), 0.0, now
                        self.log_progress(epoch)
                    elif self.run_progress.due(PROGRESS_EVERY_S):
                        self.log_progress(epoch)
                    if save_every and self.global_step % save_every == 0 and position < len(self.train_sampler):
                        self.save(os.path.join(self.exp_dir, LATEST_CHECKPOINT))
                window_losses, window_utts, window_skip = [], [], False
                if max_steps and self.global_step >= max_steps:
                    logger.info("reached train_conf.max_steps=%d", max_steps)
                    return True
        finally:
            bar.close()
        return False

    # ------------------------------------------------------------------ validation

    def _greedy_token_ids(self, speech: torch.Tensor, speech_lengths: torch.Tensor) -> List[List[int]]:
        results = self.raw_model.decode_greedy(speech, speech_lengths)
        token_ids = []
        for result in results:
            ids = result["token_ids"] if isinstance(result, dict) else result
            token_ids.append([int(i) for i in (ids.tolist() if torch.is_tensor(ids) else ids)])
        return token_ids

    @torch.no_grad()
    def validate(self) -> Dict[str, float]:
        """Loss, acc (and greedy CER in %) over the validation set, summed over all ranks."""
        if self.valid_loader is None:
            return {}
        if self.valid_texts is None:
            from funasr_lite.data.datadir import read_kv

            self.valid_texts = read_kv(os.path.join(self.valid_set.data_dir, "text"), allow_empty_value=True)
        rng_state = capture_rng_state()  # validation must not shift the training's random stream
        self.raw_model.eval()
        stats = StatsAccumulator()
        errors, ref_chars = 0, 0
        decode = self.train_conf["validate_cer"]
        try:
            for batch in progress(self.valid_loader, desc="valid", unit="batch"):
                loss, batch_stats, weight = self._forward(batch, self.raw_model)
                stats.add(batch_stats, float(_stat_value(weight) or 1.0))
                if decode:
                    speech, speech_lengths, _, _ = self._to_device(batch)
                    with self._autocast():
                        hyps = self._greedy_token_ids(speech, speech_lengths)
                    for utt_id, ids in zip(batch["utt_ids"], hyps):
                        hyp_text = self.tokenizer.tokens2text(self.tokenizer.ids2tokens(ids))
                        utt_errors, utt_chars = char_errors(self.valid_texts[utt_id], hyp_text)
                        errors += utt_errors
                        ref_chars += utt_chars
        finally:
            self.raw_model.train()
            restore_rng_state(rng_state)
        gathered = self.context.all_gather_object((stats.sums, stats.weights, errors, ref_chars))
        total = StatsAccumulator()
        errors, ref_chars = 0, 0
        for sums, weights, rank_errors, rank_chars in gathered:
            total.merge(sums, weights)
            errors += rank_errors
            ref_chars += rank_chars
        metrics = total.averages()
        if decode:
            metrics["cer"] = 100.0 * errors / max(ref_chars, 1)
        return metrics

    # ------------------------------------------------------------------ epoch end

    def _ranking(self) -> List[Dict[str, Any]]:
        metric = self.train_conf["best_metric"]
        scored = [entry for entry in self.history if entry.get(metric) is not None and math.isfinite(entry[metric])]
        if not scored:  # no validation set: the newest epochs count as the best
            ordered = sorted(self.history, key=lambda e: -e["epoch"])
            return [{"epoch": e["epoch"], metric: None, "checkpoint": epoch_checkpoint_name(e["epoch"])} for e in ordered]
        sign = 1.0 if LOWER_IS_BETTER[metric] else -1.0
        ranked = sorted(scored, key=lambda e: (sign * e[metric], -e["epoch"]))
        return [{"epoch": e["epoch"], metric: e[metric], "checkpoint": epoch_checkpoint_name(e["epoch"])} for e in ranked]

    def _epoch_train_averages(self) -> Dict[str, float]:
        """This epoch's training averages over all ranks (a collective call); resets them."""
        total = StatsAccumulator()
        for sums, weights in self.context.all_gather_object((self.epoch_stats.sums, self.epoch_stats.weights)):
            total.merge(sums, weights)
        self.epoch_stats = StatsAccumulator()
        return total.averages()

    def end_epoch(self, epoch: int, metrics: Dict[str, float]) -> None:
        """Record validation, save epoch_N.pt (+ latest), update best.json and epochs.jsonl, prune
        old epochs."""
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
                "lr": self._current_lr(), "train": train_averages, "valid": dict(metrics)})
        self.log_progress(epoch, batches_left=(self.train_conf["max_epoch"] - epoch) * len(self.train_sampler),
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
        ranking = self._ranking()
        keep = self.train_conf["keep_nbest_models"]
        write_best(
            self.exp_dir,
            {
                "metric": self.train_conf["best_metric"],
                "lower_is_better": LOWER_IS_BETTER[self.train_conf["best_metric"]],
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
        max_epoch = self.train_conf["max_epoch"]
        max_steps = self.train_conf["max_steps"]
        start_epoch = self.train_sampler.epoch
        finished = start_epoch > max_epoch or bool(max_steps and self.global_step >= max_steps)
        streaming = getattr(self.train_set, "is_stream", False)
        if not finished and self.train_conf["oom_check"] and not streaming:  # a stream has no batch list to probe
            self.probe_largest_batches()
        self.wrap_distributed()
        if streaming:
            frames_logged = int(self.train_set.total_seconds / self.seconds_per_frame)
        else:
            frames_logged = sum(int(n) for n in self.train_set.lengths)
        logger.info(
            "training %d utterances (%d frames, %.1f h) on %d process(es), epochs %d..%d, %d batches per epoch per process",
            len(self.train_set),
            frames_logged,
            frames_logged * self.seconds_per_frame / 3600,
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
            if num_avg > 0 and self.history:
                average_best_checkpoints(self.exp_dir, num_avg)
            if self.nonfinite_total:
                logger.warning("%d update(s) were skipped for non-finite loss/gradients", self.nonfinite_total)
        if self.writer is not None:
            self.writer.close()


# ---------------------------------------------------------------------- entry


def _build_tokenizer(config: Dict[str, Any]):
    from funasr_lite.data.tokenizer import build_tokenizer

    tokenizer_conf = config.get("tokenizer_conf") or {}
    return build_tokenizer(config["token_list"], tokenizer_conf.get("bpemodel"))


def _default_model_builder(config: Dict[str, Any]) -> torch.nn.Module:
    from funasr_lite.models import build_model

    return build_model(config)


def run_training(
    config: Dict[str, Any],
    *,
    resume: bool = True,
    device: str = "auto",
    model_builder: Optional[Callable[[Dict[str, Any]], torch.nn.Module]] = None,
    step_callback: Optional[StepCallback] = None,
) -> bool:
    """Train the experiment described by a resolved ``config`` (see module docstring).

    Works alone or under torchrun (RANK/WORLD_SIZE/LOCAL_RANK). ``resume`` continues from
    ``<exp>/checkpoint_latest.pt`` when it exists. Returns False when ``<exp>/train.done``
    already existed (nothing done), True after training.
    """
    exp_dir = config["output_dir"]
    if not exp_dir:
        raise ValueError("config has no output_dir")
    done_path = os.path.join(exp_dir, DONE_MARKER)
    if os.path.exists(done_path):
        logger.info("%s exists: training already finished, nothing to do (remove it to train again)", done_path)
        return False
    context = init_distributed(device)
    try:
        with experiment_logging(exp_dir, context.rank, LOG_FORMAT):
            config_path = os.path.join(exp_dir, "config.yaml")
            latest = os.path.join(exp_dir, LATEST_CHECKPOINT)
            resume_from = latest if resume and os.path.exists(latest) else None
            if context.is_main:
                for path in remove_stale_checkpoint_temps(exp_dir):
                    logger.info("removed %s (left by a checkpoint write that was killed)", path)
                if os.path.exists(config_path) and resume_from:
                    changed = config_differences(read_config(config_path), config)
                    if changed:
                        logger.warning("resuming with a config that differs from %s in: %s", config_path, ", ".join(changed))
                if os.path.exists(latest) and not resume:
                    logger.warning("resume is off: %s will be overwritten by a fresh run", latest)
                write_config(config, config_path)
            seed_everything(int(config["seed"]))
            tokenizer = _build_tokenizer(config)
            dataset_conf, frontend_conf = config["dataset_conf"], config["frontend_conf"]
            if os.path.isfile(config["train_data"]):  # a shards.list: the streaming path (batch_bins in ms)
                from funasr_lite.data.shards import build_shard_stream

                train_set = build_shard_stream(config["train_data"], tokenizer, config["cmvn_file"], frontend_conf,
                                               dataset_conf, seed=int(config["seed"]), rank=context.rank,
                                               world_size=context.world_size)
            else:
                train_set = build_dataset(config["train_data"], tokenizer, config["cmvn_file"], frontend_conf, dataset_conf)
            valid_set = None
            if config.get("valid_data"):
                valid_set = build_dataset(config["valid_data"], tokenizer, config["cmvn_file"], frontend_conf, dataset_conf)
            model = (model_builder or _default_model_builder)(config)
            if config.get("init_param") and resume_from is None:
                load_model_weights(model, config["init_param"])
            num_params = sum(p.numel() for p in model.parameters())
            logger.info("model: %s, %d parameters (%.1f M)", type(model).__name__, num_params, num_params / 1e6)
            # Same initial weights on every rank (seeded above); different augmentation per rank.
            seed_everything(int(config["seed"]) + context.rank)
            trainer = Trainer(config, model, tokenizer, train_set, valid_set, context, step_callback)
            trainer.fit(resume_from)
            context.barrier()
            if context.is_main:
                with open(done_path + ".tmp", "w", encoding="utf-8") as f:
                    f.write(f"epoch {trainer.train_sampler.epoch - 1} step {trainer.global_step}\n")
                os.replace(done_path + ".tmp", done_path)
                logger.info("training finished: %s", exp_dir)
    finally:
        shutdown_distributed(context)
    return True


__all__ = [
    "DONE_MARKER",
    "LATEST_CHECKPOINT",
    "NonFiniteLossError",
    "StatsAccumulator",
    "Trainer",
    "char_errors",
    "epoch_checkpoint_name",
    "run_training",
]
