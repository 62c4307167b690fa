import math

import numpy as np
import pytest
import torch

from funasr_lite.frontend.fbank import compute_fbank
from funasr_lite.frontend.speed_perturb import speed_perturb

torch.set_num_threads(1)

RATE = 16000


def tone(freq, seconds=1.0):
    t = np.arange(int(RATE * seconds)) / RATE
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def peak_frequency(samples):
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return np.argmax(spectrum) * RATE / len(samples)


@pytest.mark.parametrize("factor", [0.9, 1.1])
def test_length_and_pitch_change_like_sox_speed(factor):
    wave = tone(1000.0)
    out = speed_perturb(wave, RATE, factor)
    assert isinstance(out, np.ndarray) and out.dtype == np.float32
    assert len(out) == math.ceil(len(wave) / factor - 1e-9)
    # Played at the same rate, the tone's pitch scales by the factor.
    assert abs(peak_frequency(out) - 1000.0 * factor) <= 2.0


@pytest.mark.parametrize("factor", [0.9, 1.1])
def test_frame_count_scales_by_one_over_factor(factor):
    wave = np.random.RandomState(0).uniform(-0.3, 0.3, 3 * RATE).astype(np.float32)
    frames = compute_fbank(wave).shape[0]
    perturbed_frames = compute_fbank(speed_perturb(wave, RATE, factor)).shape[0]
    assert abs(perturbed_frames - frames / factor) <= 2


def test_factor_one_is_identity_and_bad_factor_raises():
    wave = tone(300.0, 0.1)
    assert np.array_equal(speed_perturb(wave, RATE, 1.0), wave)
    assert isinstance(speed_perturb(torch.from_numpy(wave), RATE, 0.9), torch.Tensor)
    with pytest.raises(ValueError, match="speed factor must be > 0"):
        speed_perturb(wave, RATE, 0.0)
