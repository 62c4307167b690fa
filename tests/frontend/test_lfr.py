import math

import numpy as np
import pytest
import torch

from funasr_lite.frontend.lfr import lfr_length, lfr_stack

torch.set_num_threads(1)


def test_hand_computed_example():
    # T=8, D=2, frame t = [t, 10 t]. T' = ceil(8/6) = 2.
    feats = torch.tensor([[t, 10.0 * t] for t in range(8)])
    stacked, new_length = lfr_stack(feats, m=7, n=6)
    # LFR frame 0: frames clamp(-3..3) = 0 0 0 0 1 2 3; frame 1: clamp(3..9) = 3 4 5 6 7 7 7.
    frame0 = [0, 0, 0, 0, 0, 0, 0, 0, 1, 10, 2, 20, 3, 30]
    frame1 = [3, 30, 4, 40, 5, 50, 6, 60, 7, 70, 7, 70, 7, 70]
    assert new_length == 2
    assert stacked.tolist() == [frame0, frame1]


@pytest.mark.parametrize("num_frames", [1, 2, 3, 5, 6, 7, 11, 12, 13, 17, 18, 19, 100, 257])
def test_equals_funasr_apply_lfr(num_frames):
    from funasr.frontends.wav_frontend import apply_lfr

    feats = torch.randn(num_frames, 80, generator=torch.Generator().manual_seed(num_frames))
    oracle = apply_lfr(feats.clone(), 7, 6)
    ours, new_length = lfr_stack(feats, m=7, n=6)
    assert new_length == math.ceil(num_frames / 6) == oracle.shape[0]
    torch.testing.assert_close(ours, oracle, rtol=0, atol=0)


def test_m1_n1_is_identity():
    feats = torch.randn(9, 5)
    stacked, new_length = lfr_stack(feats, m=1, n=1)
    assert new_length == 9
    assert torch.equal(stacked, feats)


def test_numpy_input_and_length_helper():
    feats = np.arange(26, dtype=np.float32).reshape(13, 2)
    stacked, new_length = lfr_stack(feats)
    assert isinstance(stacked, torch.Tensor) and stacked.shape == (3, 14) and new_length == 3
    assert lfr_length(13) == 3
    assert lfr_length(torch.tensor([0, 1, 6, 7])).tolist() == [0, 1, 1, 2]


def test_batched_with_padding_equals_per_utterance():
    lengths = [13, 1, 6, 20, 7]
    utterances = [torch.randn(t, 4, generator=torch.Generator().manual_seed(t)) for t in lengths]
    padded = torch.full((len(lengths), max(lengths), 4), 1e6)  # huge padding: any leak shows
    for b, utt in enumerate(utterances):
        padded[b, : len(utt)] = utt
    stacked, new_lengths = lfr_stack(padded, torch.tensor(lengths), m=7, n=6)
    assert new_lengths.tolist() == [3, 1, 1, 4, 2]
    assert stacked.shape == (5, 4, 28)
    for b, utt in enumerate(utterances):
        alone, alone_length = lfr_stack(utt, m=7, n=6)
        assert alone_length == new_lengths[b]
        assert torch.equal(stacked[b, :alone_length], alone)
        assert torch.all(stacked[b, alone_length:] == 0)


def test_batch_without_lengths_uses_all_frames():
    feats = torch.randn(2, 10, 3)
    stacked, new_lengths = lfr_stack(feats)
    assert new_lengths.tolist() == [2, 2]
    assert torch.equal(stacked[1], lfr_stack(feats[1])[0])


def test_bad_lengths_rejected():
    with pytest.raises(ValueError, match="must lie in"):
        lfr_stack(torch.zeros(2, 5, 3), torch.tensor([5, 6]))
