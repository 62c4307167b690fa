"""Statistic pooling (``pooling_type: statistic``): the mean and standard deviation of the valid frames.

FunASR's ``StatisticPooling(pooling_dim=(2, 3), eps=1e-12)`` on a (B, C, T, F) map: per channel,
mean and std over time and frequency; variances at or below ``eps`` become ``eps`` before the square
root. Output (B, 2C) = [means, stds]. FunASR's inference pools one utterance with no lengths; given
lengths, FunASR's own layer divides by the valid count but still sums the padded frames, so here
the padded frames are left out of both sums (the per-utterance result, on a padded batch).
"""

from typing import Optional, Sequence, Union

import torch
from torch import nn

VARIANCE_FLOOR = 1e-12  # FunASR's VAR2STD_EPSILON


def statistic_pooling(x: torch.Tensor, lengths: Optional[torch.Tensor] = None,
                      pooling_dim: Sequence[int] = (2, 3), eps: float = VARIANCE_FLOOR) -> torch.Tensor:
    """(B, C, T, ...) map, (B,) valid frames of axis 2 (None: all) -> (B, 2C, rest) [mean, std]
    over ``pooling_dim`` (which must include the time axis 2 when lengths are given)."""
    dims = tuple(sorted(pooling_dim))
    if lengths is None:
        mask = torch.ones_like(x)
    else:
        if 2 not in dims:
            raise ValueError(f"pooling_dim {list(pooling_dim)} leaves out time (2): padded frames cannot be left out")
        shape = [x.size(0), 1, x.size(2)] + [1] * (x.dim() - 3)
        valid = torch.arange(x.size(2), device=x.device)[None, :] < lengths.to(x.device)[:, None]
        mask = valid.reshape(shape).to(x.dtype).expand_as(x)
    count = mask.sum(dim=dims, keepdim=True)
    mean = (x * mask).sum(dim=dims, keepdim=True) / count
    variance = ((x - mean).pow(2) * mask).sum(dim=dims, keepdim=True) / count
    variance = torch.where(variance <= eps, torch.full_like(variance, eps), variance)
    for dim in reversed(dims):
        mean, variance = mean.squeeze(dim), variance.squeeze(dim)
    return torch.cat([mean, variance.sqrt()], dim=1)


class StatisticPooling(nn.Module):
    """FunASR's ``StatisticPooling`` (no weights): :func:`statistic_pooling` with its settings."""

    def __init__(self, pooling_dim: Union[int, Sequence[int]] = (2, 3), eps: float = VARIANCE_FLOOR):
        super().__init__()
        self.pooling_dim = (pooling_dim,) if isinstance(pooling_dim, int) else tuple(pooling_dim)
        self.eps = eps

    def forward(self, x: torch.Tensor, lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
        return statistic_pooling(x, lengths, self.pooling_dim, self.eps)
