"""What a trainer must say that the engine (:mod:`funasr_lite.train.engine`) cannot: the task.

A task supplies the data and its batches, the model, the loss of one batch, the validation metric
and any output of its own. Everything else (epochs, resume, the non-finite policy, validation
scheduling, best-epoch ranking, retention, logs, the final ``model.avg{N}.pt``) is the engine's,
the same for every task. The tasks today: :mod:`funasr_lite.train.tasks.asr` (Paraformer and the
other ASR models, CER), :mod:`funasr_lite.train.tasks.lm` (token LM, perplexity),
:mod:`funasr_lite.train.tasks.punc` (CT-Transformer punctuation, F1),
:mod:`funasr_lite.train.tasks.pretrain` (data2vec on audio without transcripts, loss),
:mod:`funasr_lite.train.tasks.speaker` (the x-vector speaker model, EER).

How to add a task (BiCif, SeACo, streaming, self-supervised pretraining, ...):

1. Write ``funasr_lite/train/tasks/<name>.py`` with a ``Task`` subclass. Set ``name``,
   ``METRICS`` (the validation metrics that may rank epochs, each with ``True`` when lower is
   better), ``ITEM_NAME``/``UNIT`` (what a batch holds / what :meth:`Task.batch_units` counts) and
   ``RESUME_MUST_MATCH`` (config keys a resumed run may not change).
2. Implement :meth:`setup` (read the data; no training randomness), :meth:`build_model`,
   :meth:`train_batches` (a resumable sampler + the batches it yields; for lists of token
   sequences reuse :class:`funasr_lite.train.text_batches.EpochBatchSampler`),
   :meth:`compute_loss` (``(loss, stats, weight)`` of one batch; call the model through its
   ``__call__`` so DDP sees the forward) and, if it validates, :meth:`prepare_validation`,
   :meth:`has_validation` and :meth:`validate`.
3. Resolve the config: ``seed``, ``optim``/``optim_conf``, ``scheduler``/``scheduler_conf`` and a
   ``train_conf`` of :data:`funasr_lite.train.engine.ENGINE_TRAIN_CONF` keys plus the task's own
   (:func:`funasr_lite.train.text_batches.resolve_task_config` does it for a small YAML).
4. A ``train_<name>(...)`` function builds the task and calls
   :func:`funasr_lite.train.engine.run_task`; ``funasr_lite/bin/train_<name>.py`` parses and calls it.
5. State that lives outside the model's weights and changes each update (data2vec's EMA teacher):
   :meth:`on_update` (told the update count), :meth:`training_state` and
   :meth:`load_training_state` (saved in checkpoints, so a resumed run equals an uninterrupted one).
6. Test it with the engine's own checks in mind: tests/train/test_engine.py runs every task
   through the non-finite policy, retention and resume.

The sampler protocol (what :meth:`train_batches` returns first; ``FrameBatchSampler``,
``StreamLoader`` and ``EpochBatchSampler`` follow it): ``epoch`` and ``position`` (batches of this
rank consumed in the epoch), ``set_epoch(e)``, ``advance()`` (the engine calls it after each
batch), ``len()`` (this rank's batches in the epoch), ``state_dict()``/``load_state_dict()`` (a
sampler given a saved state yields exactly the rest of that epoch). The second value returned is
the iterable of batches (a DataLoader over the sampler, or the sampler's own collating iterator).
The batch order must depend on (seed, epoch) only, never on the global RNG, so a resumed run sees
the same batches.
"""

from __future__ import annotations

from typing import Any, Callable, ContextManager, Dict, List, Optional, Sequence, Tuple

import torch

from funasr_lite.train.distributed import DistributedContext


class Task:
    """The interface; the defaults suit a task without validation or extra outputs."""

    name = "task"
    # Validation metrics an epoch may be ranked by (train_conf.best_metric) -> lower is better.
    METRICS: Dict[str, bool] = {"loss": True}
    ITEM_NAME = "items"  # what a batch holds (the non-finite warning lists their ids)
    UNIT = "items"  # what batch_units counts (throughput: <UNIT>/s)
    # Config keys whose change makes resuming an experiment wrong (ResumeMismatchError).
    RESUME_MUST_MATCH: Sequence[str] = ()

    # ---------------------------------------------------------------- set-up

    def check_train_conf(self, train_conf: Dict[str, Any]) -> None:
        """Raise ValueError on a train_conf this task cannot train with."""

    def config_to_write(self, config: Dict[str, Any]) -> Dict[str, Any]:
        """What ``<exp>/config.yaml`` holds (a task may order or add keys)."""
        return config

    def setup(self, context: DistributedContext, exp_dir: str) -> None:
        """Read the data (after the engine has seeded the RNGs with ``seed``); rank 0 may write
        task files into ``exp_dir``. Must not draw from the global RNGs unless every rank does
        the same draws."""

    def build_model(self) -> torch.nn.Module:
        raise NotImplementedError

    # ---------------------------------------------------------------- per-update state

    def on_update(self, model: torch.nn.Module, num_updates: int) -> None:
        """Called on every rank with the bare model and the number of optimizer updates done so
        far: once before training (0, or the step a run resumes at) and after every update (skipped
        non-finite updates do not count). data2vec: ``model.set_num_updates`` (the EMA decay)."""

    def training_state(self, model: torch.nn.Module) -> Dict[str, Any]:
        """Training state of the task's own that is not in ``model.state_dict()`` (data2vec: the
        EMA teacher), as tensors and plain values (copies). The engine saves it in every training
        checkpoint (``task``), never in the final model, and restores it around the memory check."""
        return {}

    def load_training_state(self, model: torch.nn.Module, state: Dict[str, Any]) -> None:
        """Inverse of :meth:`training_state` (``{}``: what a fresh run starts with)."""

    # ---------------------------------------------------------------- batches

    def train_batches(self, context: DistributedContext) -> Tuple[Any, Any]:
        """-> (sampler, iterable of batches) of this rank (module docstring: the sampler protocol)."""
        raise NotImplementedError

    def compute_loss(self, model: torch.nn.Module, batch: Any) -> Tuple[torch.Tensor, Dict[str, Any], Any]:
        """-> (loss to minimise (scalar), stats to average (name -> number), weight of the batch in
        those averages). ``model`` may be DDP-wrapped: call it, do not call its methods."""
        raise NotImplementedError

    def batch_ids(self, batch: Any) -> List[str]:
        """Ids of the batch's items (named when a batch's loss is not finite)."""
        return []

    def batch_units(self, batch: Any) -> float:
        """The size of a batch in :attr:`UNIT` (for throughput)."""
        return 0.0

    def describe_throughput(self, units_per_s: float) -> str:
        return f"{self.UNIT}/s {units_per_s:.0f}"

    def derived_metrics(self, averages: Dict[str, float]) -> Dict[str, float]:
        """Metrics computed from averaged stats (e.g. perplexity from the loss per token)."""
        return averages

    def describe_data(self) -> str:
        """``<N> <items> (...)`` for the start-of-training log line."""
        return "a task"

    # ---------------------------------------------------------------- memory check

    def probe_batches(self, sampler: Any) -> List[Any]:
        """The costliest batches of this rank to try once before training (empty: no check)."""
        return []

    def describe_batch(self, batch: Any) -> str:
        return "a batch"

    def batch_size_advice(self) -> str:
        return "use smaller batches"

    # ---------------------------------------------------------------- validation

    def prepare_validation(self, context: DistributedContext) -> None:
        """Build the validation batches (after :meth:`train_batches`)."""

    def has_validation(self) -> bool:
        return False

    def validate(self, model: torch.nn.Module, autocast: Callable[[], ContextManager]) -> Dict[str, float]:
        """Metrics over the whole validation set, the same on every rank (reduce over ranks here).
        Called in eval mode under no_grad with the RNG state saved; ``autocast()`` is the training's
        mixed-precision context."""
        return {}

    def progress_metric(self, train_conf: Dict[str, Any]) -> str:
        """The validation metric shown in ``[progress]`` lines."""
        return train_conf["best_metric"]

    # ---------------------------------------------------------------- outputs

    def export(self, exp_dir: str, final_model: Optional[str]) -> None:
        """Rank 0, after the final model (``model.avg{N}.pt``, None when N = 0) is written: outputs
        of the task's own (e.g. a model dir layout)."""


__all__ = ["Task"]
