"""MWER loss (our own design, docs/spec.md §6): hand-computed values and behaviour."""

import math

import pytest
import torch

from funasr_lite.models.losses.mwer import (
    mwer_loss,
    mwer_loss_from_candidates,
    sample_mwer_candidates,
    sample_posterior_candidates,
    token_edit_distance,
)

torch.set_num_threads(1)


def _pad(sequences, width):
    return torch.tensor([list(s) + [-1] * (width - len(s)) for s in sequences])


def test_edit_distance_hand_values():
    hyps = [[1, 2, 3], [1, 3], [], [5, 6, 6, 7, 8, 9], [4, 4]]
    refs = [[1, 3], [1, 2, 3], [1, 2], [9, 6, 7, 8, 8, 9, 2], [4, 4]]
    # deletion, insertion, empty hypothesis, sub+del+sub+insert (4 by hand), exact match
    expected = [1, 1, 2, 4, 0]
    distances = token_edit_distance(
        _pad(hyps, 7), torch.tensor([len(h) for h in hyps]), _pad(refs, 7), torch.tensor([len(r) for r in refs])
    )
    assert distances.tolist() == expected


# Two positions, three tokens. Position 0: p = (.5, .3, .2); position 1: p = (.1, .6, .3).
PROBS = torch.tensor([[[0.5, 0.3, 0.2], [0.1, 0.6, 0.3]]])
TARGET = torch.tensor([[0, 2]])
# argmax path [0, 1] (1 error), top-2 swap at 0 -> [1, 1] (2 errors), at 1 -> [0, 2] (0 errors)
CANDIDATES = torch.tensor([[[0, 1], [1, 1], [0, 2]]])


def test_loss_matches_hand_computation():
    sequence_probs = [0.5 * 0.6, 0.3 * 0.6, 0.5 * 0.3]  # 0.30, 0.18, 0.15
    posteriors = [p / sum(sequence_probs) for p in sequence_probs]
    errors = [1, 2, 0]  # mean 1
    expected = sum(p * (w - 1) for p, w in zip(posteriors, errors))  # (0.18 - 0.15) / 0.63 = 1/21

    loss, stats = mwer_loss_from_candidates(PROBS.log(), CANDIDATES, TARGET, torch.tensor([2]))
    assert math.isclose(expected, 1 / 21, rel_tol=1e-12)
    assert math.isclose(loss.item(), expected, rel_tol=1e-5)
    assert stats["errors_argmax"].item() == 1
    assert math.isclose(stats["errors_candidates"].item(), 1.0)
    assert math.isclose(stats["error_rate_argmax"].item(), 0.5)
    assert math.isclose(stats["posterior_argmax"].item(), 0.30 / 0.63, rel_tol=1e-5)


def test_gradient_step_moves_probability_to_the_lowest_error_candidate():
    logits = PROBS.log().clone().requires_grad_()
    lengths = torch.tensor([2])

    def posteriors_and_loss():
        log_probs = logits.log_softmax(-1)
        loss, _ = mwer_loss_from_candidates(log_probs, CANDIDATES, TARGET, lengths)
        chosen = log_probs[0, [0, 1], CANDIDATES[0]].sum(-1)  # sequence log-probs (3,)
        return chosen.softmax(-1), loss

    before, loss = posteriors_and_loss()
    loss.backward()
    with torch.no_grad():
        logits -= 0.5 * logits.grad
    after, loss_after = posteriors_and_loss()
    assert after[2] > before[2]  # the 0-error candidate
    assert after[1] < before[1]  # the 2-error candidate
    assert loss_after < loss


def _random_batch(seed, lengths=(12, 7, 3), vocab=9):
    generator = torch.Generator().manual_seed(seed)
    max_len = max(lengths)
    log_probs = torch.randn(len(lengths), max_len, vocab, generator=generator).log_softmax(-1)
    targets = torch.randint(0, vocab, (len(lengths), max_len), generator=generator)
    lengths = torch.tensor(lengths)
    targets = targets.masked_fill(torch.arange(max_len) >= lengths[:, None], -1)
    return log_probs, targets, lengths


def test_candidates_are_argmax_plus_top2_swaps_at_a_bounded_number_of_positions():
    log_probs, _, lengths = _random_batch(0)
    candidates = sample_mwer_candidates(log_probs, lengths, 5, torch.Generator().manual_seed(0))
    top2 = log_probs.topk(2, dim=-1).indices
    assert candidates.shape == (3, 5, 12)
    for b, length in enumerate(lengths.tolist()):
        assert torch.equal(candidates[b, 0, :length], top2[b, :length, 0])
        assert (candidates[b, :, length:] == -1).all()
        for n in range(1, 5):
            swapped = candidates[b, n, :length] != top2[b, :length, 0]
            assert 1 <= swapped.sum().item() <= max(1, length // 4)
            assert torch.equal(candidates[b, n, :length][swapped], top2[b, :length, 1][swapped])


def test_posterior_candidates_follow_the_model_distribution():
    # Position 0: p = (.5, .3, .2); position 1: p = (.1, .6, .3); a padded third position.
    log_probs = torch.cat([PROBS, torch.full((1, 1, 3), 1 / 3)], dim=1).log()
    candidates = sample_posterior_candidates(log_probs, torch.tensor([2]), 4001, torch.Generator().manual_seed(0))
    assert candidates.shape == (1, 4001, 3)
    assert candidates[0, 0, :2].tolist() == [0, 1]  # the argmax path first
    assert (candidates[0, :, 2] == -1).all()
    draws = candidates[0, 1:, :2]
    for position, probs in enumerate(PROBS[0]):
        frequency = torch.bincount(draws[:, position], minlength=3).double() / draws.size(0)
        # 4,000 draws: the standard error of a frequency is at most 0.008; 4 of them is the bound.
        assert torch.allclose(frequency, probs.double(), atol=0.032), (position, frequency)
    # Seeded: the same draws again; the loss runs with either kind of negatives.
    again = sample_posterior_candidates(log_probs, torch.tensor([2]), 4001, torch.Generator().manual_seed(0))
    assert torch.equal(candidates, again)
    log_probs, targets, lengths = _random_batch(4)
    loss, stats = mwer_loss(log_probs, targets, lengths, 6, torch.Generator().manual_seed(1), negatives="sample")
    assert torch.isfinite(loss) and stats["errors_candidates"] >= 0
    with pytest.raises(ValueError, match="beam"):
        mwer_loss(log_probs, targets, lengths, 6, negatives="beam")


def test_seeded_generator_makes_sampling_deterministic():
    log_probs, targets, lengths = _random_batch(1)
    first = sample_mwer_candidates(log_probs, lengths, 4, torch.Generator().manual_seed(7))
    again = sample_mwer_candidates(log_probs, lengths, 4, torch.Generator().manual_seed(7))
    other = sample_mwer_candidates(log_probs, lengths, 4, torch.Generator().manual_seed(8))
    assert torch.equal(first, again)
    assert not torch.equal(first, other)
    loss_a, _ = mwer_loss(log_probs, targets, lengths, 4, torch.Generator().manual_seed(7))
    loss_b, _ = mwer_loss(log_probs, targets, lengths, 4, torch.Generator().manual_seed(7))
    assert loss_a.item() == loss_b.item()


def test_padding_is_ignored():
    log_probs, targets, lengths = _random_batch(2)
    loss, _ = mwer_loss(log_probs, targets, lengths, 4, torch.Generator().manual_seed(3))

    garbage = log_probs.clone()
    padded = torch.arange(log_probs.size(1)) >= lengths[:, None]
    garbage[padded] = torch.randn(int(padded.sum()), log_probs.size(2)).log_softmax(-1)
    garbage_loss, _ = mwer_loss(garbage, targets, lengths, 4, torch.Generator().manual_seed(3))
    assert math.isclose(loss.item(), garbage_loss.item(), rel_tol=1e-6)

    # The batch loss is the mean of the utterances' losses computed alone, unpadded.
    candidates = sample_mwer_candidates(log_probs, lengths, 4, torch.Generator().manual_seed(3))
    batch_loss, _ = mwer_loss_from_candidates(log_probs, candidates, targets, lengths)
    alone = []
    for b, length in enumerate(lengths.tolist()):
        single, _ = mwer_loss_from_candidates(
            log_probs[b : b + 1, :length], candidates[b : b + 1, :, :length], targets[b : b + 1, :length], lengths[b : b + 1]
        )
        alone.append(single.item())
    assert math.isclose(batch_loss.item(), sum(alone) / len(alone), rel_tol=1e-5)
