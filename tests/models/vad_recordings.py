"""Long test recordings for the VAD tests: espeak-ng speech joined with pauses, plus noise.

Each recording is built from a seed: utterances (espeak-ng, Mandarin pinyin and English voices at
several speeds/pitches, or a harmonic "vowel train" with a syllable-rate envelope), joined with
0.3-3 s pauses, scaled to a random level, with white or brown noise at a given SNR. Deterministic
(espeak-ng output is cached per process).
"""

from __future__ import annotations

import functools
import os
import subprocess
import tempfile
from typing import List, Tuple

import numpy as np
import soundfile
import torch
import torchaudio.functional

SAMPLE_RATE = 16000

UTTERANCES: Tuple[Tuple[str, str, int, int], ...] = (  # (voice, text, words/min, pitch)
    ("cmn-latn-pinyin", "jin1 tian1 tian1 qi4 hen3 hao3 wo3 men5 qu4 gong1 yuan2 san4 bu4", 150, 50),
    ("cmn-latn-pinyin", "zhe4 shi4 yi2 ge4 yu3 yin1 shi2 bie2 de5 ce4 shi4 ju4 zi5", 170, 30),
    ("cmn-latn-pinyin", "ren2 min2 ri4 bao4 fa1 biao3 she4 lun4 zhi3 chu1 jing1 ji4 fa1 zhan3 xu1 yao4 chuang4 xin1", 130, 70),
    ("cmn-latn-pinyin", "hao3", 160, 50),
    ("en-us", "the quick brown fox jumps over the lazy dog and then runs away", 140, 60),
    ("en-gb", "speech recognition of long recordings needs a voice activity detector", 175, 40),
    ("en-us", "yes", 150, 50),
    ("en-gb-scotland", "one two three four five six seven eight nine ten", 120, 80),
)


@functools.lru_cache(maxsize=None)
def espeak(voice: str, text: str, speed: int, pitch: int) -> np.ndarray:
    """espeak-ng's waveform, resampled to 16 kHz, peak-normalised to 0.9."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "u.wav")
        subprocess.run(
            ["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", path, text],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        samples, rate = soundfile.read(path, dtype="float32")
    samples = torchaudio.functional.resample(torch.from_numpy(samples), rate, SAMPLE_RATE).numpy()
    return (0.9 * samples / max(1e-6, float(np.abs(samples).max()))).astype(np.float32)


def vowel_train(rng: np.random.Generator, seconds: float) -> np.ndarray:
    """A speech-like harmonic signal: f0 80-260 Hz with vibrato, 3-6 syllables/s envelope."""
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    f0 = rng.uniform(80, 260) * (1 + 0.05 * np.sin(2 * np.pi * rng.uniform(2, 5) * t))
    phase = 2 * np.pi * np.cumsum(f0) / SAMPLE_RATE
    wave = sum(np.sin(k * phase) / k for k in range(1, 12))
    envelope = np.clip(np.sin(2 * np.pi * rng.uniform(3, 6) * t / 2) ** 2, 0, 1)
    return (0.5 * wave * envelope / 2.0).astype(np.float32)


def _noise(rng: np.random.Generator, n: int, kind: str) -> np.ndarray:
    white = rng.standard_normal(n)
    if kind == "white":
        return white
    brown = np.cumsum(white)
    width = 801  # subtract an 801-sample moving average: keeps the low-frequency rumble, drops the drift
    padded = np.concatenate([np.full(width // 2, brown[0]), brown, np.full(width // 2, brown[-1])])
    sums = np.cumsum(np.concatenate([[0.0], padded]))
    return brown - (sums[width:] - sums[:-width]) / width


def build_recording(seed: int, seconds: float, snr_db: float, noise_kind: str = "white",
                    max_pause: float = 3.0, min_pause: float = 0.3, level: float = None,
                    lead_in: float = None) -> Tuple[np.ndarray, List[Tuple[float, float]]]:
    """A recording of about ``seconds`` and its true speech spans (s)."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SAMPLE_RATE)
    out = np.zeros(n, dtype=np.float32)
    spans = []
    position = int((rng.uniform(0.2, 4.0) if lead_in is None else lead_in) * SAMPLE_RATE)
    while position < n:
        if rng.random() < 0.8:
            utterance = espeak(*UTTERANCES[rng.integers(len(UTTERANCES))])
        else:
            utterance = vowel_train(rng, rng.uniform(0.5, 5.0))
        piece = utterance[: n - position]
        out[position : position + piece.size] += piece
        spans.append((position / SAMPLE_RATE, (position + piece.size) / SAMPLE_RATE))
        position += piece.size + int(rng.uniform(min_pause, max_pause) * SAMPLE_RATE)
    speech_power = float(np.mean(out[out != 0] ** 2)) if np.any(out) else 1e-4
    noise = _noise(rng, n, noise_kind)
    noise *= np.sqrt(speech_power / (10 ** (snr_db / 10)) / np.mean(noise ** 2))
    mixed = out + noise.astype(np.float32)
    scale = (rng.uniform(0.05, 0.9) if level is None else level) / max(1e-6, float(np.abs(mixed).max()))
    return (mixed * scale).astype(np.float32), spans


# (seed, seconds, snr_db, noise, max_pause, min_pause): 24 recordings, 20 s - 3 min, SNR 0-40 dB,
# short and long pauses, one with nearly continuous speech (segments cut at 60 s).
RECORDINGS = (
    (1, 20, 30, "white", 3.0, 0.3),
    (2, 25, 20, "white", 3.0, 0.3),
    (3, 31, 10, "brown", 3.0, 0.3),
    (4, 38, 5, "white", 3.0, 0.3),
    (5, 45, 40, "brown", 1.0, 0.3),
    (6, 52, 15, "white", 3.0, 1.5),
    (7, 59.99, 25, "white", 3.0, 0.3),
    (8, 60.5, 10, "brown", 2.0, 0.3),
    (9, 66, 0, "white", 3.0, 0.3),
    (10, 75, 20, "brown", 3.0, 0.3),
    (11, 84, 30, "white", 0.6, 0.3),
    (12, 90, 10, "white", 3.0, 2.0),
    (13, 97, 15, "brown", 3.0, 0.3),
    (14, 105, 5, "brown", 3.0, 0.3),
    (15, 110, 35, "white", 1.2, 0.3),
    (16, 120, 20, "white", 3.0, 0.3),
    (17, 121, 10, "brown", 0.5, 0.3),
    (18, 130, 25, "white", 3.0, 0.3),
    (19, 140, 15, "white", 2.5, 0.3),
    (20, 150, 8, "brown", 3.0, 0.3),
    (21, 160, 30, "brown", 3.0, 1.0),
    (22, 170, 20, "white", 0.35, 0.3),
    (23, 180, 12, "white", 3.0, 0.3),
    (24, 95, 30, "white", 0.31, 0.3),  # almost no pauses: FunASR cuts segments
)


def load_funasr_vad(model_dir: str):
    """The funasr oracle: ``AutoModel`` on a local VAD dir, offline, one thread, quiet."""
    import logging

    from funasr import AutoModel

    threads = torch.get_num_threads()
    model = AutoModel(model=model_dir, disable_update=True, disable_pbar=True, disable_log=True, device="cpu", ncpu=1)
    torch.set_num_threads(threads)  # AutoModel sets the global thread count
    logging.getLogger().setLevel(logging.WARNING)
    return model


def funasr_segments(funasr_vad, audio, **options):
    (result,) = funasr_vad.generate(input=audio, **options)
    return result["value"]
