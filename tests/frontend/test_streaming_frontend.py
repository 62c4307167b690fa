"""StreamingFrontend: any split of the audio gives the offline WavFrontend's frames."""

import numpy as np
import pytest
import torch

from funasr_lite.frontend.audio import resample_waveform
from funasr_lite.frontend.streaming import StreamingFrontend, StreamResampler
from funasr_lite.frontend.wav_frontend import WavFrontend

CONF = {"fs": 16000, "window": "hamming", "n_mels": 80, "frame_length": 25, "frame_shift": 10, "lfr_m": 7,
        "lfr_n": 6}


def frontend(with_cmvn=True):
    rng = np.random.default_rng(0)
    cmvn = (rng.normal(size=560).astype(np.float32), rng.uniform(0.5, 2, size=560).astype(np.float32)) \
        if with_cmvn else None
    return WavFrontend(CONF, cmvn=cmvn)


def audio(seconds, seed=1):
    rng = np.random.default_rng(seed)
    t = np.arange(int(16000 * seconds)) / 16000
    return (0.3 * np.sin(2 * np.pi * 220 * t) + 0.05 * rng.normal(size=t.size)).astype(np.float32)


@pytest.mark.parametrize("seconds,pieces", [(2.37, "random"), (1.0, [1] * 50 + [15950]), (0.9, [16000 * 5]),
                                            (3.1, [160] * 320), (0.7, [399, 1, 400, 10400])])
def test_any_split_gives_the_offline_frames(seconds, pieces):
    wave = audio(seconds)
    offline = frontend()(wave)
    if pieces == "random":
        rng = np.random.default_rng(2)
        cuts = np.sort(rng.choice(np.arange(1, wave.size), size=40, replace=False))
        parts = np.split(wave, cuts)
    else:
        bounds = np.cumsum(pieces)[:-1]
        parts = np.split(wave, bounds[bounds < wave.size])
    stream = StreamingFrontend(frontend())
    got = [stream.accept(part) for part in parts] + [stream.finish()]
    streamed = torch.cat(got)
    assert streamed.shape == offline.shape
    torch.testing.assert_close(streamed, offline, atol=1e-4, rtol=1e-5)
    assert stream.frames_emitted == offline.shape[0]


def test_frames_come_out_with_a_bounded_delay_and_memory_stays_small():
    stream = StreamingFrontend(frontend(with_cmvn=False))
    wave = audio(20.0)
    emitted = 0
    for start in range(0, wave.size, 1600):  # 100 ms pieces
        emitted += stream.accept(wave[start:start + 1600]).shape[0]
        fbank_frames = (stream.samples_seen - 400) // 160 + 1
        assert fbank_frames - 6 * emitted <= 6 + 3  # at most one LFR hop + half a window behind
        assert stream._fbank.shape[0] <= 12 and stream._samples.size < 560
    emitted += stream.finish().shape[0]
    assert emitted == frontend(with_cmvn=False)(wave).shape[0]


def test_short_streams_reset_and_finish():
    stream = StreamingFrontend(frontend())
    assert stream.accept(np.zeros(100, dtype=np.float32)).shape == (0, 560)
    assert stream.finish().shape == (0, 560)  # shorter than one window: no frames, as offline
    with pytest.raises(RuntimeError, match="finished"):
        stream.accept(np.zeros(10, dtype=np.float32))
    stream.reset()
    wave = audio(0.5)
    out = torch.cat([stream.accept(wave), stream.finish()])
    torch.testing.assert_close(out, frontend()(wave), atol=1e-4, rtol=1e-5)


# ---------------------------------------------------------------- StreamResampler

@pytest.mark.parametrize("rates", [(8000, 16000), (44100, 16000), (48000, 16000), (22050, 16000), (16000, 8000),
                                    (16000, 16000)])
@pytest.mark.parametrize("piece", [1, 7, 1234, 10**6])
def test_resampling_in_pieces_equals_resampling_the_whole_signal(rates, piece):
    from_rate, to_rate = rates
    signal = (np.random.default_rng(0).standard_normal(from_rate + 37) * 0.1).astype(np.float32)
    whole = resample_waveform(signal, from_rate, to_rate)
    resampler = StreamResampler(from_rate, to_rate)
    parts = [resampler.accept(signal[start:start + piece]) for start in range(0, signal.size, piece)]
    got = np.concatenate(parts + [resampler.finish()])
    assert got.shape == whole.shape
    np.testing.assert_allclose(got, whole, atol=1e-6, rtol=0)
    if piece == 1234 and from_rate != to_rate:  # output comes while the input arrives, not all at the end
        assert sum(part.size for part in parts) > 0.9 * whole.size
