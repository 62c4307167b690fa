import numpy as np
import pytest
import torch
import torchaudio.compliance.kaldi

from funasr_lite.frontend.fbank import (
    WaveformRangeError,
    WaveformTooShortError,
    compute_fbank,
    num_fbank_frames,
)

torch.set_num_threads(1)


@pytest.fixture
def signal():
    # Fixed random "speech": int16-valued samples, as read from a PCM file, scaled to [-1, 1].
    ints = np.random.RandomState(1).randint(-8000, 8000, size=16000 + 123)
    return (ints / 32768.0).astype(np.float32)


def test_equals_torchaudio_kaldi_fbank_with_spec_settings(signal):
    expected = torchaudio.compliance.kaldi.fbank(
        torch.from_numpy(signal).unsqueeze(0) * 32768,
        num_mel_bins=80,
        frame_length=25.0,
        frame_shift=10.0,
        dither=0.0,
        energy_floor=0.0,
        window_type="hamming",
        preemphasis_coefficient=0.97,
        remove_dc_offset=True,
        snip_edges=True,
        sample_frequency=16000,
    )
    ours = compute_fbank(signal)
    assert ours.dtype == torch.float32 and ours.shape == (1 + (len(signal) - 400) // 160, 80)
    torch.testing.assert_close(ours, expected, rtol=0, atol=0)


def test_equals_funasr_wav_frontend(signal):
    from funasr.frontends.wav_frontend import WavFrontend

    frontend = WavFrontend(cmvn_file=None, fs=16000, n_mels=80, frame_length=25, frame_shift=10,
                           lfr_m=1, lfr_n=1, dither=0.0)
    wave = torch.from_numpy(signal).unsqueeze(0)
    oracle, oracle_lengths = frontend(wave, torch.tensor([len(signal)]))
    ours = compute_fbank(torch.from_numpy(signal))  # torch input works too
    assert int(oracle_lengths[0]) == ours.shape[0]
    torch.testing.assert_close(ours, oracle[0], rtol=0, atol=0)


@pytest.mark.parametrize("num_samples", [400, 401, 559, 560, 561, 16000, 23999])
def test_frame_count(num_samples):
    wave = np.random.RandomState(num_samples).uniform(-0.5, 0.5, num_samples).astype(np.float32)
    expected = 1 + (num_samples - 400) // 160
    assert compute_fbank(wave).shape == (expected, 80)
    assert num_fbank_frames(num_samples) == expected


def test_shorter_than_one_window_raises():
    with pytest.raises(WaveformTooShortError, match="399 samples, fewer than one 400-sample window"):
        compute_fbank(np.zeros(399, np.float32))
    assert num_fbank_frames(399) == 0


def test_int16_scaled_input_is_refused(signal):
    with pytest.raises(WaveformRangeError, match="outside \\[-1, 1\\]"):
        compute_fbank(signal * 32768)


def test_dither_zero_is_deterministic_and_dither_changes_features(signal):
    torch.testing.assert_close(compute_fbank(signal), compute_fbank(signal), rtol=0, atol=0)
    torch.manual_seed(0)
    dithered = compute_fbank(signal, dither=1.0)
    assert not torch.equal(dithered, compute_fbank(signal))
    # Dither of one int16 step is small against speech-level energy.
    assert (dithered - compute_fbank(signal)).abs().mean() < 0.05
