"""Conformer convolution module (arXiv 2005.08100 §2.2); parameter names match FunASR."""

from typing import Optional

import torch
from torch import nn


class ConvolutionModule(nn.Module):
    """pointwise conv (D -> 2D) -> GLU -> depthwise conv (kernel k) -> BatchNorm -> activation
    -> pointwise conv (D -> D).  (B, T, D) -> (B, T, D).
    """

    def __init__(self, channels: int, kernel_size: int, activation: Optional[nn.Module] = None, bias: bool = True):
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd for 'same' padding, got {kernel_size}")
        self.pointwise_conv1 = nn.Conv1d(channels, 2 * channels, kernel_size=1, bias=bias)
        self.depthwise_conv = nn.Conv1d(
            channels, channels, kernel_size, padding=(kernel_size - 1) // 2, groups=channels, bias=bias
        )
        self.norm = nn.BatchNorm1d(channels)
        self.pointwise_conv2 = nn.Conv1d(channels, channels, kernel_size=1, bias=bias)
        self.activation = activation if activation is not None else nn.ReLU()

    def forward(self, x: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """x (B, T, D); mask (B, T) True = valid, or None.

        With a mask, padded frames are zeroed just before the depthwise convolution, so they
        cannot leak into valid frames (FunASR passes no mask, so its outputs near the end of
        an utterance depend on how much padding follows it).
        """
        x = nn.functional.glu(self.pointwise_conv1(x.transpose(1, 2)), dim=1)  # (B, D, T)
        if mask is not None:
            x = x.masked_fill(~mask.unsqueeze(1), 0.0)
        x = self.activation(self.norm(self.depthwise_conv(x)))
        return self.pointwise_conv2(x).transpose(1, 2)
