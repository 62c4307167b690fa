"""LayerNorm with the epsilon FunASR checkpoints were trained with."""

import torch
from torch import nn


class LayerNorm(nn.LayerNorm):
    """nn.LayerNorm over the last dim with eps=1e-12 (FunASR's value; nn's default 1e-5 shifts outputs)."""

    def __init__(self, size: int, eps: float = 1e-12):
        super().__init__(size, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x)
