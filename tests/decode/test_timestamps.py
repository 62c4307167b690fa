"""CIF timestamps: parity with FunASR's ts_prediction_lfr6_standard, hand examples, argument order.
(Their shift against ground truth is scored in scoring/timestamps.py: tests/scoring/test_timestamp_scoring.py.)"""

import copy
import importlib.util
import os

import numpy as np
import pytest
import torch

from funasr_lite.decode.timestamps import SILENCE, cif_peaks, cif_segments, cif_timestamps

TOKENS = [chr(0x4E00 + i) for i in range(200)]


@pytest.fixture(scope="module")
def funasr_timestamp_tools():
    """funasr/utils/timestamp_tools.py loaded on its own (skips the slow funasr/__init__)."""
    package_dir = importlib.util.find_spec("funasr").submodule_search_locations[0]
    spec = importlib.util.spec_from_file_location(
        "funasr_timestamp_tools_oracle", os.path.join(package_dir, "utils", "timestamp_tools.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def realistic_alphas(rng: np.random.Generator) -> torch.Tensor:
    """Mostly small alphas with silent stretches and the 0.45 tail frame of inference."""
    num_frames = int(rng.integers(20, 160))
    alphas = rng.uniform(0.0, 0.35, num_frames)
    alphas[rng.random(num_frames) < 0.3] = 0.0
    for _ in range(int(rng.integers(0, 3))):
        start = int(rng.integers(0, num_frames))
        alphas[start:start + int(rng.integers(5, 30))] = 0.0
    alphas[-1] = 0.45
    return torch.tensor(alphas, dtype=torch.float32)


def oracle_timestamps(tools, alphas, peaks, tokens, upsample_rate):
    # clone: FunASR rescales its alphas argument in place
    return tools.ts_prediction_lfr6_standard(alphas.clone(), peaks.clone(), copy.copy(tokens),
                                             upsample_rate=upsample_rate)[1]


@pytest.mark.parametrize("upsample_rate", [1, 3])
def test_parity_with_funasr_when_fires_match_tokens(funasr_timestamp_tools, upsample_rate):
    rng = np.random.default_rng(upsample_rate)
    compared = 0
    for _ in range(120):
        alphas = realistic_alphas(rng)
        peaks = funasr_timestamp_tools.cif_wo_hidden(alphas[None], 1.0)[0]
        num_fires = int((peaks >= 1.0 - 1e-4).sum())
        if num_fires < 2:
            continue
        tokens = TOKENS[:num_fires - 1]
        expected = oracle_timestamps(funasr_timestamp_tools, alphas, peaks, tokens, upsample_rate)
        assert cif_timestamps(alphas, peaks, tokens, frame_ms=60 / upsample_rate) == expected
        compared += 1
    assert compared > 80


@pytest.mark.parametrize("upsample_rate", [1, 3])
def test_parity_with_funasr_when_alphas_are_rescaled(funasr_timestamp_tools, upsample_rate):
    """Fire count != tokens + 1: both rescale alphas and fire again."""
    rng = np.random.default_rng(10 + upsample_rate)
    compared = 0
    for _ in range(120):
        alphas = realistic_alphas(rng)
        peaks = funasr_timestamp_tools.cif_wo_hidden(alphas[None], 1.0)[0]
        num_fires = int((peaks >= 1.0 - 1e-4).sum())
        num_tokens = max(1, num_fires - 1 + int(rng.choice([-2, -1, 1, 2, 3])))
        tokens = TOKENS[:num_tokens]
        ours = cif_timestamps(alphas, peaks, tokens, frame_ms=60 / upsample_rate)
        assert len(ours) == num_tokens
        try:
            expected = oracle_timestamps(funasr_timestamp_tools, alphas, peaks, tokens, upsample_rate)
        except IndexError:  # FunASR crashes when the re-fire falls short; we place the fires at the end
            continue
        if len(expected) != num_tokens:  # FunASR drops tokens in that case; we keep one pair per token
            continue
        assert ours == expected
        compared += 1
    assert compared > 80


def test_tokens_stay_one_pair_each_when_refire_falls_short(funasr_timestamp_tools):
    # Rescaled to 4 fires, the heavy last frame can fire only once: FunASR returns 1 pair for 3
    # tokens; we put the missing fires on the last frame.
    alphas = torch.tensor([0.2, 0.3, 0.3, 0.0, 0.0, 0.0, 0.45])
    peaks = funasr_timestamp_tools.cif_wo_hidden(alphas[None], 1.0)[0]
    tokens = TOKENS[:3]
    assert len(oracle_timestamps(funasr_timestamp_tools, alphas, peaks, tokens, 1)) < 3
    ours = cif_timestamps(alphas, peaks, tokens)
    assert len(ours) == 3
    assert all(start <= end for start, end in ours)
    assert [pair[0] for pair in ours] == sorted(pair[0] for pair in ours)


def fires_at(num_frames, fire_frames):
    alphas = np.zeros(num_frames)
    alphas[fire_frames] = 1.0
    return alphas  # each fire frame holds exactly one token's weight, so peaks == alphas


def test_hand_example_plain_spans(funasr_timestamp_tools):
    # fires at frames 3, 7, 19 of 20 -> boundaries 1.5, 5.5, 17.5 (shift -1.5); 2.5 frames after
    # the last fire <= 5, so the last token runs to frame 20. 60 ms frames; FunASR converts
    # seconds to ms with int(): 5.5 * 0.06 * 1000 = 329.99999999999994 -> 329.
    alphas = fires_at(20, [3, 7, 19])
    assert cif_timestamps(alphas, alphas, ["a", "b"]) == [[90, 329], [329, 1200]]
    alphas_tensor = torch.tensor(alphas)
    assert funasr_timestamp_tools.ts_prediction_lfr6_standard(
        alphas_tensor, alphas_tensor.clone(), ["a", "b"], upsample_rate=1)[1] == [[90, 329], [329, 1200]]


def test_hand_example_long_token_is_cut_and_tail_goes_to_silence():
    # boundaries 1.5, 8.5, 28.5 of 40 frames; "b" spans 20 > 12 frames -> b = [8.5, 20.5] + silence;
    # 11.5 frames follow the last fire (> 5): the silence stops at (40 + 28.5) / 2 = 34.25.
    alphas = fires_at(40, [3, 10, 30])
    segments = cif_segments(alphas, alphas, ["a", "b"])
    assert [(s.label, s.start_frame, s.end_frame) for s in segments] == [
        ("a", 1.5, 8.5), ("b", 8.5, 20.5), (SILENCE, 20.5, 34.25), (SILENCE, 34.25, 40.0)]
    assert cif_timestamps(alphas, alphas, ["a", "b"]) == [[90, 510], [510, 1230]]


def test_hand_example_leading_and_trailing_silence(funasr_timestamp_tools):
    # first boundary 8.5 > 5 -> leading silence; last boundary 18.5, 30 - 18.5 > 5 -> "b" ends at 24.25
    alphas = fires_at(30, [10, 14, 20])
    segments = cif_segments(alphas, alphas, ["a", "b", "</s>"])  # </s> is dropped
    assert [(s.label, s.start_frame, s.end_frame) for s in segments] == [
        (SILENCE, 0.0, 8.5), ("a", 8.5, 12.5), ("b", 12.5, 24.25), (SILENCE, 24.25, 30.0)]
    # 20 ms frames (upsampled predictor), plus a 1000 ms segment offset; 24.25 frames ->
    # 0.485 + 1.0 = 1.4849999999999999 s -> int() gives 1484, as in FunASR
    expected = [[1170, 1250], [1250, 1484]]
    assert cif_timestamps(alphas, alphas, ["a", "b"], frame_ms=20, offset_ms=1000) == expected
    alphas_tensor = torch.tensor(alphas)
    assert funasr_timestamp_tools.ts_prediction_lfr6_standard(
        alphas_tensor, alphas_tensor.clone(), ["a", "b"], vad_offset=1000, upsample_rate=3)[1] == expected


def test_no_tokens_gives_no_timestamps():
    alphas = fires_at(10, [3])
    assert cif_timestamps(alphas, alphas, []) == []
    assert cif_timestamps(alphas, alphas, ["</s>"]) == []


def test_swapped_alphas_and_peaks_are_refused(funasr_timestamp_tools):
    rng = np.random.default_rng(7)
    alphas = realistic_alphas(rng)
    peaks = funasr_timestamp_tools.cif_wo_hidden(alphas[None], 1.0)[0]
    num_fires = int((peaks >= 1.0 - 1e-4).sum())
    tokens = TOKENS[:num_fires - 1]
    correct = cif_timestamps(alphas, peaks, tokens)
    with pytest.raises(ValueError, match="swapped"):
        cif_timestamps(peaks, alphas, tokens)
    # Without the check, the swapped order gives other times: the mistake FunASR's plain
    # Paraformer inference makes (issue #3723), visible in FunASR itself too.
    assert cif_timestamps(peaks, alphas, tokens, check_argument_order=False) != correct
    assert oracle_timestamps(funasr_timestamp_tools, peaks, alphas, tokens, 1) != correct
    assert oracle_timestamps(funasr_timestamp_tools, alphas, peaks, tokens, 1) == correct


def test_cif_peaks_match_funasr_integrate_and_fire(funasr_timestamp_tools):
    # includes alphas above the threshold: a frame fires once and the rest waits
    # by hand: .31 .83 3.26F 2.37F 1.37F 1.14F .75 .75 2.02F 1.25F (F: fire, then subtract 1)
    alphas = torch.tensor([0.31, 0.52, 2.43, 0.11, 0.0, 0.77, 0.61, 0.0, 1.27, 0.23], dtype=torch.float64)
    peaks = cif_peaks(alphas.numpy(), 1.0)
    np.testing.assert_allclose(peaks, [0.31, 0.83, 3.26, 2.37, 1.37, 1.14, 0.75, 0.75, 2.02, 1.25], atol=1e-9)
    expected = funasr_timestamp_tools.cif_wo_hidden(alphas[None], 1.0)[0].numpy()  # float32 inside
    np.testing.assert_allclose(peaks, expected, atol=1e-6)


def test_peaks_computed_from_alphas_when_not_given(funasr_timestamp_tools):
    rng = np.random.default_rng(3)
    alphas = realistic_alphas(rng)
    peaks = funasr_timestamp_tools.cif_wo_hidden(alphas[None], 1.0)[0]
    tokens = TOKENS[:int((peaks >= 1.0 - 1e-4).sum()) - 1]
    assert cif_timestamps(alphas, None, tokens) == cif_timestamps(alphas, peaks, tokens)


def test_all_zero_alphas_spread_tokens_evenly():
    # 2 tokens need 3 fires: 3/9 per frame fires at frames 2, 5, 8 -> boundaries 0.5, 3.5, 6.5;
    # 2.5 frames after the last fire, so "b" runs to frame 9
    zeros = np.zeros(9)
    segments = cif_segments(zeros, zeros, ["a", "b"])
    assert [(s.label, s.start_frame, s.end_frame) for s in segments] == [("a", 0.5, 3.5), ("b", 3.5, 9.0)]


def test_mismatched_lengths_are_refused():
    with pytest.raises(ValueError, match="differ in length"):
        cif_timestamps(np.zeros(5), np.zeros(6), ["a"])
