"""Optimizers by FunASR name (``optim`` + ``optim_conf``)."""

from __future__ import annotations

import math
from typing import Iterable, List, Optional

import torch

class FairseqAdam(torch.optim.Optimizer):
    """``optim: fairseq_adam`` (FunASR's data2vec pretraining; fairseq's Adam): Adam with decoupled
    weight decay, per parameter at update t with m, v the usual moving averages:

        p <- p - lr * weight_decay * p
        p <- p - lr * sqrt(1 - beta2^t) / (1 - beta1^t) * m / (sqrt(v) + eps)

    torch's AdamW is the same but adds eps to sqrt(v) / sqrt(1 - beta2^t), so the two differ only
    while v is near eps. Config keys are FunASR's: ``adam_betas``, ``adam_eps``, ``weight_decay``.
    """

    def __init__(self, params, lr: float = 1e-3, adam_betas=(0.9, 0.999), adam_eps: float = 1e-8,
                 weight_decay: float = 0.0):
        super().__init__(params, dict(lr=lr, betas=tuple(adam_betas), eps=adam_eps, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad.float()
                state = self.state[p]
                if not state:
                    state["step"] = torch.zeros((), dtype=torch.float64)
                    state["exp_avg"] = torch.zeros_like(p, dtype=torch.float32)
                    state["exp_avg_sq"] = torch.zeros_like(p, dtype=torch.float32)
                state["step"] += 1
                t = int(state["step"])
                exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
                exp_avg.mul_(beta1).add_(grad, alpha=1 - beta1)
                exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                denom = exp_avg_sq.sqrt().add_(group["eps"])
                step_size = group["lr"] * math.sqrt(1 - beta2 ** t) / (1 - beta1 ** t)
                weights = p.float()
                if group["weight_decay"] != 0:
                    weights.add_(weights, alpha=-group["weight_decay"] * group["lr"])
                weights.addcdiv_(exp_avg, denom, value=-step_size)
                if weights is not p:
                    p.copy_(weights)
        return loss


OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD,
              "fairseq_adam": FairseqAdam}


def build_optimizer(params: Iterable[torch.nn.Parameter], name: str, conf: Optional[dict]) -> torch.optim.Optimizer:
    """``optim: adam`` + ``optim_conf: {lr: 5e-4, ...}`` -> optimizer over ``params``.

    Names are case-insensitive; ``optim_conf`` keys are the torch optimizer's keyword arguments
    (lists such as ``betas`` become tuples).
    """
    key = (name or "").lower()
    if key not in OPTIMIZERS:
        raise ValueError(f"unknown optim {name!r} (expected one of {', '.join(OPTIMIZERS)})")
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in (conf or {}).items()}
    try:
        return OPTIMIZERS[key](params, **kwargs)
    except TypeError as e:
        raise ValueError(f"optim_conf for {name}: {e}") from None


def freeze_parameters(model: torch.nn.Module, spec) -> List[str]:
    """FunASR's ``freeze_param``: parameters named ``prefix`` or ``prefix.*`` for each prefix of
    ``spec`` (a comma-separated string or a list) stop training (requires_grad False). Returns
    their names; a prefix that names nothing is an error (a typo would train everything)."""
    if spec is None:
        return []
    prefixes = [p.strip() for p in (spec.split(",") if isinstance(spec, str) else spec) if str(p).strip()]
    frozen = []
    for prefix in prefixes:
        names = [name for name, _ in model.named_parameters() if name == prefix or name.startswith(prefix + ".")]
        if not names:
            raise ValueError(f"freeze_param: {prefix!r} names no parameter of {type(model).__name__}")
        frozen += names
    for name, parameter in model.named_parameters():
        if name in frozen:
            parameter.requires_grad_(False)
    return frozen
