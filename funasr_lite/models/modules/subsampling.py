"""Convolutional front-ends that shorten (B, T, F) features by 2, 4, 6 or 8 in time.

Layout and parameter names follow FunASR (`conv.{0,2,4}`, `out.0`, with the position
encoding at `out.1`), so checkpoints load unchanged. Each class lists its conv stages as
(kernel, stride); the output-length rules live here, next to the convolutions.
"""

from typing import List, Tuple

import torch
from torch import nn


class Conv2dSubsampling(nn.Module):
    """Conv2d stages with ReLU over (time, freq), then Linear(C * F', D) and a position encoding.

    forward(x (B, T, F), mask (B, T)) -> (out, mask (B, T')) where out is (B, T', D), or the
    pair (x, pos_emb) when the position encoding is relative.
    """

    # (kernel, stride) per conv stage; applied to both time and frequency.
    stages: List[Tuple[int, int]] = [(3, 2), (3, 2)]

    def __init__(self, idim: int, odim: int, dropout_rate: float, pos_enc: nn.Module):
        super().__init__()
        layers = []
        in_channels = 1
        freq = idim
        for kernel, stride in self.stages:
            layers += [nn.Conv2d(in_channels, odim, kernel, stride), nn.ReLU()]
            in_channels = odim
            freq = (freq - kernel) // stride + 1
        self.conv = nn.Sequential(*layers)
        # dropout_rate is accepted for FunASR's signature; its dropout lives in pos_enc.
        self.out = nn.Sequential(nn.Linear(odim * freq, odim), pos_enc)

    @property
    def min_input_frames(self) -> int:
        """Fewest input frames that still give one output frame."""
        frames = 1
        for kernel, stride in reversed(self.stages):
            frames = (frames - 1) * stride + kernel
        return frames

    def subsample_mask(self, mask: torch.Tensor) -> torch.Tensor:
        """(B, T) -> (B, T'): output frame t is valid iff its first input frame is (FunASR's rule).

        This can count a frame whose receptive field reaches into padding as valid, so the
        lengths of a padded batch may exceed those of the same utterances alone.
        """
        for kernel, stride in self.stages:
            mask = mask[:, : -(kernel - 1) : stride]
        return mask

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """(B,) -> (B,): frames the convolutions produce from `lengths` unpadded frames."""
        for kernel, stride in self.stages:
            lengths = torch.div(lengths - kernel, stride, rounding_mode="floor") + 1
        return lengths.clamp(min=0)

    def forward(self, x: torch.Tensor, mask: torch.Tensor):
        if x.size(1) < self.min_input_frames:
            raise ValueError(
                f"{x.size(1)} frames are too few for {type(self).__name__}; "
                f"it needs at least {self.min_input_frames}"
            )
        x = self.conv(x.unsqueeze(1))  # (B, C, T', F')
        batch, channels, frames, freq = x.shape
        x = self.out(x.transpose(1, 2).reshape(batch, frames, channels * freq))
        return x, self.subsample_mask(mask)


class Conv2dSubsampling2(Conv2dSubsampling):
    """Time / 2."""

    stages = [(3, 2), (3, 1)]


class Conv2dSubsampling6(Conv2dSubsampling):
    """Time / 6."""

    stages = [(3, 2), (5, 3)]


class Conv2dSubsampling8(Conv2dSubsampling):
    """Time / 8."""

    stages = [(3, 2), (3, 2), (3, 2)]


SUBSAMPLINGS = {
    "conv2d": Conv2dSubsampling,
    "conv2d2": Conv2dSubsampling2,
    "conv2d6": Conv2dSubsampling6,
    "conv2d8": Conv2dSubsampling8,
}


class Conv1dSubsampling(nn.Module):
    """FunASR's ``Conv1dSubsampling`` (UniASR's ``stride_conv``): zero padding ``pad`` = (left,
    right) on the time axis, one Conv1d(idim, odim, kernel_size, stride), ReLU. (B, T, idim) ->
    (B, T', odim), lengths (L - 1) // stride + 1 (FunASR's rule)."""

    def __init__(self, idim: int, odim: int, kernel_size: int, stride: int, pad=(0, 0),
                 tf2torch_tensor_name_prefix_torch: str = "stride_conv",
                 tf2torch_tensor_name_prefix_tf: str = "seq2seq/proj_encoder/downsampling"):
        super().__init__()
        self.conv = nn.Conv1d(idim, odim, kernel_size, stride)
        self.padding = tuple(int(p) for p in pad)
        self.stride = int(stride)
        self.odim = int(odim)

    def output_size(self) -> int:
        return self.odim

    def forward(self, x, lengths=None):
        x = torch.relu(self.conv(nn.functional.pad(x.transpose(1, 2), self.padding))).transpose(1, 2)
        return x, None if lengths is None else (lengths - 1) // self.stride + 1
