"""CTC head: Linear(encoder_output_size, vocab) + torch's CTC loss (parameter name ctc_lo as FunASR)."""

import torch
import torch.nn.functional as F
from torch import nn

from funasr_lite.models.modules.dropout import dropout


class CTC(nn.Module):
    """CTC output layer and loss, loss summed over the batch and divided by the batch size."""

    def __init__(
        self,
        odim: int,
        encoder_output_size: int,
        dropout_rate: float = 0.0,
        ctc_type: str = "builtin",
        reduce: bool = True,
        ignore_nan_grad: bool = True,
        extra_linear: bool = True,
        blank_id: int = 0,
    ):
        super().__init__()
        if ctc_type != "builtin":
            raise NotImplementedError(f"CTC: ctc_type={ctc_type!r} is not supported (only 'builtin')")
        if not reduce or not extra_linear:
            raise NotImplementedError("CTC: only reduce=True and extra_linear=True are supported")
        self.ctc_lo = nn.Linear(encoder_output_size, odim)
        self.dropout_rate = dropout_rate
        self.blank_id = blank_id
        # Impossible alignments (target longer than input) contribute 0 instead of inf/NaN gradients.
        self.zero_infinity = ignore_nan_grad

    def log_softmax(self, hs: torch.Tensor) -> torch.Tensor:
        """(B, T, D) -> (B, T, V) frame log-probabilities."""
        return torch.log_softmax(self.ctc_lo(hs), dim=-1)

    def argmax(self, hs: torch.Tensor) -> torch.Tensor:
        """(B, T, D) -> (B, T) best token per frame."""
        return self.ctc_lo(hs).argmax(dim=-1)

    def forward(
        self, hs: torch.Tensor, hs_lengths: torch.Tensor, targets: torch.Tensor, target_lengths: torch.Tensor
    ) -> torch.Tensor:
        """hs (B, T, D), targets (B, L) padded with any value past target_lengths -> scalar loss."""
        logits = self.ctc_lo(dropout(hs, p=self.dropout_rate, training=self.training))
        log_probs = torch.log_softmax(logits.float(), dim=-1).transpose(0, 1)  # (T, B, V)
        loss = F.ctc_loss(
            log_probs,
            targets.clamp(min=0),
            hs_lengths,
            target_lengths,
            blank=self.blank_id,
            reduction="sum",
            zero_infinity=self.zero_infinity,
        )
        return loss / hs.size(0)
