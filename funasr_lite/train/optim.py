"""Optimizers by FunASR name (``optim`` + ``optim_conf``)."""

from __future__ import annotations

from typing import Iterable, Optional

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
