"""The vectorised CIF integrator against a slow reference loop and against funasr's cif."""

import pytest
import torch

from funasr_lite.models.modules.mask import sequence_mask
from funasr_lite.models.paraformer.cif import CifPredictorV2, cif_integrate


def reference_integrate_and_fire(hidden, alphas, threshold=1.0):
    """Frame-by-frame integrate-and-fire in float64; a frame may complete several tokens.

    Returns (list of (N_b, D) token tensors, (B, T) peaks).
    """
    hidden, alphas = hidden.double(), alphas.double()
    batch, num_frames, dim = hidden.shape
    all_tokens, all_peaks = [], torch.zeros(batch, num_frames, dtype=torch.float64)
    for b in range(batch):
        accumulated, vector, tokens = 0.0, torch.zeros(dim, dtype=torch.float64), []
        for t in range(num_frames):
            remaining = float(alphas[b, t])
            all_peaks[b, t] = accumulated + remaining
            while accumulated + remaining >= threshold:
                portion = threshold - accumulated
                tokens.append(vector + portion * hidden[b, t])
                vector = torch.zeros(dim, dtype=torch.float64)
                remaining -= portion
                accumulated = 0.0
            accumulated += remaining
            vector = vector + remaining * hidden[b, t]
        all_tokens.append(torch.stack(tokens) if tokens else torch.zeros(0, dim, dtype=torch.float64))
    return all_tokens, all_peaks


def check_against_reference(hidden, alphas, threshold=1.0):
    embeds, counts, peaks = cif_integrate(hidden, alphas, threshold)
    expected_tokens, expected_peaks = reference_integrate_and_fire(hidden, alphas, threshold)
    assert counts.tolist() == [len(tokens) for tokens in expected_tokens]
    assert embeds.size(1) == max(len(tokens) for tokens in expected_tokens)
    for b, tokens in enumerate(expected_tokens):
        torch.testing.assert_close(embeds[b, : len(tokens)].double(), tokens, atol=1e-5, rtol=1e-5)
        assert torch.all(embeds[b, len(tokens):] == 0)
    torch.testing.assert_close(peaks.double(), expected_peaks, atol=1e-5, rtol=1e-5)


def test_integrator_matches_reference_loop_on_typical_alphas():
    hidden = torch.randn(3, 40, 8)
    alphas = torch.rand(3, 40) * 0.7 * sequence_mask(torch.tensor([40, 25, 6]), 40)
    check_against_reference(hidden, alphas)


def test_integrator_matches_reference_loop_when_frames_fire_several_tokens():
    hidden = torch.randn(2, 12, 5)
    alphas = torch.rand(2, 12) * 2.6  # training-time rescaling can push alphas above 1
    embeds, counts, _ = cif_integrate(hidden, alphas)
    assert counts.max() > 0
    assert (alphas > 2.0).any()
    check_against_reference(hidden, alphas)


def test_integrator_with_threshold_other_than_one():
    hidden = torch.randn(2, 30, 4)
    alphas = torch.rand(2, 30)
    check_against_reference(hidden, alphas, threshold=1.5)


def test_each_frame_alpha_is_fully_distributed():
    # Every unit of alpha ends in exactly one emitted token, except the unfinished remainder.
    hidden = torch.ones(2, 50, 1)
    alphas = torch.rand(2, 50)
    embeds, counts, _ = cif_integrate(hidden, alphas)
    for b in range(2):
        torch.testing.assert_close(embeds[b, : counts[b], 0], torch.ones(int(counts[b])), atol=1e-5, rtol=0)


def test_forced_token_count_emits_last_token_when_sum_lands_below_integer():
    hidden = torch.randn(1, 10, 3)
    alphas = torch.full((1, 10), 0.3) * (1 - 1e-7)  # sums to 2.9999997: only 2 natural fires
    _, natural_counts, _ = cif_integrate(hidden, alphas)
    embeds, counts, _ = cif_integrate(hidden, alphas, num_tokens=torch.tensor([3]))
    assert natural_counts.item() == 2 and counts.item() == 3
    # Token 2 owns [2, 3) of the running sum: 0.1 of frame 6 (sum 1.8 -> 2.1), all of frames 7-9.
    expected = 0.1 * hidden[0, 6] + 0.3 * hidden[0, 7:].sum(0)
    torch.testing.assert_close(embeds[0, 2], expected, atol=1e-5, rtol=1e-5)


def test_gradients_flow_to_hidden_and_alphas():
    hidden = torch.randn(1, 9, 3, dtype=torch.float64, requires_grad=True)
    alphas = (torch.rand(1, 9, dtype=torch.float64) * 0.5 + 0.2).requires_grad_()
    assert torch.autograd.gradcheck(lambda h, a: cif_integrate(h, a)[0], (hidden, alphas))


@pytest.mark.parametrize("funasr_function", ["cif", "cif_v1"])
def test_integrator_matches_funasr(funasr_function):
    from funasr.models.paraformer import cif_predictor

    reference = getattr(cif_predictor, funasr_function)
    lengths = torch.tensor([60, 41, 13, 60])
    hidden = torch.randn(4, 60, 16)
    alphas = torch.rand(4, 60) * 0.9 * sequence_mask(lengths, 60)
    expected_embeds, expected_peaks = reference(hidden.clone(), alphas.clone(), 1.0)
    embeds, counts, peaks = cif_integrate(hidden, alphas, 1.0)
    expected_counts = (expected_peaks >= 1.0).sum(1)
    assert counts.tolist() == expected_counts.tolist()
    for b in range(4):
        n = int(counts[b])
        torch.testing.assert_close(embeds[b, :n], expected_embeds[b, :n], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(peaks, expected_peaks, atol=1e-4, rtol=1e-4)


def test_inference_tail_lets_a_nearly_complete_last_token_fire():
    predictor = CifPredictorV2(idim=4, l_order=1, r_order=1, tail_threshold=0.45).eval()
    hidden = torch.randn(2, 6, 4)
    mask = sequence_mask(torch.tensor([6, 4]), 6)
    alphas = torch.tensor([[0.5, 0.5, 0.5, 0.5, 0.3, 0.3], [0.5, 0.5, 0.5, 0.1, 0.0, 0.0]])
    tail_hidden, tail_alphas = predictor.append_tail(hidden * mask[..., None], alphas, mask)
    assert tail_hidden.shape == (2, 7, 4) and torch.all(tail_hidden[:, 6] == 0)
    # The tail sits at each utterance's first padded frame.
    assert tail_alphas[0, 6].item() == pytest.approx(0.45) and tail_alphas[1, 4].item() == pytest.approx(0.45)
    _, counts, _ = cif_integrate(tail_hidden, tail_alphas)
    assert counts.tolist() == [3, 2]  # 2.6 + 0.45 -> 3; 1.6 + 0.45 -> 2
