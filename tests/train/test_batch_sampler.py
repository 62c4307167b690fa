import numpy as np
import pytest

from funasr_lite.data.batch_sampler import FrameBatchSampler, split_into_batches

LENGTHS = np.random.default_rng(0).integers(5, 120, size=237)


def _padded_cost(batch):
    return len(batch) * int(LENGTHS[batch].max())


def test_frame_budget_respected_and_every_utt_once():
    sampler = FrameBatchSampler(LENGTHS, batch_bins=400, bucket_size=50, seed=1)
    for epoch in (1, 2, 3):
        sampler.set_epoch(epoch)
        batches = list(sampler)
        assert all(_padded_cost(b) <= 400 for b in batches)
        seen = sorted(i for b in batches for i in b)
        assert seen == list(range(len(LENGTHS)))
        # Greedy packing: adding the next utterance of the bucket would have broken the budget,
        # so no batch is tiny while a neighbour could have joined: at least half the budget used
        # for all but a few bucket tails.
        assert sum(_padded_cost(b) > 200 for b in batches) >= len(batches) - 6


def test_utterance_longer_than_budget_gets_its_own_batch():
    lengths = np.array([10, 500, 20, 30])
    batches = split_into_batches([1, 3, 2, 0], lengths, 100)
    assert batches == [[1], [3, 2, 0]]  # 3 * 30 = 90 <= 100


def test_deterministic_per_seed_and_epoch_and_shuffled_between_epochs():
    a = FrameBatchSampler(LENGTHS, 400, bucket_size=50, seed=7)
    b = FrameBatchSampler(LENGTHS, 400, bucket_size=50, seed=7)
    a.set_epoch(3)
    b.set_epoch(3)
    assert list(a) == list(b)
    b.set_epoch(4)
    assert list(a) != list(b)
    c = FrameBatchSampler(LENGTHS, 400, bucket_size=50, seed=8)
    c.set_epoch(3)
    assert list(a) != list(c)


def test_buckets_are_length_sorted():
    # One bucket holding everything: batches are then cut from a longest-first order, so the
    # utterances of each batch are contiguous in that order (max of batch k+1 <= min of batch k).
    sampler = FrameBatchSampler(LENGTHS, 400, bucket_size=10_000, seed=0)
    batches = sorted(list(sampler), key=lambda b: (-int(LENGTHS[b].max()), -int(LENGTHS[b].min())))
    for earlier, later in zip(batches, batches[1:]):
        assert int(LENGTHS[later].max()) <= int(LENGTHS[earlier].min())


@pytest.mark.parametrize("world_size", [2, 3, 4])
def test_ranks_get_equal_batch_counts_and_cover_all(world_size):
    samplers = [FrameBatchSampler(LENGTHS, 300, bucket_size=40, seed=2, world_size=world_size, rank=r) for r in range(world_size)]
    for epoch in (1, 2):
        per_rank = []
        for sampler in samplers:
            sampler.set_epoch(epoch)
            per_rank.append(list(sampler))
        counts = {len(batches) for batches in per_rank}
        assert len(counts) == 1, f"unequal batch counts {counts}"
        covered = {i for batches in per_rank for b in batches for i in b}
        assert covered == set(range(len(LENGTHS)))
        # Padding repeats at most world_size - 1 batches.
        total = sum(len(b) for batches in per_rank for b in batches)
        single = FrameBatchSampler(LENGTHS, 300, bucket_size=40, seed=2)
        single.set_epoch(epoch)
        assert len(single) <= counts.pop() * world_size < len(single) + world_size
        assert total >= len(LENGTHS)


def test_validation_mode_no_padding_sorted():
    samplers = [FrameBatchSampler(LENGTHS, 300, shuffle=False, world_size=2, rank=r, equal_batches=False) for r in range(2)]
    all_utts = [i for s in samplers for b in s for i in b]
    assert sorted(all_utts) == list(range(len(LENGTHS)))  # each exactly once, no padding


def test_resume_mid_epoch_continues_exactly():
    full = FrameBatchSampler(LENGTHS, 350, bucket_size=30, seed=5)
    full.set_epoch(2)
    expected = list(full)

    first = FrameBatchSampler(LENGTHS, 350, bucket_size=30, seed=5)
    first.set_epoch(2)
    consumed = []
    for batch in first:
        consumed.append(batch)
        first.advance()
        if len(consumed) == 4:
            break
    state = first.state_dict()
    assert state["epoch"] == 2 and state["position"] == 4

    resumed = FrameBatchSampler(LENGTHS, 350, bucket_size=30, seed=5)
    resumed.load_state_dict(state)
    resumed.set_epoch(2)  # the trainer calls this at the top of the epoch loop: must not rewind
    assert consumed + list(resumed) == expected
    resumed.set_epoch(3)
    assert resumed.position == 0


def test_resume_with_changed_world_size_restarts_epoch():
    sampler = FrameBatchSampler(LENGTHS, 350, seed=5, world_size=2, rank=0)
    state = {"epoch": 2, "position": 3, "seed": 5, "world_size": 4, "num_utts": len(LENGTHS), "batch_bins": 350}
    sampler.load_state_dict(state)
    assert sampler.epoch == 2 and sampler.position == 0


def test_largest_batches():
    sampler = FrameBatchSampler(LENGTHS, 400, bucket_size=50, seed=1)
    top = sampler.largest_batches(2)
    costs = sorted((_padded_cost(b) for b in sampler), reverse=True)
    assert [_padded_cost(b) for b in top] == costs[:2]


def test_sortagrad_epochs_go_shortest_first_then_shuffle():
    sampler = FrameBatchSampler(LENGTHS, 400, bucket_size=50, seed=3, sortagrad=2)
    for epoch in (1, 2):
        sampler.set_epoch(epoch)
        batches = list(sampler)
        assert sorted(i for b in batches for i in b) == list(range(len(LENGTHS)))
        assert all(_padded_cost(b) <= 400 for b in batches)
        flat = [int(LENGTHS[i]) for b in batches for i in b]
        assert flat == sorted(flat)  # every utterance at or after all shorter ones
    first, second = sampler.global_batches(1), sampler.global_batches(2)
    assert first != second  # equal lengths are ordered by each epoch's own permutation
    sampler.set_epoch(3)
    maxima = [int(LENGTHS[b].max()) for b in sampler]
    assert maxima != sorted(maxima)  # shuffled again
    assert FrameBatchSampler(LENGTHS, 400, sortagrad=0).global_batches(1) != first
    with pytest.raises(ValueError, match="sortagrad"):
        FrameBatchSampler(LENGTHS, 400, sortagrad=-1)
