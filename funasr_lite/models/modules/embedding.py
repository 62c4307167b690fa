"""Sinusoidal position encoding used by the SAN-M encoder (input_layer "pe")."""

import math

import torch
from torch import nn


def sinusoidal_position_encoding(
    num_positions: int, dim: int, dtype: torch.dtype = torch.float32, device=None
) -> torch.Tensor:
    """Position encoding for positions 1..num_positions -> (num_positions, dim).

    Layout is [sin(p * inv_0..inv_{dim/2-1}), cos(p * inv_0..)] (all sines, then all cosines), with
    inv_i = exp(-i * ln(10000) / (dim/2 - 1)). Computed in `dtype` because released models were
    trained with float32 encodings.
    """
    if dim % 2 != 0 or dim < 4:
        raise ValueError(f"sinusoidal position encoding needs an even dim >= 4, got {dim}")
    half = dim // 2
    log_increment = math.log(10000.0) / (half - 1)
    inv_timescales = torch.exp(
        torch.arange(half, device=device, dtype=dtype) * torch.tensor(-log_increment, dtype=dtype)
    )
    # Positions start at 1, not 0: the released models were trained that way.
    positions = torch.arange(1, num_positions + 1, device=device, dtype=dtype)
    scaled_time = positions[:, None] * inv_timescales[None, :]
    return torch.cat([torch.sin(scaled_time), torch.cos(scaled_time)], dim=1)


class SinusoidalPositionEncoder(nn.Module):
    """x + PE: (B, T, D) -> (B, T, D). Parameter-free, so checkpoints hold no key for it."""

    def forward(self, x: torch.Tensor, start: int = 0) -> torch.Tensor:
        """``start``: frames before x in a stream (FunASR's StreamSinusoidalPositionEncoder:
        positions start + 1 ..)."""
        _, num_frames, dim = x.shape
        return x + sinusoidal_position_encoding(start + num_frames, dim, x.dtype, x.device)[None, start:]
