"""Time masks for data2vec pretraining: FunASR's (fairseq's) ``compute_mask_indices``, the "static"
span selection that every FunASR data2vec config uses.

Per utterance of ``sz`` valid frames: ``num_mask = max(min_masks, int(mask_prob * sz / mask_length
+ u))`` spans start at distinct frames drawn without replacement from ``[0, sz - mask_length)``, each
covers ``mask_length`` frames (overlaps merge, frames past ``sz`` are dropped). With
``require_same_masks`` every row is then cut, by a draw without replacement, to the smallest row's
count of masked frames (so the masked frames of a batch form a dense (B, M, D) block).

The draws are made in FunASR's order from a ``numpy.random.RandomState``: the same seed gives the
mask that FunASR draws from the global numpy generator seeded alike.
"""

from typing import Optional

import numpy as np
import torch


def compute_mask_indices(
    shape,
    padding_mask: Optional[torch.Tensor],
    mask_prob: float,
    mask_length: int,
    rng: np.random.RandomState,
    min_masks: int = 0,
    require_same_masks: bool = True,
    mask_dropout: float = 0.0,
) -> np.ndarray:
    """shape (B, T), padding_mask (B, T) bool, True = padding (or None: no padding) -> (B, T) bool
    numpy mask, True = masked frame."""
    batch_size, num_frames = shape
    mask = np.full((batch_size, num_frames), False)
    # A uniform draw makes the rounding of the expected span count probabilistic.
    all_num_mask = max(min_masks, int(mask_prob * num_frames / float(mask_length) + rng.rand()))
    rows = []
    for i in range(batch_size):
        if padding_mask is not None:
            size = num_frames - int(padding_mask[i].long().sum().item())
            num_mask = max(min_masks, int(mask_prob * size / float(mask_length) + rng.rand()))
        else:
            size, num_mask = num_frames, all_num_mask
        span = mask_length
        if size - span <= num_mask:  # too short for num_mask distinct starts: FunASR shortens the range
            span = size - num_mask - 1
        starts = rng.choice(size - span, num_mask, replace=False)
        frames = (starts[:, None] + np.arange(mask_length)[None, :]).reshape(-1)
        rows.append(np.unique(frames[frames < size]))
    min_len = min(len(row) for row in rows)
    for i, row in enumerate(rows):
        if len(row) > min_len and require_same_masks:
            row = rng.choice(row, min_len, replace=False)
        if mask_dropout > 0:
            num_holes = int(np.rint(len(row) * mask_dropout))
            row = rng.choice(row, len(row) - num_holes, replace=False)
        mask[i, row] = True
    return mask
