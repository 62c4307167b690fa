"""Sinusoidal position encodings used by the Conformer encoder and the SAN decoder.

All tables interleave sin and cos (even dims sin, odd dims cos) and use positions that
start at 0, unlike the SAN-M encoder's concatenated table (see docs/spec.md §2). The tables are
computed in float32 with the same operation order as FunASR, because a float64 table
differs by ~1e-4 at positions near 5000 (the legacy encoding uses such positions).

None of these modules has parameters except `ScaledPositionalEncoding.alpha`, so they
add nothing to a checkpoint (FunASR's very old `pe` entries are dropped on load).
"""

import math
from typing import Tuple

import torch
from torch import nn

from funasr_lite.models.modules.dropout import Dropout

# FunASR builds its tables for 5000 positions; the legacy relative encoding depends on it.
DEFAULT_MAX_LEN = 5000


def sinusoid_table(positions: torch.Tensor, d_model: int) -> torch.Tensor:
    """(P,) float32 positions -> (P, d_model) table: [:, 0::2] = sin, [:, 1::2] = cos."""
    inverse_wavelengths = torch.exp(
        torch.arange(0, d_model, 2, dtype=torch.float32, device=positions.device)
        * -(math.log(10000.0) / d_model)
    )
    angles = positions.to(torch.float32).unsqueeze(1) * inverse_wavelengths
    table = torch.zeros(positions.numel(), d_model, dtype=torch.float32, device=positions.device)
    table[:, 0::2] = torch.sin(angles)
    table[:, 1::2] = torch.cos(angles)
    return table


def _drop_stale_pe(state_dict, prefix, *args):
    """Checkpoints from old ESPnet-era code stored the table as `pe`; it is recomputed."""
    state_dict.pop(prefix + "pe", None)


class PositionalEncoding(nn.Module):
    """Absolute encoding: (B, T, D) -> dropout(x * sqrt(D) + PE[0..T-1])."""

    def __init__(self, d_model: int, dropout_rate: float, max_len: int = DEFAULT_MAX_LEN):
        super().__init__()
        self.d_model = d_model
        self.xscale = math.sqrt(d_model)
        self.max_len = max_len
        self.dropout = Dropout(p=dropout_rate)
        self._register_load_state_dict_pre_hook(_drop_stale_pe)

    def table(self, length: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        """(1, length, D) encodings of positions 0..length-1."""
        positions = torch.arange(length, dtype=torch.float32, device=device)
        return sinusoid_table(positions, self.d_model).to(dtype).unsqueeze(0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(x * self.xscale + self.table(x.size(1), x.device, x.dtype))


class ScaledPositionalEncoding(PositionalEncoding):
    """x + alpha * PE with a learnable scalar alpha instead of scaling x (arXiv 1809.08895)."""

    def __init__(self, d_model: int, dropout_rate: float, max_len: int = DEFAULT_MAX_LEN):
        super().__init__(d_model, dropout_rate, max_len)
        self.alpha = nn.Parameter(torch.tensor(1.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(x + self.alpha * self.table(x.size(1), x.device, x.dtype))


class RelPositionalEncoding(nn.Module):
    """Relative encoding (Transformer-XL, ESPnet "latest").

    (B, T, D) -> (dropout(x * sqrt(D)), dropout(P)) with P (1, 2T-1, D) encoding the
    relative distances T-1, T-2, ..., 0, ..., -(T-1): index k stands for distance i - j
    = T-1-k between a query at i and a key at j.
    """

    def __init__(self, d_model: int, dropout_rate: float, max_len: int = DEFAULT_MAX_LEN):
        super().__init__()
        self.d_model = d_model
        self.xscale = math.sqrt(d_model)
        self.dropout = Dropout(p=dropout_rate)
        self._register_load_state_dict_pre_hook(_drop_stale_pe)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        length = x.size(1)
        distances = torch.arange(length - 1, -length, -1, dtype=torch.float32, device=x.device)
        pos_emb = sinusoid_table(distances, self.d_model).to(x.dtype).unsqueeze(0)
        return self.dropout(x * self.xscale), self.dropout(pos_emb)


class LegacyRelPositionalEncoding(nn.Module):
    """Legacy relative encoding (ESPnet before PR 2816), the default of FunASR's Conformer.

    (B, T, D) -> (dropout(x * sqrt(D)), dropout(P)) with P (1, T, D) the absolute table of
    the positions max(max_len, T)-1 down to max(max_len, T)-T. The attention's legacy shift
    turns these into (length-dependent) distance encodings; kept only for checkpoints.
    FunASR grows its table once it meets a longer input and keeps it; we recompute per
    call, which agrees for all inputs up to max_len frames.
    """

    def __init__(self, d_model: int, dropout_rate: float, max_len: int = DEFAULT_MAX_LEN):
        super().__init__()
        self.d_model = d_model
        self.xscale = math.sqrt(d_model)
        self.max_len = max_len
        self.dropout = Dropout(p=dropout_rate)
        self._register_load_state_dict_pre_hook(_drop_stale_pe)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        length = x.size(1)
        top = max(self.max_len, length) - 1
        positions = torch.arange(top, top - length, -1, dtype=torch.float32, device=x.device)
        pos_emb = sinusoid_table(positions, self.d_model).to(x.dtype).unsqueeze(0)
        return self.dropout(x * self.xscale), self.dropout(pos_emb)


POSITION_ENCODINGS = {
    "abs_pos": PositionalEncoding,
    "scaled_abs_pos": ScaledPositionalEncoding,
    "rel_pos": RelPositionalEncoding,
    "legacy_rel_pos": LegacyRelPositionalEncoding,
}
