"""Learning-rate schedules, stepped once per optimizer update.

WarmupLR (ESPnet/FunASR, docs/spec.md §11): at update s = 1, 2, ...
    lr(s) = base_lr * w^0.5 * min(s^-0.5, s * w^-1.5)
rising linearly to base_lr at s = w, then decaying as 1/sqrt(s).
"""

from __future__ import annotations

from typing import Optional

import torch
from torch.optim.lr_scheduler import LRScheduler


def warmup_lr_factor(step: int, warmup_steps: float) -> float:
    """Multiplier of the base lr for update number ``step`` (1-based)."""
    step = max(int(step), 1)
    return warmup_steps**0.5 * min(step**-0.5, step * warmup_steps**-1.5)


class WarmupLR(LRScheduler):
    """lr = base_lr * w^0.5 * min(s^-0.5, s * w^-1.5); the first update uses s = 1.

    Call ``scheduler.step()`` after each ``optimizer.step()``.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, warmup_steps: float = 25000, last_epoch: int = -1):
        if warmup_steps <= 0:
            raise ValueError(f"warmup_steps must be > 0, got {warmup_steps}")
        self.warmup_steps = warmup_steps
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        # After construction last_epoch is 0, the lr of the first update (s = 1).
        factor = warmup_lr_factor(self.last_epoch + 1, self.warmup_steps)
        return [base_lr * factor for base_lr in self.base_lrs]


class ConstantLR(LRScheduler):
    """The base lr at every update (``scheduler: null`` or ``constantlr``)."""

    def get_lr(self):
        return list(self.base_lrs)


SCHEDULERS = {"warmuplr": WarmupLR, "constantlr": ConstantLR}


def build_scheduler(optimizer: torch.optim.Optimizer, name: Optional[str], conf: Optional[dict]) -> LRScheduler:
    """``scheduler`` + ``scheduler_conf`` (FunASR names, case-insensitive) -> LR scheduler."""
    key = (name or "constantlr").lower()
    if key not in SCHEDULERS:
        raise ValueError(f"unknown scheduler {name!r} (expected one of {', '.join(SCHEDULERS)})")
    try:
        return SCHEDULERS[key](optimizer, **(conf or {}))
    except TypeError as e:
        raise ValueError(f"scheduler_conf for {name}: {e}") from None
