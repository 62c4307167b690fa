"""Multi-head attention: plain, relative-position (Transformer-XL) and its legacy variant.

Parameter names (linear_q/k/v/out, linear_pos, pos_bias_u/v) match FunASR checkpoints.
Masks are bool with True = valid key, shaped (B, T2) or (B, T1, T2).
"""

import math
from typing import Optional

import torch
from torch import nn

from funasr_lite.models.modules.dropout import Dropout


def _broadcastable_key_mask(mask: torch.Tensor) -> torch.Tensor:
    """(B, T2) or (B, T1, T2) -> (B, 1, T1 or 1, T2), ready to broadcast over heads."""
    if mask.dim() == 2:
        mask = mask.unsqueeze(1)
    return mask.unsqueeze(1)


class MultiHeadedAttention(nn.Module):
    """Scaled dot-product attention over `n_head` heads of size n_feat / n_head."""

    def __init__(self, n_head: int, n_feat: int, dropout_rate: float):
        super().__init__()
        if n_feat % n_head != 0:
            raise ValueError(f"n_feat={n_feat} is not divisible by n_head={n_head}")
        self.d_k = n_feat // n_head
        self.h = n_head
        self.linear_q = nn.Linear(n_feat, n_feat)
        self.linear_k = nn.Linear(n_feat, n_feat)
        self.linear_v = nn.Linear(n_feat, n_feat)
        self.linear_out = nn.Linear(n_feat, n_feat)
        self.dropout = Dropout(p=dropout_rate)

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, h*d_k) -> (B, h, T, d_k)."""
        return x.view(x.size(0), -1, self.h, self.d_k).transpose(1, 2)

    def project_qkv(self, query, key, value):
        """Project (B, T1, D), (B, T2, D), (B, T2, D) to per-head (B, h, T, d_k) tensors."""
        q = self.split_heads(self.linear_q(query))
        k = self.split_heads(self.linear_k(key))
        v = self.split_heads(self.linear_v(value))
        return q, k, v

    def attend(self, value: torch.Tensor, scores: torch.Tensor, mask: Optional[torch.Tensor]):
        """Softmax over keys of scores (B, h, T1, T2), weight value (B, h, T2, d_k), project out.

        Masked keys get exactly zero weight; a query whose keys are all masked gets a zero
        context instead of NaN.
        """
        if mask is not None:
            invalid = ~_broadcastable_key_mask(mask)
            scores = scores.masked_fill(invalid, torch.finfo(scores.dtype).min)
            weights = torch.softmax(scores, dim=-1).masked_fill(invalid, 0.0)
        else:
            weights = torch.softmax(scores, dim=-1)
        context = torch.matmul(self.dropout(weights), value)  # (B, h, T1, d_k)
        context = context.transpose(1, 2).reshape(value.size(0), -1, self.h * self.d_k)
        return self.linear_out(context)

    def forward(self, query, key, value, mask: Optional[torch.Tensor]) -> torch.Tensor:
        """query (B, T1, D), key/value (B, T2, D), mask (B, T2) or (B, T1, T2) -> (B, T1, D)."""
        q, k, v = self.project_qkv(query, key, value)
        scores = torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(self.d_k)
        return self.attend(v, scores, mask)


class RelPositionMultiHeadedAttention(MultiHeadedAttention):
    """Self-attention with Transformer-XL relative positions (arXiv 1901.02860 §3.3).

    score(i, j) = (q_i + u)·k_j + (q_i + v)·W p(i - j), both divided by sqrt(d_k), where
    pos_emb (1, 2T-1, D) from `RelPositionalEncoding` lists distances T-1 .. -(T-1).
    """

    def __init__(self, n_head: int, n_feat: int, dropout_rate: float, zero_triu: bool = False):
        super().__init__(n_head, n_feat, dropout_rate)
        self.zero_triu = zero_triu
        self.linear_pos = nn.Linear(n_feat, n_feat, bias=False)
        self.pos_bias_u = nn.Parameter(torch.empty(self.h, self.d_k))
        self.pos_bias_v = nn.Parameter(torch.empty(self.h, self.d_k))
        nn.init.xavier_uniform_(self.pos_bias_u)
        nn.init.xavier_uniform_(self.pos_bias_v)

    def shift_to_distances(self, scores_by_index: torch.Tensor) -> torch.Tensor:
        """(B, h, T, 2T-1) scores per pos_emb index -> (B, h, T, T) scores per key.

        Key j seen from query i sits at distance i - j, i.e. pos_emb index T-1-i+j.
        """
        length = scores_by_index.size(2)
        steps = torch.arange(length, device=scores_by_index.device)
        index = (length - 1) - steps.unsqueeze(1) + steps.unsqueeze(0)  # (T, T)
        index = index.expand(*scores_by_index.shape[:2], length, length)
        shifted = torch.gather(scores_by_index, 3, index)
        if self.zero_triu:
            shifted = shifted * torch.ones(length, length, device=shifted.device).tril()
        return shifted

    def relative_scores(self, q: torch.Tensor, k: torch.Tensor, pos_emb: torch.Tensor) -> torch.Tensor:
        """q (B, h, T1, d_k), k (B, h, T2, d_k), pos_emb (1 or B, P, D) -> (B, h, T1, T2)."""
        p = self.split_heads(self.linear_pos(pos_emb))  # (1 or B, h, P, d_k)
        q_with_u = q + self.pos_bias_u.unsqueeze(1)
        q_with_v = q + self.pos_bias_v.unsqueeze(1)
        content = torch.matmul(q_with_u, k.transpose(-2, -1))
        position = self.shift_to_distances(torch.matmul(q_with_v, p.transpose(-2, -1)))
        return (content + position) / math.sqrt(self.d_k)

    def forward(self, query, key, value, pos_emb: torch.Tensor, mask: Optional[torch.Tensor]):
        """query/key/value (B, T, D), pos_emb (1, P, D), mask (B, T) or (B, T, T) -> (B, T, D)."""
        q, k, v = self.project_qkv(query, key, value)
        return self.attend(v, self.relative_scores(q, k, pos_emb), mask)


class LegacyRelPositionMultiHeadedAttention(RelPositionMultiHeadedAttention):
    """Relative attention as in ESPnet before PR 2816 (FunASR Conformer's default).

    pos_emb (1, T, D) comes from `LegacyRelPositionalEncoding`. The legacy shift applies the
    Transformer-XL padding trick to a square matrix, which leaves, above the diagonal, the
    scores of the next query row. We reproduce those values exactly (released checkpoints
    were trained with them) rather than the trick itself:
      j <= i:     in[i, T-1-i+j]
      j == i+1:   0
      j >= i+2:   in[i+1, j-i-2]
    """

    def __init__(self, n_head: int, n_feat: int, dropout_rate: float, zero_triu: bool = False):
        super().__init__(n_head, n_feat, dropout_rate, zero_triu)

    def shift_to_distances(self, scores_by_index: torch.Tensor) -> torch.Tensor:
        """(B, h, T, T) -> (B, h, T, T) with the legacy layout described in the class doc."""
        length = scores_by_index.size(2)
        device = scores_by_index.device
        i = torch.arange(length, device=device).unsqueeze(1)
        j = torch.arange(length, device=device).unsqueeze(0)
        above = j > i
        rows = i + above.long()  # j > i implies i <= T-2, so rows stay in range
        cols = torch.where(above, (j - i - 2).clamp(min=0), length - 1 - i + j)
        shifted = scores_by_index[:, :, rows, cols]
        shifted = shifted.masked_fill(j == i + 1, 0.0)
        if self.zero_triu:
            shifted = shifted * torch.ones(length, length, device=device).tril()
        return shifted
