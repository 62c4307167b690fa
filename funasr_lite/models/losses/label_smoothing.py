"""Cross-entropy with label smoothing, as KL divergence to the smoothed target distribution."""

import math
from typing import Optional

import torch
from torch import nn


class LabelSmoothingLoss(nn.Module):
    """KL(q || softmax(logits)) with q = 1-eps on the target and eps/(V-1) on every other token.

    Summed over tokens and divided by the batch size, or by the number of target tokens when
    normalize_length. Positions whose target is padding_idx are ignored.
    """

    def __init__(self, size: int, padding_idx: int = -1, smoothing: float = 0.0, normalize_length: bool = False):
        super().__init__()
        if size < 2:
            raise ValueError(f"label smoothing needs a vocabulary of at least 2, got {size}")
        self.size = size
        self.padding_idx = padding_idx
        self.smoothing = smoothing
        self.confidence = 1.0 - smoothing
        self.normalize_length = normalize_length
        off_target = smoothing / (size - 1)
        # sum_v q_v log q_v is the same for every position (0 log 0 = 0).
        self.target_entropy_term = (
            (self.confidence * math.log(self.confidence) if self.confidence > 0 else 0.0)
            + (smoothing * math.log(off_target) if smoothing > 0 else 0.0)
        )
        self.off_target = off_target

    def forward(self, logits: torch.Tensor, targets: torch.Tensor,
                weights: Optional[torch.Tensor] = None) -> torch.Tensor:
        """logits (B, L, V), targets (B, L) long padded with padding_idx -> scalar loss.

        ``weights`` (B, L), optional: each position's KL is scaled by it (and with normalize_length
        the sum is divided by the valid positions' total weight: a weighted mean)."""
        if logits.size(-1) != self.size:
            raise ValueError(f"logits have {logits.size(-1)} classes, expected {self.size}")
        batch_size = logits.size(0)
        log_probs = torch.log_softmax(logits.float(), dim=-1)
        valid = targets != self.padding_idx
        safe_targets = targets.masked_fill(~valid, 0)
        target_log_prob = log_probs.gather(-1, safe_targets.unsqueeze(-1)).squeeze(-1)
        # sum_v q_v log p_v without materialising q: the target entry plus the off-target mass.
        cross = self.confidence * target_log_prob + self.off_target * (log_probs.sum(-1) - target_log_prob)
        kl = (self.target_entropy_term - cross) * valid
        if weights is not None:
            kl = kl * weights
            denominator = (weights * valid).sum() if self.normalize_length else batch_size
        else:
            denominator = valid.sum() if self.normalize_length else batch_size
        return kl.sum() / denominator
