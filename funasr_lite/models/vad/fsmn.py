"""FSMN acoustic model of FunASR's FSMN-VAD (``encoder: FSMN``), causal, run chunk by chunk.

    x (B, T, input_dim)                          LFR-stacked, CMVN-normalised fbank
    -> affine (input_affine_dim) -> affine (linear_dim) -> ReLU
    -> fsmn_layers x [ linear (proj_dim, no bias)
                       -> memory block: h[t] = p[t] + sum_k w[k] * p[t - (lorder-1-k) * lstride]
                       -> affine (linear_dim) -> ReLU ]
    -> affine (output_affine_dim) -> affine (output_dim) -> softmax      (B, T, output_dim)

The memory block is a depthwise convolution over past frames only (``rorder`` 0), so a long
recording can be scored chunk by chunk: each layer carries its last ``(lorder-1) * lstride``
projected frames (zeros before the first chunk) and the scores equal one pass over the whole
input. Parameter names and shapes are FunASR's (``in_linear1.linear.weight``,
``fsmn.0.fsmn_block.conv_left.weight`` (proj_dim, 1, lorder, 1), ...), so a released ``model.pt``
loads strictly; the one-attribute wrapper modules below exist only to keep those names.
"""

from __future__ import annotations

from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn


class _Affine(nn.Module):
    """``nn.Linear`` under the attribute name ``linear`` (FunASR's parameter names)."""

    def __init__(self, input_dim: int, output_dim: int, bias: bool = True):
        super().__init__()
        self.linear = nn.Linear(input_dim, output_dim, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)


class _MemoryBlock(nn.Module):
    """Causal depthwise filter over time plus the identity: ``h = p + conv_left(p)``."""

    def __init__(self, dim: int, lorder: int, lstride: int):
        super().__init__()
        self.lorder = lorder
        self.lstride = lstride
        self.conv_left = nn.Conv2d(dim, dim, (lorder, 1), dilation=(lstride, 1), groups=dim, bias=False)

    @property
    def context(self) -> int:
        """Past frames each output frame reads: ``(lorder - 1) * lstride``."""
        return (self.lorder - 1) * self.lstride

    def forward(self, p: torch.Tensor, past: Optional[torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor]:
        """p: (B, T, D); past: (B, context, D) frames before p (None: zeros).

        Returns (B, T, D) and the new past (B, context, D).
        """
        batch, _, dim = p.shape
        if past is None:
            past = p.new_zeros(batch, self.context, dim)
        extended = torch.cat([past, p], dim=1)  # (B, context + T, D)
        weight = self.conv_left.weight.squeeze(-1)  # (D, 1, lorder)
        filtered = F.conv1d(extended.transpose(1, 2), weight, dilation=self.lstride, groups=dim)  # (B, D, T)
        new_past = extended[:, extended.shape[1] - self.context :, :]
        return p + filtered.transpose(1, 2), new_past


class _FsmnLayer(nn.Module):
    def __init__(self, linear_dim: int, proj_dim: int, lorder: int, lstride: int):
        super().__init__()
        self.linear = _Affine(linear_dim, proj_dim, bias=False)
        self.fsmn_block = _MemoryBlock(proj_dim, lorder, lstride)
        self.affine = _Affine(proj_dim, linear_dim)

    def forward(self, x: torch.Tensor, past: Optional[torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor]:
        h, new_past = self.fsmn_block(self.linear(x), past)
        return torch.relu(self.affine(h)), new_past


class FSMN(nn.Module):
    """FunASR's ``FSMN`` encoder (``encoder_conf`` keys as constructor arguments)."""

    def __init__(
        self,
        input_dim: int,
        input_affine_dim: int,
        fsmn_layers: int,
        linear_dim: int,
        proj_dim: int,
        lorder: int,
        rorder: int,
        lstride: int,
        rstride: int,
        output_affine_dim: int,
        output_dim: int,
        use_softmax: bool = True,
    ):
        super().__init__()
        if rorder != 0:
            # A look-ahead memory block would need future frames across chunk boundaries.
            raise ValueError(f"FSMN with rorder={rorder} is not supported (the released VADs use rorder 0)")
        if lorder < 1 or lstride < 1:
            raise ValueError(f"FSMN needs lorder >= 1 and lstride >= 1, got lorder={lorder}, lstride={lstride}")
        del rstride  # only meaningful with rorder > 0
        self.input_dim = input_dim
        self.output_dim = output_dim
        self.use_softmax = use_softmax
        self.in_linear1 = _Affine(input_dim, input_affine_dim)
        self.in_linear2 = _Affine(input_affine_dim, linear_dim)
        self.fsmn = nn.ModuleList(_FsmnLayer(linear_dim, proj_dim, lorder, lstride) for _ in range(fsmn_layers))
        self.out_linear1 = _Affine(linear_dim, output_affine_dim)
        self.out_linear2 = _Affine(output_affine_dim, output_dim)

    def forward(
        self, x: torch.Tensor, cache: Optional[List[torch.Tensor]] = None
    ) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        """x: (B, T, input_dim); cache: per-layer past frames from the previous chunk (None: start).

        Returns posteriors (softmax; logits if ``use_softmax`` is False) (B, T, output_dim) and the
        cache for the next chunk.
        """
        if x.shape[-1] != self.input_dim:
            raise ValueError(f"FSMN expects {self.input_dim}-dim input, got shape {tuple(x.shape)}")
        h = torch.relu(self.in_linear2(self.in_linear1(x)))
        new_cache = []
        for index, layer in enumerate(self.fsmn):
            h, past = layer(h, None if cache is None else cache[index])
            new_cache.append(past)
        out = self.out_linear2(self.out_linear1(h))
        return (torch.softmax(out, dim=-1) if self.use_softmax else out), new_cache
