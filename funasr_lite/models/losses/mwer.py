"""Minimum word error rate (MWER) loss for the non-autoregressive decoder (docs/spec.md §6).

FunASR ships no MWER; this follows the Paraformer paper (§2.4): candidates are the argmax
path plus negatives that swap the top-1 token for the second best at a few random
positions (``negatives="swap"``), or, with ``negatives="sample"``, negatives drawn token by
token from the model's own posterior (each position independently, temperature 1: the
"sampling" reading of the paper's negative sampling, which gives candidates as far from the
argmax as the model is unsure); their sequence probabilities are renormalised over the
candidate set and the loss is the expected edit distance relative to the candidates' mean:

    L = mean_b  Σ_i P̂_i (W_i - mean_j W_j),   P̂ = softmax_i(Σ_t log p(y_i,t))

W (token edit distance to the reference) carries no gradient; the gradient moves
probability mass towards candidates with fewer errors than average.
"""

from typing import Dict, Optional, Tuple

import torch

from funasr_lite.models.modules.mask import sequence_mask


def token_edit_distance(
    hyps: torch.Tensor, hyp_lengths: torch.Tensor, refs: torch.Tensor, ref_lengths: torch.Tensor
) -> torch.Tensor:
    """Levenshtein distance between token sequences, batched over M pairs.

    hyps (M, Lh), refs (M, Lr) long (padding ignored), lengths (M,) -> (M,) long.
    One DP row per hypothesis position; the insertion chain within a row is a running
    minimum: row[j] = min_k<=j (a[k] + j - k) = j + cummin(a[k] - k).
    """
    num_pairs, max_ref = refs.shape
    device = refs.device
    columns = torch.arange(max_ref + 1, device=device)
    row = columns.expand(num_pairs, -1).clone()  # distance from the empty hypothesis
    distances = row.gather(1, ref_lengths.view(-1, 1)).squeeze(1)  # for empty hypotheses
    for i in range(hyps.size(1)):
        mismatch = (hyps[:, i : i + 1] != refs).long()  # (M, Lr)
        substitute_or_match = row[:, :-1] + mismatch
        delete = row[:, 1:] + 1
        best_without_insert = torch.cat(
            [row[:, :1] + 1, torch.minimum(substitute_or_match, delete)], dim=1
        )
        row = torch.cummin(best_without_insert - columns, dim=1).values + columns
        finished_here = hyp_lengths == i + 1
        distances = torch.where(finished_here, row.gather(1, ref_lengths.view(-1, 1)).squeeze(1), distances)
    return distances


def sample_mwer_candidates(
    log_probs: torch.Tensor,
    lengths: torch.Tensor,
    num_candidates: int = 4,
    generator: Optional[torch.Generator] = None,
) -> torch.Tensor:
    """Argmax path plus (num_candidates - 1) negatives, each swapping top-1 for top-2 at
    k random valid positions, k uniform in 1 .. max(1, length // 4) per candidate.

    log_probs (B, L, V), lengths (B,) -> candidates (B, N, L) long, -1 at padded positions.
    Random draws come from `generator` on the CPU (or the global CPU generator), so a seeded
    generator gives the same candidates on any device.
    """
    batch, max_len, _ = log_probs.shape
    top2 = log_probs.detach().topk(2, dim=-1).indices  # (B, L, 2)
    best, second = top2[..., 0], top2[..., 1]
    valid = sequence_mask(lengths, max_len)
    num_negatives = num_candidates - 1

    lengths_cpu = lengths.detach().to("cpu")
    max_swaps = torch.clamp(lengths_cpu // 4, min=1)  # (B,)
    uniform = torch.rand(batch, num_negatives, generator=generator)
    swaps = (uniform * max_swaps.unsqueeze(1)).long() + 1  # (B, N-1), 1 .. max_swaps
    # A random permutation of the valid positions per candidate: sort uniform keys, with
    # padded positions pushed to the end; the first `swaps` of it are swapped.
    keys = torch.rand(batch, num_negatives, max_len, generator=generator)
    keys = keys.masked_fill(~valid.to("cpu").unsqueeze(1), 2.0)
    rank = keys.argsort(dim=-1).argsort(dim=-1)
    swap_here = (rank < swaps.unsqueeze(-1)).to(log_probs.device) & valid.unsqueeze(1)

    negatives = torch.where(swap_here, second.unsqueeze(1), best.unsqueeze(1))  # (B, N-1, L)
    candidates = torch.cat([best.unsqueeze(1), negatives], dim=1)
    return candidates.masked_fill(~valid.unsqueeze(1), -1)


def sample_posterior_candidates(
    log_probs: torch.Tensor,
    lengths: torch.Tensor,
    num_candidates: int = 4,
    generator: Optional[torch.Generator] = None,
) -> torch.Tensor:
    """Argmax path plus (num_candidates - 1) sequences drawn from the posterior: each valid
    position independently from softmax(log_probs[b, t]).

    log_probs (B, L, V), lengths (B,) -> candidates (B, N, L) long, -1 at padded positions.
    The draws are made on the CPU with `generator` (seeded: the same candidates on any device).
    """
    batch, max_len, vocab = log_probs.shape
    valid = sequence_mask(lengths, max_len)
    best = log_probs.detach().argmax(dim=-1)  # (B, L)
    probs = log_probs.detach().float().exp().to("cpu").reshape(batch * max_len, vocab)
    draws = torch.multinomial(probs, num_candidates - 1, replacement=True, generator=generator)
    negatives = draws.view(batch, max_len, num_candidates - 1).permute(0, 2, 1).to(log_probs.device)
    candidates = torch.cat([best.unsqueeze(1), negatives], dim=1)
    return candidates.masked_fill(~valid.unsqueeze(1), -1)


NEGATIVES = {"swap": sample_mwer_candidates, "sample": sample_posterior_candidates}


def mwer_loss_from_candidates(
    log_probs: torch.Tensor,
    candidates: torch.Tensor,
    targets: torch.Tensor,
    target_lengths: torch.Tensor,
) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
    """MWER loss for given candidates; candidate 0 is taken to be the argmax path in stats.

    log_probs (B, L, V) with grad; candidates (B, N, L) long, only the first
    target_lengths[b] positions used; targets (B, L) long padded with -1.
    Returns (loss, stats); stats are detached scalars:
      errors_argmax      mean edit distance of candidate 0 per utterance
      errors_candidates  mean edit distance over all candidates
      error_rate_argmax  Σ_b W_b,0 / Σ_b target_lengths[b]
      posterior_argmax   mean P̂ of candidate 0
    """
    batch, num_candidates, max_len = candidates.shape
    valid = sequence_mask(target_lengths, max_len)  # (B, L)
    safe_candidates = candidates.clamp(min=0)
    chosen = log_probs.gather(2, safe_candidates.transpose(1, 2)).transpose(1, 2)  # (B, N, L)
    sequence_log_probs = chosen.masked_fill(~valid.unsqueeze(1), 0.0).sum(dim=-1)  # (B, N)
    posteriors = torch.softmax(sequence_log_probs, dim=-1)

    with torch.no_grad():
        pair_lengths = target_lengths.repeat_interleave(num_candidates)
        errors = token_edit_distance(
            candidates.reshape(batch * num_candidates, max_len),
            pair_lengths,
            targets.repeat_interleave(num_candidates, dim=0),
            pair_lengths,
        ).view(batch, num_candidates).to(log_probs.dtype)
        relative_errors = errors - errors.mean(dim=-1, keepdim=True)

    loss = (posteriors * relative_errors).sum(dim=-1).mean()
    stats = {
        "errors_argmax": errors[:, 0].mean(),
        "errors_candidates": errors.mean(),
        "error_rate_argmax": errors[:, 0].sum() / target_lengths.sum().clamp(min=1),
        "posterior_argmax": posteriors[:, 0].detach().mean(),
    }
    return loss, stats


def mwer_loss(
    log_probs: torch.Tensor,
    targets: torch.Tensor,
    target_lengths: torch.Tensor,
    num_candidates: int = 4,
    generator: Optional[torch.Generator] = None,
    negatives: str = "swap",
) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
    """MWER loss with sampled candidates (see module doc).

    log_probs (B, L, V) log-softmax decoder output with grad, aligned with targets (B, L)
    long padded with -1; target_lengths (B,); negatives "swap" (top-2 swaps) or "sample"
    (posterior draws). Returns (loss (), stats dict).
    """
    if num_candidates < 2:
        raise ValueError("MWER needs at least 2 candidates")
    if negatives not in NEGATIVES:
        raise ValueError(f"mwer negatives must be one of {sorted(NEGATIVES)}, got {negatives!r}")
    candidates = NEGATIVES[negatives](log_probs, target_lengths, num_candidates, generator)
    return mwer_loss_from_candidates(log_probs, candidates, targets, target_lengths)
