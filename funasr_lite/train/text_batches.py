"""Batches of token sequences for the text tasks (LM, punctuation), and their small YAML configs.

Batching: items sorted by (length, index) and cut greedily so each batch holds at most
``batch_tokens`` padded tokens (items x longest) and ``max_batch_size`` items; an item longer than
the budget goes alone. Each epoch the batch order is shuffled by ``random.Random(seed * 100003 +
epoch)`` (the order depends on (seed, epoch) only); under DDP every rank takes every
``world_size``-th batch of the list padded with its first batches (:func:`rank_share`).
"""

from __future__ import annotations

import logging
import random
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

import torch

from funasr_lite.data.batch_sampler import split_into_batches
from funasr_lite.data.collate import pad_sequences
from funasr_lite.train.task import Task
from funasr_lite.utils.config import apply_overrides, load_yaml

logger = logging.getLogger(__name__)

# Old train_conf names the text tasks still accept -> the engine's name.
LEGACY_TRAIN_CONF_KEYS = {"keep_checkpoints": "keep_nbest_models"}


def length_sorted_batches(lengths: Sequence[int], batch_tokens: int, max_batch_size: int,
                          extra_tokens: int = 0) -> List[List[int]]:
    """Indices sorted by (length, index), cut into batches of at most ``batch_tokens`` padded
    tokens, each item counted as ``length + extra_tokens`` (e.g. 1 for the LM's ``</s>``), and
    ``max_batch_size`` items."""
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
    return split_into_batches(order, [length + extra_tokens for length in lengths], batch_tokens, max_batch_size)


def pad_token_rows(rows: Sequence[Sequence[int]], pad_value: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """-> (B, U) long tensor right-padded with ``pad_value``, lengths (B,)."""
    tensors = [torch.tensor(row, dtype=torch.long) for row in rows]
    lengths = torch.tensor([len(row) for row in tensors], dtype=torch.long)
    return pad_sequences(tensors, pad_value), lengths


def rank_share(batches: Sequence[List[int]], rank: int, world_size: int) -> List[List[int]]:
    """Every ``world_size``-th batch from ``rank`` on, after padding the list with its first
    batches to a multiple of ``world_size`` (all ranks take the same number of steps)."""
    batches = list(batches)
    if world_size <= 1 or not batches:
        return batches
    padded = batches + batches[: (-len(batches)) % world_size]
    return padded[rank::world_size]


def epoch_rng(seed: int, epoch: int) -> random.Random:
    """The random stream of one epoch's batching (independent of the global RNGs)."""
    return random.Random(int(seed) * 100003 + int(epoch))


# An epoch's plan: (items, batches of item indices before shuffling), drawn from the epoch's rng.
EpochPlan = Callable[[int, random.Random], Tuple[Sequence[Any], List[List[int]]]]


class EpochBatchSampler:
    """The engine's sampler protocol (funasr_lite.train.task) over per-epoch lists of batches.

    ``plan(epoch, rng)`` gives the epoch's items and batches (it may draw from ``rng``, e.g. to cut
    the items differently each epoch); the batch order is then shuffled with the same ``rng``.
    Iterating yields ``collate(items, indices)`` for this rank's remaining batches.
    """

    def __init__(self, plan: EpochPlan, collate: Callable[[Sequence[Any], List[int]], Any], seed: int,
                 rank: int = 0, world_size: int = 1):
        self.plan, self.collate, self.seed = plan, collate, int(seed)
        self.rank, self.world_size = int(rank), int(world_size)
        self.epoch = 1
        self.position = 0
        self._cache_epoch: Optional[int] = None
        self._items: Sequence[Any] = ()
        self._batches: List[List[int]] = []
        self.global_batch_count = 0

    def _epoch_plan(self) -> Tuple[Sequence[Any], List[List[int]]]:
        if self._cache_epoch != self.epoch:
            rng = epoch_rng(self.seed, self.epoch)
            items, batches = self.plan(self.epoch, rng)
            batches = list(batches)
            rng.shuffle(batches)
            self.global_batch_count = len(batches)
            self._cache_epoch, self._items = self.epoch, items
            self._batches = rank_share(batches, self.rank, self.world_size)
        return self._items, self._batches

    def rank_batches(self) -> List[List[int]]:
        return self._epoch_plan()[1]

    def items(self) -> Sequence[Any]:
        return self._epoch_plan()[0]

    def set_epoch(self, epoch: int) -> None:
        if int(epoch) != self.epoch:
            self.epoch, self.position = int(epoch), 0

    def advance(self, count: int = 1) -> None:
        self.position += count

    def __len__(self) -> int:
        return len(self.rank_batches())

    def __iter__(self) -> Iterator[Any]:
        items, batches = self._epoch_plan()
        remaining = [list(batch) for batch in batches[self.position:]]
        return (self.collate(items, indices) for indices in remaining)

    def state_dict(self) -> Dict[str, int]:
        return {"epoch": self.epoch, "position": self.position, "seed": self.seed, "world_size": self.world_size}

    def load_state_dict(self, state: Mapping[str, int]) -> None:
        """Continue where ``state`` left off; another seed or process count restarts the epoch."""
        self.epoch, self.position = int(state["epoch"]), int(state["position"])
        changed = [key for key in ("seed", "world_size") if int(state.get(key, getattr(self, key))) != getattr(self, key)]
        if changed and self.position:
            logger.warning("batches: %s changed since the checkpoint; epoch %d restarts from its first batch",
                           ", ".join(changed), self.epoch)
            self.position = 0


def resolve_task_config(config_path: Optional[str], overrides: Sequence[str], train_conf_defaults: Mapping[str, Any],
                        task_name: str) -> Dict[str, Any]:
    """A text task's YAML (None: all defaults) + ``++key=value`` overrides; ``train_conf`` filled
    from ``train_conf_defaults`` (the engine's keys + the task's), unknown keys refused, legacy
    names (:data:`LEGACY_TRAIN_CONF_KEYS`) mapped."""
    config = load_yaml(config_path) if config_path else {}
    config = apply_overrides(config, overrides)
    config.setdefault("seed", 0)
    config.setdefault("optim", "adam")
    given = dict(config.get("train_conf") or {})
    for old, new in LEGACY_TRAIN_CONF_KEYS.items():
        if old in given:
            value = given.pop(old)
            given.setdefault(new, value)
            logger.info("train_conf.%s is now train_conf.%s (the engine's retention: best by the metric + latest)",
                        old, new)
    unknown = set(given) - set(train_conf_defaults)
    if unknown:
        raise ValueError(f"unknown train_conf keys for {task_name} training: {sorted(unknown)} "
                         f"(known: {sorted(train_conf_defaults)})")
    config["train_conf"] = {**train_conf_defaults, **given}
    return config


__all__ = [
    "EpochBatchSampler",
    "LEGACY_TRAIN_CONF_KEYS",
    "epoch_rng",
    "length_sorted_batches",
    "pad_token_rows",
    "rank_share",
    "resolve_task_config",
]


class TextTask(Task):
    """What the LM and punctuation tasks share: token-budget batches (``train_conf.batch_tokens``)
    and validation batches that may be absent (no validation text given)."""

    train_conf: Dict[str, Any]
    valid_batches: List[List[int]]

    def batch_size_advice(self) -> str:
        return f"lower train_conf.batch_tokens (now {self.train_conf['batch_tokens']})"

    def has_validation(self) -> bool:
        return bool(self.valid_batches)
