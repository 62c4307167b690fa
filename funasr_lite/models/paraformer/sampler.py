"""Glancing sampler (Paraformer training): mix target embeddings into the CIF embeddings.

The more tokens the first decoder pass gets wrong, the more positions are replaced by the
ground-truth token embedding, so the decoder learns token dependencies it would not see otherwise.
"""

from typing import Optional, Tuple

import torch


def choose_glance_positions(
    first_pass_tokens: torch.Tensor,
    targets: torch.Tensor,
    sampling_ratio: float,
    ignore_id: int = -1,
    generator: Optional[torch.Generator] = None,
) -> torch.Tensor:
    """Pick floor((L - #correct) * ratio) positions per utterance, uniformly among its L tokens.

    first_pass_tokens, targets: (B, L) long, targets padded with ignore_id -> (B, L) bool.
    """
    valid = targets != ignore_id
    num_correct = ((first_pass_tokens == targets) & valid).sum(1)
    num_glance = ((valid.sum(1) - num_correct).to(torch.float32) * sampling_ratio).long()
    # A random key per position; padding gets a key above every valid one so it is never picked.
    keys = torch.rand(targets.shape, generator=generator, device=targets.device)
    keys = keys.masked_fill(~valid, 2.0)
    ranks = keys.argsort(dim=1).argsort(dim=1)
    return (ranks < num_glance[:, None]) & valid


def glancing_sample(
    acoustic_embeds: torch.Tensor,
    target_embeds: torch.Tensor,
    first_pass_tokens: torch.Tensor,
    targets: torch.Tensor,
    sampling_ratio: float,
    ignore_id: int = -1,
    generator: Optional[torch.Generator] = None,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Replace glanced positions' CIF embeddings by target embeddings.

    acoustic_embeds, target_embeds: (B, L, D); first_pass_tokens, targets: (B, L).
    Returns (semantic_embeds (B, L, D), zero at padding; glance_mask (B, L) bool).
    """
    glance = choose_glance_positions(first_pass_tokens, targets, sampling_ratio, ignore_id, generator)
    valid = (targets != ignore_id).unsqueeze(-1)
    mixed = torch.where(glance.unsqueeze(-1), target_embeds, acoustic_embeds)
    return mixed * valid.to(mixed.dtype), glance
