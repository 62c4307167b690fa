"""FunASR's ResNet34 speaker encoder (``encoder: resnet34``), exact per utterance on padded batches.

The network (FunASR ``funasr/models/sond/encoder/resnet34_encoder.py``, a port of a TensorFlow
model): fbank (B, T, F) -> a 2-D map (B, 1, T, F) -> 3x3 head conv + BN + ReLU -> four blocks of
pre-activation residual layers (BN -> ReLU -> 3x3 conv, twice; a 1x1 conv + BN shortcut where the
width or the stride changes; blocks 2-4 halve time and frequency) -> a 1x1 conv to
``num_nodes_pooling_layer`` channels -> ReLU -> BN. Output (B, C, T/8, F/8) (rounded up).

The stride-2 convolutions pad like TensorFlow's ``padding="same"``: one zero row after the map, and
one before it only when the map's length is odd. So the frame grid depends on each utterance's own
length. FunASR's inference embeds one utterance at a time; here a padded batch gives every
utterance what it gives alone: frames past an utterance's length are zeroed before every 3x3
convolution (as the conv's own zero padding would be), and each stride-2 layer pads each utterance
by its own length's parity. Lengths follow FunASR's ``(length + 1) // 2`` per stride-2 layer.
"""

from typing import Sequence, Tuple

import torch
from torch import nn
from torch.nn import functional as F

BN_EPS = 1e-3  # the TensorFlow default the model was trained with


def time_mask(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """(B,) lengths -> (B, 1, max_len, 1) bool, True = valid frame (broadcasts over (B, C, T, F))."""
    return (torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None])[:, None, :, None]


def zero_padding_frames(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """(B, C, T, F) with the frames at and past each utterance's length set to 0."""
    return x.masked_fill(~time_mask(lengths, x.size(2)), 0.0)


def pad_same(x: torch.Tensor, lengths: torch.Tensor, stride: int) -> torch.Tensor:
    """Zero padding of TF ``same`` for a 3x3 kernel, each utterance by its own length.

    stride 1: one row/column on every side. stride 2: one after; one before only where the length
    (time: each utterance's ``lengths``; frequency: the map's width) is odd. Time then has T + 2
    rows for every utterance, so the stride-2 conv gives ceil(T / 2) frames.
    """
    if stride == 1:
        return F.pad(x, (1, 1, 1, 1))
    if stride != 2:
        raise ValueError(f"stride {stride}: the ResNet34 encoder uses 1 or 2")
    width = x.size(3)
    padded = F.pad(x, (width % 2, 1, 1, 2))  # time: 1 before, 2 after -> T + 3 rows
    odd = (lengths % 2 == 1)[:, None, None, None]
    # odd length: keep the row before (rows 0 .. T+1); even: drop it (rows 1 .. T+2)
    return torch.where(odd, padded[:, :, :-1], padded[:, :, 1:])


class BasicLayer(nn.Module):
    """One pre-activation residual layer: BN -> ReLU -> conv3x3(stride) -> BN -> ReLU -> conv3x3,
    plus the input (through conv1x1(stride) + BN when the width or the stride changes)."""

    def __init__(self, in_filters: int, filters: int, stride: int, bn_momentum: float = 0.5):
        super().__init__()
        self.in_filters, self.filters, self.stride = in_filters, filters, stride
        self.bn1 = nn.BatchNorm2d(in_filters, eps=BN_EPS, momentum=bn_momentum)
        self.relu1 = nn.ReLU()
        self.conv1 = nn.Conv2d(in_filters, filters, 3, stride, bias=False)
        self.bn2 = nn.BatchNorm2d(filters, eps=BN_EPS, momentum=bn_momentum)
        self.relu2 = nn.ReLU()
        self.conv2 = nn.Conv2d(filters, filters, 3, 1, bias=False)
        self.has_shortcut_conv = in_filters != filters or stride > 1
        if self.has_shortcut_conv:
            self.conv_sc = nn.Conv2d(in_filters, filters, 1, stride, bias=False)
            self.bn_sc = nn.BatchNorm2d(filters, eps=BN_EPS, momentum=bn_momentum)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """(B, C_in, T, F), (B,) -> (B, C_out, T', F'), (B,) with T' = ceil(T / stride)."""
        shortcut = self.bn_sc(self.conv_sc(x)) if self.has_shortcut_conv else x  # 1x1: no time mixing
        out = zero_padding_frames(self.relu1(self.bn1(x)), lengths)
        out = self.conv1(pad_same(out, lengths, self.stride))
        if self.stride == 2:
            lengths = (lengths + 1) // 2
        out = zero_padding_frames(self.relu2(self.bn2(out)), lengths)
        out = self.conv2(pad_same(out, lengths, 1))
        return out + shortcut, lengths


class BasicBlock(nn.Module):
    """``num_layer`` BasicLayers (``layer_0`` ... for FunASR's weight names); the first one strides."""

    def __init__(self, in_filters: int, filters: int, num_layer: int, stride: int, bn_momentum: float = 0.5):
        super().__init__()
        self.num_layer = num_layer
        for index in range(num_layer):
            self.add_module(f"layer_{index}", BasicLayer(in_filters if index == 0 else filters, filters,
                                                         stride if index == 0 else 1, bn_momentum))

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        for index in range(self.num_layer):
            x, lengths = getattr(self, f"layer_{index}")(x, lengths)
        return x, lengths


class ResNet34(nn.Module):
    """FunASR's ``ResNet34`` encoder: its constructor arguments and weight names (module docstring).

    Args:
        input_size: fbank dims (F); the frequency axis is convolved, so any F >= 1 builds.
        use_head_conv: a 3x3 conv + BN + ReLU to ``filters_in_block[0]`` channels first.
        batchnorm_momentum: BatchNorm momentum (training only).
        use_head_maxpool: a 3x3 stride-1 max pool after the head.
        num_nodes_pooling_layer: output channels C.
        layers_in_block, filters_in_block: residual layers and width of each block; blocks after the
            first halve time and frequency.
    """

    time_ds_ratio = 8

    def __init__(self, input_size: int, use_head_conv: bool = True, batchnorm_momentum: float = 0.5,
                 use_head_maxpool: bool = False, num_nodes_pooling_layer: int = 256,
                 layers_in_block: Sequence[int] = (3, 4, 6, 3), filters_in_block: Sequence[int] = (32, 64, 128, 256)):
        super().__init__()
        if len(layers_in_block) != len(filters_in_block) or not layers_in_block:
            raise ValueError(f"layers_in_block {list(layers_in_block)} and filters_in_block "
                             f"{list(filters_in_block)} must be non-empty and of one length")
        self.input_size = int(input_size)
        self.use_head_conv, self.use_head_maxpool = use_head_conv, use_head_maxpool
        self.num_nodes_pooling_layer = num_nodes_pooling_layer
        self.layers_in_block, self.filters_in_block = tuple(layers_in_block), tuple(filters_in_block)
        if use_head_conv:
            self.pre_conv = nn.Conv2d(1, filters_in_block[0], 3, 1, 1, bias=False)
            self.pre_conv_bn = nn.BatchNorm2d(filters_in_block[0], eps=BN_EPS, momentum=batchnorm_momentum)
        if use_head_maxpool:
            self.head_maxpool = nn.MaxPool2d(3, 1, padding=1)
        in_filters = filters_in_block[0] if use_head_conv else 1
        for index, (num_layer, filters) in enumerate(zip(layers_in_block, filters_in_block)):
            self.add_module(f"block_{index}", BasicBlock(in_filters, filters, num_layer, 1 if index == 0 else 2,
                                                         batchnorm_momentum))
            in_filters = filters
        self.resnet0_dense = nn.Conv2d(filters_in_block[-1], num_nodes_pooling_layer, 1)
        self.resnet0_bn = nn.BatchNorm2d(num_nodes_pooling_layer, eps=BN_EPS, momentum=batchnorm_momentum)

    def output_size(self) -> int:
        return self.num_nodes_pooling_layer

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """(B, T, F) fbank, (B,) frames -> (B, C, T', F') map, (B,) frames of the map."""
        if feats.dim() != 3 or feats.size(-1) != self.input_size:
            raise ValueError(f"ResNet34 takes (B, T, {self.input_size}) features, got {tuple(feats.shape)}")
        lengths = lengths.to(feats.device)
        x = zero_padding_frames(feats[:, None], lengths)
        if self.use_head_conv:
            x = F.relu(self.pre_conv_bn(self.pre_conv(x)))
        if self.use_head_maxpool:  # max pooling pads with -inf: frames past the end must not win either
            x = self.head_maxpool(x.masked_fill(~time_mask(lengths, x.size(2)), float("-inf")))
        for index in range(len(self.layers_in_block)):
            x, lengths = getattr(self, f"block_{index}")(x, lengths)
        x = self.resnet0_bn(F.relu(self.resnet0_dense(x)))
        return x, lengths
