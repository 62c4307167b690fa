"""Optimizers by FunASR name (``optim`` + ``optim_conf``)."""

from __future__ import annotations

from typing import Iterable, List, Optional

import torch

OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}


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
