"""Position-wise feed-forward layer (parameter names w_1/w_2 match FunASR checkpoints)."""

import torch
from torch import nn

from funasr_lite.models.modules.dropout import Dropout


class PositionwiseFeedForward(nn.Module):
    """w_2(dropout(activation(w_1 x))): (B, T, idim) -> (B, T, idim)."""

    def __init__(self, idim: int, hidden_units: int, dropout_rate: float, activation: nn.Module = None):
        super().__init__()
        self.w_1 = nn.Linear(idim, hidden_units)
        self.w_2 = nn.Linear(hidden_units, idim)
        self.dropout = Dropout(dropout_rate)
        self.activation = activation if activation is not None else nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w_2(self.dropout(self.activation(self.w_1(x))))
