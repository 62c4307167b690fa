"""Audio for the VAD in blocks: a long file is never held whole when it is already at the model rate."""

from __future__ import annotations

import os
from typing import Iterator

import numpy as np
import soundfile

from funasr_lite.frontend.audio import (
    AudioCorruptError,
    _check_wav_not_truncated,  # the streaming path must refuse a truncated WAV as load_audio does
    is_pipe_command,
    load_audio,
    resample_waveform,
)

_DECODE_ERRORS = (soundfile.LibsndfileError, RuntimeError, ValueError, EOFError)


def _mono(block: np.ndarray, source: str) -> np.ndarray:
    """(N, C) -> (N,) float32, channels averaged (FunASR downmixes the same way)."""
    mono = block[:, 0] if block.shape[1] == 1 else block.mean(axis=1)
    mono = np.ascontiguousarray(mono, dtype=np.float32)
    if not np.all(np.isfinite(mono)):
        raise AudioCorruptError(source, "contains NaN or infinite samples")
    if mono.size and float(np.abs(mono).max()) > 2.0:  # the fbank refuses it later, without the name
        raise AudioCorruptError(source, f"float samples reach {float(np.abs(mono).max()):.1f}, outside [-1, 1]")
    return mono


def read_audio_blocks(source: str, sample_rate: int, block_samples: int) -> Iterator[np.ndarray]:
    """Mono float32 blocks (in [-1, 1]) of an audio file or a ``cmd |`` pipe, at ``sample_rate``.

    A file already at ``sample_rate`` is read ``block_samples`` at a time, so memory does not grow
    with its length; a pipe, or a file at another rate, is decoded whole and resampled
    (torchaudio's sinc resampler, as FunASR). Multichannel audio is downmixed (mean). A file with
    no samples yields nothing.

    Raises:
        AudioError subclasses naming the source: missing, corrupt (undecodable, truncated WAV,
        NaN samples), pipe_failed.
    """
    source = source.strip()
    if not is_pipe_command(source) and os.path.isfile(source):
        _check_wav_not_truncated(source)
        try:
            with soundfile.SoundFile(source) as f:
                if f.samplerate == sample_rate:
                    for block in f.blocks(blocksize=block_samples, dtype="float32", always_2d=True):
                        yield _mono(block, source)
                    return
        except _DECODE_ERRORS as e:
            raise AudioCorruptError(source, f"cannot decode: {e}") from None
    samples, rate = load_audio(source)  # pipes, other rates; names missing/corrupt sources
    if samples.shape[0] == 0:
        return
    waveform = resample_waveform(_mono(samples, source), rate, sample_rate)
    for start in range(0, waveform.size, block_samples):
        yield waveform[start : start + block_samples]
