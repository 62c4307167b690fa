import math

import pytest
import torch

from funasr_lite.train.optim import build_optimizer
from funasr_lite.train.scheduler import WarmupLR, build_scheduler


def test_warmup_lr_follows_the_formula_step_by_step():
    base_lr, warmup = 5e-4, 10
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.Adam([param], lr=base_lr)
    scheduler = WarmupLR(optimizer, warmup_steps=warmup)
    used = []
    for _ in range(30):
        used.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    # By hand: lr(s) = lr * w^0.5 * min(s^-0.5, s * w^-1.5), s = 1, 2, ...
    expected = [base_lr * math.sqrt(warmup) * min(s**-0.5, s * warmup**-1.5) for s in range(1, 31)]
    assert used == pytest.approx(expected, rel=1e-12)
    # Anchors: first update base/w, peak exactly base at s = w, then 1/sqrt decay.
    assert used[0] == pytest.approx(base_lr / warmup)
    assert used[warmup - 1] == pytest.approx(base_lr)
    assert used[4 * warmup - 1 - 10] == pytest.approx(base_lr * math.sqrt(warmup / (3 * warmup)))


def test_warmup_lr_state_round_trip():
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.Adam([param], lr=1.0)
    scheduler = WarmupLR(optimizer, warmup_steps=4)
    for _ in range(6):
        optimizer.step()
        scheduler.step()
    state = scheduler.state_dict()
    optimizer2 = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler2 = WarmupLR(optimizer2, warmup_steps=4)
    scheduler2.load_state_dict(state)
    optimizer2.step()
    scheduler2.step()
    optimizer.step()
    scheduler.step()
    assert optimizer2.param_groups[0]["lr"] == optimizer.param_groups[0]["lr"] == pytest.approx(2 * min(8**-0.5, 8 / 8))


def test_builders_by_funasr_name_and_errors():
    params = [torch.nn.Parameter(torch.zeros(2))]
    optimizer = build_optimizer(params, "AdamW", {"lr": 1e-3, "betas": [0.9, 0.98], "weight_decay": 0.01})
    assert isinstance(optimizer, torch.optim.AdamW)
    assert optimizer.param_groups[0]["betas"] == (0.9, 0.98)
    assert isinstance(build_scheduler(optimizer, "WarmupLR", {"warmup_steps": 3}), WarmupLR)
    with pytest.raises(ValueError, match="unknown optim 'adamax'"):
        build_optimizer(params, "adamax", {})
    with pytest.raises(ValueError, match="optim_conf for adam"):
        build_optimizer(params, "adam", {"learning_rate": 1})
    with pytest.raises(ValueError, match="unknown scheduler 'noam'"):
        build_scheduler(optimizer, "noam", {})
