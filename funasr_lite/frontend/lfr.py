"""Low frame rate (LFR) stacking, docs/spec.md §1.3.

With m=7, n=6, 10 ms 80-dim frames become 60 ms 560-dim frames: T' = ceil(T / n) and
LFR frame i = concat over k = -(m-1)//2 .. m-1-(m-1)//2 of x[clamp(n*i + k, 0, T-1)]
(for m=7: k = -3..3, frame n*i-3 first). Edges repeat the first / last frame.
Implemented as one index gather, so a padded batch costs the same as one utterance.
"""

from __future__ import annotations

from typing import Optional, Union

import numpy as np
import torch


def lfr_length(num_frames, n: int = 6):
    """Number of LFR frames, ceil(T / n); works on ints and integer tensors."""
    if isinstance(num_frames, torch.Tensor):
        return torch.div(num_frames + n - 1, n, rounding_mode="floor")
    return (int(num_frames) + n - 1) // n


def lfr_stack(
    feats: Union[torch.Tensor, np.ndarray],
    lengths: Optional[torch.Tensor] = None,
    m: int = 7,
    n: int = 6,
):
    """Stack m frames every n frames.

    Args:
        feats: (T, D) one utterance, or (B, T, D) a padded batch.
        lengths: (B,) valid frames per utterance for a batch (None: all T are valid).
            Ignored for (T, D) input.
        m: frames per LFR frame; n: hop in frames. m=1, n=1 is the identity.

    Returns:
        (T', m*D) and the int T' for (T, D) input;
        (B, T'_max, m*D) and new lengths (B,) for (B, T, D) input. Each utterance is clamped
        to its own last valid frame, so padding never leaks into valid LFR frames; LFR
        frames past an utterance's new length are zero.
    """
    if m < 1 or n < 1:
        raise ValueError(f"LFR needs m >= 1 and n >= 1, got m={m}, n={n}")
    x = torch.as_tensor(feats)
    if x.dim() == 2:
        stacked, new_lengths = lfr_stack(x.unsqueeze(0), None, m, n)
        return stacked[0], int(new_lengths[0])
    if x.dim() != 3:
        raise ValueError(f"lfr_stack expects (T, D) or (B, T, D), got shape {tuple(x.shape)}")
    batch, max_frames, dim = x.shape
    if lengths is None:
        lengths = torch.full((batch,), max_frames, dtype=torch.long, device=x.device)
    lengths = torch.as_tensor(lengths, device=x.device).long()
    if lengths.shape != (batch,):
        raise ValueError(f"lengths must have shape ({batch},), got {tuple(lengths.shape)}")
    if batch and (int(lengths.max()) > max_frames or int(lengths.min()) < 0):
        raise ValueError(f"lengths {lengths.tolist()} must lie in [0, {max_frames}] (the padded frame count)")

    new_lengths = lfr_length(lengths, n)
    out_frames = int(new_lengths.max()) if batch else 0
    offsets = torch.arange(m, device=x.device) - (m - 1) // 2  # (m,)
    centres = torch.arange(out_frames, device=x.device) * n  # (T',)
    index = centres[None, :, None] + offsets[None, None, :]  # (1, T', m)
    last_valid = (lengths - 1).clamp(min=0)[:, None, None]  # (B, 1, 1)
    index = torch.minimum(index.clamp(min=0), last_valid)  # (B, T', m)
    gathered = torch.gather(
        x, 1, index.reshape(batch, out_frames * m, 1).expand(batch, out_frames * m, dim)
    )  # (B, T'*m, D)
    stacked = gathered.reshape(batch, out_frames, m * dim)
    valid = torch.arange(out_frames, device=x.device)[None, :] < new_lengths[:, None]  # (B, T')
    stacked = stacked.masked_fill(~valid[:, :, None], 0.0)
    return stacked, new_lengths
