import numpy as np
import pytest
import soundfile as sf
import torch

from funasr_lite.frontend.audio import (
    AudioChannelError,
    AudioCorruptError,
    AudioEmptyError,
    AudioError,
    AudioMissingError,
    AudioPipeError,
    AudioSampleRateError,
    read_audio,
)

torch.set_num_threads(1)


def write_int16(path, samples_int16, sample_rate=16000):
    sf.write(str(path), samples_int16, sample_rate, subtype="PCM_16")
    return str(path)


@pytest.fixture
def int16_signal():
    return np.random.RandomState(0).randint(-20000, 20000, size=4000).astype(np.int16)


def test_reads_int16_as_float_in_unit_range(tmp_path, int16_signal):
    path = write_int16(tmp_path / "a.wav", int16_signal)
    samples, rate, info = read_audio(path)
    assert samples.dtype == np.float32 and samples.shape == (4000,)
    assert rate == 16000 and not info.resampled and info.num_channels == 1
    np.testing.assert_array_equal(samples, int16_signal.astype(np.float32) / 32768.0)


def test_pipe_command_gives_same_samples(tmp_path, int16_signal):
    path = write_int16(tmp_path / "a.wav", int16_signal)
    from_file, _, _ = read_audio(path)
    from_pipe, rate, info = read_audio(f"cat {path} |")
    assert rate == 16000 and info.source == f"cat {path} |"
    np.testing.assert_array_equal(from_pipe, from_file)


def test_failing_pipe_names_command(tmp_path):
    with pytest.raises(AudioPipeError, match=r"cat /nonexistent/x.wav \|.*status 1"):
        read_audio("cat /nonexistent/x.wav |")


def test_missing_file_names_it(tmp_path):
    missing = str(tmp_path / "nope.wav")
    with pytest.raises(AudioMissingError, match="nope.wav: no such file") as e:
        read_audio(missing)
    assert e.value.reason == "missing" and isinstance(e.value, AudioError)


def test_garbage_is_corrupt(tmp_path):
    path = tmp_path / "bad.wav"
    path.write_bytes(b"not audio at all" * 50)
    with pytest.raises(AudioCorruptError, match="bad.wav: cannot decode"):
        read_audio(str(path))


def test_truncated_wav_is_corrupt(tmp_path, int16_signal):
    path = write_int16(tmp_path / "full.wav", int16_signal)
    data = open(path, "rb").read()
    truncated = tmp_path / "half.wav"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(
        AudioCorruptError,
        match=r"half.wav: truncated: data chunk declares 8000 bytes, file holds 3978"
    ):
        read_audio(str(truncated))


def test_zero_samples_is_empty(tmp_path):
    path = write_int16(tmp_path / "empty.wav", np.zeros(0, np.int16))
    with pytest.raises(AudioEmptyError, match="empty.wav: 0 samples"):
        read_audio(path)


def test_stereo_is_averaged_by_default_or_one_channel_is_kept(tmp_path):
    left = np.arange(1000, dtype=np.int16)
    right = -np.arange(1000, dtype=np.int16) // 3
    path = str(tmp_path / "stereo.wav")
    sf.write(path, np.stack([left, right], axis=1), 16000, subtype="PCM_16")
    samples, _, info = read_audio(path)  # FunASR's default: the mean of the channels
    assert info.num_channels == 2
    expected_mean = (left.astype(np.float64) + right.astype(np.float64)) / 2 / 32768.0
    np.testing.assert_allclose(samples, expected_mean, rtol=0, atol=1e-7)
    samples, _, info = read_audio(path, channel=1)
    np.testing.assert_array_equal(samples, right.astype(np.float32) / 32768.0)
    with pytest.raises(AudioChannelError, match=r"channel 2 requested but the file has 2 channel\(s\) \(0..1\)"):
        read_audio(path, channel=2)


def test_wrong_rate_refused_or_resampled(tmp_path):
    rate = 8000
    t = np.arange(8000) / rate  # 1 s
    tone = (0.5 * np.sin(2 * np.pi * 440.0 * t) * 32767).astype(np.int16)
    path = write_int16(tmp_path / "narrow.wav", tone, rate)
    with pytest.raises(AudioSampleRateError, match="refused: 8000 Hz, expected 16000; pass --resample true"):
        read_audio(path, resample=False)
    samples, out_rate, info = read_audio(path, resample=True)
    assert out_rate == 16000 and info.resampled and info.file_sample_rate == 8000
    assert samples.shape == (16000,)
    # The tone keeps its pitch: the spectral peak of the 16 kHz signal is still at 440 Hz.
    spectrum = np.abs(np.fft.rfft(samples))
    peak_hz = np.argmax(spectrum) * 16000 / len(samples)
    assert abs(peak_hz - 440.0) <= 1.0


def test_nan_samples_are_corrupt(tmp_path):
    samples = np.zeros(1000, np.float32)
    samples[500] = np.nan
    path = str(tmp_path / "nan.wav")
    sf.write(path, samples, 16000, subtype="FLOAT")
    with pytest.raises(AudioCorruptError, match="nan.wav: contains NaN or infinite samples"):
        read_audio(path)
