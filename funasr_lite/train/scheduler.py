"""Learning-rate schedules, stepped once per optimizer update.

WarmupLR (ESPnet/FunASR, docs/spec.md §11): at update s = 1, 2, ...
    lr(s) = base_lr * w^0.5 * min(s^-0.5, s * w^-1.5)
rising linearly to base_lr at s = w, then decaying as 1/sqrt(s).

TriStageLR (``tri_stage``, FunASR's data2vec pretraining): warm-up, hold, exponential decay.
"""

from __future__ import annotations

import math
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


def tri_stage_lr_scale(step: int, max_update: int, phase_ratio, init_lr_scale: float = 0.01,
                       final_lr_scale: float = 0.01) -> float:
    """FunASR's (fairseq's) tri-stage schedule as a multiple of the peak lr at update ``step``
    (1-based): linear from init_lr_scale to 1 over the first phase_ratio[0] * max_update updates,
    1 for the next phase_ratio[1] * max_update, then exp decay to final_lr_scale over the last
    phase_ratio[2] * max_update (that update included), final_lr_scale after. Phase lengths are
    truncated to whole updates, as there."""
    warmup, hold, decay = (int(max_update * ratio) for ratio in phase_ratio)
    if step < warmup:
        return init_lr_scale + (1 - init_lr_scale) / warmup * step
    step -= warmup
    if step < hold:
        return 1.0
    step -= hold
    if step <= decay and decay > 0:
        return math.exp(math.log(final_lr_scale) / decay * step)
    return final_lr_scale


class TriStageLR(LRScheduler):
    """``scheduler: tri_stage`` (FunASR's data2vec pretraining): :func:`tri_stage_lr_scale` of each
    base lr. ``max_update`` (the run's optimizer updates) is the pretraining task's
    ``train_conf.max_steps`` when the config does not give it."""

    def __init__(self, optimizer: torch.optim.Optimizer, max_update: int, phase_ratio=(0.03, 0.9, 0.07),
                 init_lr_scale: float = 0.01, final_lr_scale: float = 0.01, last_epoch: int = -1):
        if int(max_update) <= 0:
            raise ValueError(f"max_update must be > 0, got {max_update}")
        if len(phase_ratio) != 3 or abs(sum(phase_ratio) - 1) > 1e-6:
            raise ValueError(f"phase_ratio must be three fractions adding up to 1, got {list(phase_ratio)}")
        if not 0 < final_lr_scale <= 1:
            raise ValueError(f"final_lr_scale must be in (0, 1], got {final_lr_scale}")
        self.max_update, self.phase_ratio = int(max_update), [float(r) for r in phase_ratio]
        self.init_lr_scale, self.final_lr_scale = float(init_lr_scale), float(final_lr_scale)
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        # After construction last_epoch is 0, the lr of the first update (step 1), as FunASR's.
        scale = tri_stage_lr_scale(self.last_epoch + 1, self.max_update, self.phase_ratio, self.init_lr_scale,
                                   self.final_lr_scale)
        return [base_lr * scale for base_lr in self.base_lrs]


class ConstantLR(LRScheduler):
    """The base lr at every update (``scheduler: null`` or ``constantlr``)."""

    def get_lr(self):
        return list(self.base_lrs)


SCHEDULERS = {"warmuplr": WarmupLR, "constantlr": ConstantLR, "tri_stage": TriStageLR}


def build_scheduler(optimizer: torch.optim.Optimizer, name: Optional[str], conf: Optional[dict]) -> LRScheduler:
    """``scheduler`` + ``scheduler_conf`` (FunASR names, case-insensitive) -> LR scheduler."""
    key = (name or "constantlr").lower()
    if key not in SCHEDULERS:
        raise ValueError(f"unknown scheduler {name!r} (expected one of {', '.join(SCHEDULERS)})")
    try:
        return SCHEDULERS[key](optimizer, **(conf or {}))
    except TypeError as e:
        raise ValueError(f"scheduler_conf for {name}: {e}") from None
