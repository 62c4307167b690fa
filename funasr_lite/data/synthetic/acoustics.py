"""Room and noise for the synthetic corpus: reverberation, additive noise at an SNR, levels.

Every function takes its random choices from the ``numpy`` generator it is given, so an
utterance's audio depends only on that generator's seed.
"""

from __future__ import annotations

import math

import numpy as np

NOISE_KINDS = ("white", "pink", "brown", "babble")


def signal_power(x: np.ndarray) -> float:
    """Mean square of ``x``."""
    return float(np.mean(np.square(x, dtype=np.float64)))


def mix_at_snr(clean: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """``clean + g * noise`` with g chosen so that 10·log10(P_clean / P_{g·noise}) = snr_db.

    Powers are means over the whole signal (silences included). Shapes ``(T,)``.
    """
    if clean.shape != noise.shape:
        raise ValueError(f"clean {clean.shape} and noise {noise.shape} differ in shape")
    noise_power = signal_power(noise)
    if noise_power == 0.0:
        raise ValueError("noise is all zeros")
    gain = math.sqrt(signal_power(clean) / (noise_power * 10 ** (snr_db / 10)))
    return (clean + gain * noise).astype(clean.dtype)


def _shaped_noise(length: int, rng: np.random.Generator, exponent: float) -> np.ndarray:
    """Gaussian noise with power spectrum ∝ 1/f**exponent (0 white, 1 pink, 2 brown)."""
    if exponent == 0.0:
        return rng.standard_normal(length)
    fft_length = 1 << max(length - 1, 1).bit_length()  # a power of two: fast FFT
    spectrum = np.fft.rfft(rng.standard_normal(fft_length))
    freqs = np.arange(spectrum.size, dtype=np.float64)
    freqs[0] = 1.0
    spectrum /= freqs ** (exponent / 2)
    spectrum[0] = 0.0
    return np.fft.irfft(spectrum, n=fft_length)[:length]


def babble_noise(length: int, rng: np.random.Generator, speech: np.ndarray, streams: int = 5) -> np.ndarray:
    """Several overlapping streams of time-reversed speech at random offsets: speech-like, unintelligible.

    ``speech`` ``(N,)`` is the material (the utterance's own clean speech); each stream is it reversed,
    tiled to ``length`` and started at a random point.
    """
    if speech.size == 0:
        raise ValueError("babble noise needs speech")
    reversed_speech = speech[::-1]
    repeats = -(-length // reversed_speech.size) + 1
    tiled = np.tile(reversed_speech, repeats)
    total = np.zeros(length)
    for _ in range(streams):
        offset = int(rng.integers(0, reversed_speech.size))
        total += tiled[offset:offset + length]
    return total


def make_noise(kind: str, length: int, rng: np.random.Generator, speech: np.ndarray = np.zeros(0)) -> np.ndarray:
    """Noise of ``kind`` (one of :data:`NOISE_KINDS`), shape ``(length,)``; babble is made from ``speech``."""
    if kind == "babble":
        return babble_noise(length, rng, speech)
    exponents = {"white": 0.0, "pink": 1.0, "brown": 2.0}
    if kind not in exponents:
        raise ValueError(f"unknown noise kind {kind!r}; choose from {NOISE_KINDS}")
    return _shaped_noise(length, rng, exponents[kind])


def room_impulse_response(rt60_s: float, direct_to_reverb_db: float, sample_rate: int,
                          rng: np.random.Generator) -> np.ndarray:
    """A synthetic room: a unit direct path at t=0 plus exponentially decaying noise.

    The tail decays by 60 dB in ``rt60_s`` seconds and carries ``direct_to_reverb_db`` dB less
    energy than the direct path. The direct path is at sample 0, so reverberation delays nothing
    and the character timestamps stay valid.
    """
    if rt60_s <= 0:
        raise ValueError(f"rt60 must be positive, got {rt60_s}")
    length = max(2, int(rt60_s * sample_rate))
    t = np.arange(length) / sample_rate
    tail = rng.standard_normal(length) * np.exp(-3.0 * math.log(10.0) * t / rt60_s)  # -60 dB at rt60
    tail[0] = 0.0
    tail *= math.sqrt(10 ** (-direct_to_reverb_db / 10) / float(np.sum(tail ** 2)))
    tail[0] = 1.0
    return tail


def reverberate(audio: np.ndarray, rir: np.ndarray) -> np.ndarray:
    """``audio`` ``(T,)`` convolved with ``rir`` and cut to ``T`` samples (FFT convolution)."""
    size = audio.size + rir.size - 1
    fft_size = 1 << (size - 1).bit_length()
    out = np.fft.irfft(np.fft.rfft(audio, fft_size) * np.fft.rfft(rir, fft_size), fft_size)
    return out[:audio.size]
