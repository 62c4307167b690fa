"""Batching by frames with length bucketing, deterministic per (seed, epoch), DDP-safe, resumable.

Per epoch (shuffle=True): permute the utterances with a generator seeded by (seed, epoch), cut
the permutation into buckets of ``bucket_size`` utterances, sort each bucket by length (longest
first) and cut it greedily into batches whose padded size ``batch_size * max_length`` stays
within ``batch_bins``; then shuffle the batch order. shuffle=False sorts the whole set once
(validation). An utterance longer than ``batch_bins`` alone forms its own batch.

SortaGrad (``sortagrad`` = N > 0, Amodei et al. 2016, "Deep Speech 2"): in the first N epochs
the batches come shortest first instead (the whole set sorted by length, ties in the epoch's
random order, cut into batches, not shuffled), so training starts on short, easy-to-align
utterances; later epochs shuffle as above.

DDP: every rank builds the same global batch list and takes every ``world_size``-th batch.
With ``equal_batches`` (training), the list is first padded by repeating its first batches
to a multiple of ``world_size``, so all ranks run the same number of steps and no rank waits
forever in an all-reduce.

Resuming: the consumer calls :meth:`advance` after each finished batch (a DataLoader reads
batches ahead, so the sampler cannot know what was used); :meth:`state_dict` gives
``epoch``/``position`` and a new sampler given that state yields exactly the rest of the epoch.
"""

from __future__ import annotations

import logging
from typing import Dict, Iterator, List, Optional, Sequence

import numpy as np
from torch.utils.data import Sampler

logger = logging.getLogger(__name__)


def split_into_batches(indices: Sequence[int], lengths: Sequence[int], batch_bins: int,
                       max_batch_size: Optional[int] = None) -> List[List[int]]:
    """Greedy cut of ``indices`` (in order) into batches with len(batch) * max length <= batch_bins
    and, if given, at most ``max_batch_size`` items; an item too long for the budget goes alone."""
    batches: List[List[int]] = []
    current: List[int] = []
    current_max = 0
    for index in indices:
        length = int(lengths[index])
        new_max = max(current_max, length)
        full = max_batch_size is not None and len(current) >= max_batch_size
        if current and (new_max * (len(current) + 1) > batch_bins or full):
            batches.append(current)
            current, new_max = [], length
        current.append(int(index))
        current_max = new_max
    if current:
        batches.append(current)
    return batches


class FrameBatchSampler(Sampler[List[int]]):
    """Yields lists of dataset indices for this rank's batches of the current epoch.

    Args:
        lengths: (N,) frames per utterance (what a padded batch is measured in).
        batch_bins: max ``batch_size * max_length`` per batch.
        shuffle: bucketed shuffling per epoch (training) or one length-sorted order (validation).
        bucket_size: utterances per bucket sorted by length.
        seed: with the epoch, fixes the order.
        world_size, rank: DDP layout.
        equal_batches: pad so every rank gets the same number of batches (training).
        sortagrad: number of first epochs whose batches go shortest first (with shuffle).
    """

    def __init__(
        self,
        lengths: Sequence[int],
        batch_bins: int,
        *,
        shuffle: bool = True,
        bucket_size: int = 1024,
        seed: int = 0,
        world_size: int = 1,
        rank: int = 0,
        equal_batches: bool = True,
        sortagrad: int = 0,
    ):
        if batch_bins < 1:
            raise ValueError(f"batch_bins must be >= 1, got {batch_bins}")
        if bucket_size < 1:
            raise ValueError(f"bucket_size must be >= 1, got {bucket_size}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in [0, {world_size})")
        self.lengths = np.asarray(lengths, dtype=np.int64)
        if self.lengths.ndim != 1 or self.lengths.size == 0:
            raise ValueError("lengths must be a non-empty 1-D sequence")
        self.batch_bins = int(batch_bins)
        self.shuffle = bool(shuffle)
        self.bucket_size = int(bucket_size)
        self.seed = int(seed)
        self.world_size = int(world_size)
        self.rank = int(rank)
        self.equal_batches = bool(equal_batches)
        if sortagrad < 0:
            raise ValueError(f"sortagrad must be >= 0, got {sortagrad}")
        self.sortagrad = int(sortagrad)
        self.epoch = 1
        self.position = 0  # batches of this rank already consumed in this epoch
        self._cache_epoch: Optional[int] = None
        self._cache: List[List[int]] = []
        too_long = int(np.sum(self.lengths > self.batch_bins))
        if too_long:
            logger.warning("%d utterance(s) are longer than batch_bins=%d frames; each forms its own batch", too_long, self.batch_bins)

    # ------------------------------------------------------------ batches

    def global_batches(self, epoch: int) -> List[List[int]]:
        """All ranks' batches of ``epoch`` in order (before the rank split)."""
        if not self.shuffle:
            order = np.argsort(-self.lengths, kind="stable")
            return split_into_batches(order, self.lengths, self.batch_bins)
        rng = np.random.default_rng([self.seed, int(epoch)])
        permutation = rng.permutation(self.lengths.size)
        if epoch <= self.sortagrad:
            order = permutation[np.argsort(self.lengths[permutation], kind="stable")]
            return split_into_batches(order, self.lengths, self.batch_bins)
        batches: List[List[int]] = []
        for start in range(0, permutation.size, self.bucket_size):
            bucket = permutation[start : start + self.bucket_size]
            bucket = bucket[np.argsort(-self.lengths[bucket], kind="stable")]
            batches.extend(split_into_batches(bucket, self.lengths, self.batch_bins))
        return [batches[i] for i in rng.permutation(len(batches))]

    def rank_batches(self, epoch: Optional[int] = None) -> List[List[int]]:
        """This rank's batches of ``epoch`` (default: the current epoch)."""
        epoch = self.epoch if epoch is None else int(epoch)
        if self._cache_epoch == epoch:
            return self._cache
        batches = self.global_batches(epoch)
        if self.equal_batches and len(batches) % self.world_size:
            missing = self.world_size - len(batches) % self.world_size
            batches = batches + [batches[i % len(batches)] for i in range(missing)]
        mine = batches[self.rank :: self.world_size]
        self._cache_epoch, self._cache = epoch, mine
        return mine

    def largest_batches(self, count: int) -> List[List[int]]:
        """This rank's ``count`` costliest batches of the current epoch (padded frames), largest first."""
        batches = self.rank_batches()
        cost = [len(batch) * int(self.lengths[batch].max()) for batch in batches]
        order = sorted(range(len(batches)), key=lambda i: -cost[i])
        return [batches[i] for i in order[:count]]

    # ------------------------------------------------------------ iteration and state

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch; a different epoch starts at its first batch."""
        if int(epoch) != self.epoch:
            self.epoch, self.position = int(epoch), 0

    def advance(self, count: int = 1) -> None:
        """Record that ``count`` more batches of this epoch were consumed."""
        self.position += count

    def __iter__(self) -> Iterator[List[int]]:
        # The remaining batches are fixed now, not when the first one is requested.
        remaining = [list(batch) for batch in self.rank_batches()[self.position :]]
        return iter(remaining)

    def __len__(self) -> int:
        """Batches of this rank in the whole current epoch."""
        return len(self.rank_batches())

    def remaining(self) -> int:
        return max(0, len(self) - self.position)

    def state_dict(self) -> Dict[str, int]:
        return {
            "epoch": self.epoch,
            "position": self.position,
            "seed": self.seed,
            "world_size": self.world_size,
            "num_utts": int(self.lengths.size),
            "batch_bins": self.batch_bins,
        }

    def load_state_dict(self, state: Dict[str, int]) -> None:
        """Continue where ``state`` left off. If the data or layout changed, the epoch restarts."""
        self.epoch = int(state["epoch"])
        self.position = int(state["position"])
        changed = [
            f"{key} {state.get(key)} -> {getattr(self, key) if key != 'num_utts' else int(self.lengths.size)}"
            for key in ("seed", "world_size", "num_utts", "batch_bins")
            if state.get(key) is not None
            and int(state[key]) != (int(self.lengths.size) if key == "num_utts" else getattr(self, key))
        ]
        if changed and self.position:
            logger.warning(
                "batch sampler: %s since the checkpoint; epoch %d restarts from its first batch",
                ", ".join(changed),
                self.epoch,
            )
            self.position = 0


__all__ = ["FrameBatchSampler", "split_into_batches"]
