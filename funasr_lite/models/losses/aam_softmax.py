"""Additive angular margin softmax (AAM-softmax, ArcFace): the speaker model's training loss.

FunASR's released x-vector was trained (in TensorFlow, outside FunASR) with AAM-softmax, scale 8,
margin 0.25 (docs/speaker.md). Given the cosines ``cos θ_j`` between an embedding and each
speaker's weight row (both L2-normalised; ``XVector(..., cosine=True)`` gives them), the target's
angle is widened by the margin ``m`` and every logit scaled by ``s``::

    logit_j = s * cos(θ_y + m)   for the target speaker y
    logit_j = s * cos θ_j        for the others
    loss    = mean over the batch of  -log softmax(logit)_y

Past θ_y = π - m, cos(θ_y + m) would grow again with θ_y; there (ArcFace's rule, as insightface
and wespeaker write it) the target logit is ``s * (cos θ_y - m sin(π - m))`` instead: it keeps
decreasing in θ_y (with a step of ``cos m + m sin m - 1`` down at the joint, 0.031 for m = 0.25).
``margin = 0`` is a plain softmax over scaled cosines.
"""

import math
from typing import Tuple

import torch
from torch import nn
from torch.nn import functional as F


def aam_softmax_logits(cosine: torch.Tensor, labels: torch.Tensor, scale: float, margin: float) -> torch.Tensor:
    """(B, C) cosines in [-1, 1], (B,) target ids -> (B, C) scaled logits with the target's angle
    widened by ``margin`` (module docstring)."""
    cosine = cosine.clamp(-1.0, 1.0)
    target_cos = cosine.gather(1, labels[:, None])
    sine = (1.0 - target_cos.pow(2)).clamp(min=0.0).sqrt()
    widened = target_cos * math.cos(margin) - sine * math.sin(margin)  # cos(θ + m)
    # Past θ = π - m: ArcFace's continuation (decreasing in θ).
    widened = torch.where(target_cos > math.cos(math.pi - margin), widened,
                          target_cos - margin * math.sin(math.pi - margin))
    logits = cosine.scatter(1, labels[:, None], widened)
    return scale * logits


class AAMSoftmaxLoss(nn.Module):
    """Mean AAM-softmax cross entropy of a batch (module docstring); also returns the accuracy of
    the plain cosines (argmax of ``cos θ_j``, no margin)."""

    def __init__(self, scale: float = 8.0, margin: float = 0.25):
        super().__init__()
        if scale <= 0:
            raise ValueError(f"AAM-softmax scale must be > 0, got {scale}")
        if not 0.0 <= margin < math.pi / 2:
            raise ValueError(f"AAM-softmax margin must be in [0, pi/2) radians, got {margin}")
        self.scale, self.margin = float(scale), float(margin)

    def forward(self, cosine: torch.Tensor, labels: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """(B, C) cosines, (B,) long targets -> (mean loss, accuracy), scalars."""
        if cosine.dim() != 2 or labels.shape != cosine.shape[:1]:
            raise ValueError(f"cosine (B, C) and labels (B,) expected, got {tuple(cosine.shape)} and {tuple(labels.shape)}")
        logits = aam_softmax_logits(cosine.float(), labels, self.scale, self.margin)
        loss = F.cross_entropy(logits, labels)
        accuracy = (cosine.argmax(dim=1) == labels).float().mean()
        return loss, accuracy

    def extra_repr(self) -> str:
        return f"scale={self.scale}, margin={self.margin}"


__all__ = ["AAMSoftmaxLoss", "aam_softmax_logits"]
