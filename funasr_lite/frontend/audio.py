"""Read one utterance of audio from a Kaldi ``wav.scp`` value: a file path or a pipe command.

A value ending in ``|`` is a shell command whose stdout is a sound file (Kaldi's extended
filename, e.g. ``sox x.flac -t wav - |``). Audio is returned as float32 in [-1, 1], mono,
at the target rate.

Formats: whatever libsndfile (soundfile) decodes: WAV/RF64/WAVE_FORMAT_EXTENSIBLE with 8-bit
unsigned, 16/24/32-bit int, 32/64-bit float, u-law and A-law samples, FLAC, Ogg/Vorbis, ...
Wider or odd integer widths (e.g. 36- or 64-bit WAV) are refused as ``corrupt`` ("unimplemented
format"), as are WAVs without a ``data`` chunk and truncated WAVs.

Multichannel: by default the channels are averaged (``channel=None``), as FunASR's loader does
(``load_audio_text_image_video`` takes ``mean`` over channels, ``reduce_channels=True``);
``channel=N`` keeps only the 0-based channel N. Each failure raises an :class:`AudioError` subclass whose ``reason`` is a
short category (``missing``, ``corrupt``, ...) that batch tools count, and whose message
names the file or command.
"""

from __future__ import annotations

import io
import logging
import os
import struct
import subprocess
from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np
import soundfile
import torch
import torchaudio.functional

logger = logging.getLogger(__name__)


class AudioError(Exception):
    """Audio that cannot be used; ``reason`` is a short category, ``source`` the file/command."""

    reason = "unreadable"

    def __init__(self, source: str, detail: str):
        self.source = source
        self.detail = detail
        super().__init__(f"{source}: {detail}")


class AudioMissingError(AudioError):
    reason = "missing"


class AudioCorruptError(AudioError):
    reason = "corrupt"


class AudioEmptyError(AudioError):
    reason = "empty"


class AudioChannelError(AudioError):
    reason = "multichannel"


class AudioSampleRateError(AudioError):
    reason = "wrong_sample_rate"


class AudioPipeError(AudioError):
    reason = "pipe_failed"


@dataclass
class AudioInfo:
    """What :func:`read_audio` found: the source, its native rate/channels, whether it resampled."""

    source: str
    file_sample_rate: int
    num_channels: int
    num_samples: int  # after channel selection and resampling
    resampled: bool


def is_pipe_command(value: str) -> bool:
    """True for a Kaldi ``wav.scp`` value that is a command (``... |``)."""
    return value.rstrip().endswith("|")


def _check_wav_not_truncated(path: str) -> None:
    """Raise AudioCorruptError if a RIFF/WAVE file holds fewer data bytes than its header says.

    libsndfile silently reads a truncated WAV up to where it ends; a half-copied file must
    not become a shorter utterance.
    """
    file_size = os.path.getsize(path)
    with open(path, "rb") as f:
        header = f.read(12)
        if len(header) < 12 or header[:4] != b"RIFF" or header[8:12] != b"WAVE":
            return
        position = 12
        while position + 8 <= file_size:
            f.seek(position)
            chunk_id, chunk_size = struct.unpack("<4sI", f.read(8))
            if chunk_id == b"data":
                available = file_size - (position + 8)
                # 0 and 0xFFFFFFFF are "unknown length" placeholders written by streaming tools.
                if chunk_size not in (0, 0xFFFFFFFF) and available < chunk_size:
                    raise AudioCorruptError(
                        path, f"truncated: data chunk declares {chunk_size} bytes, file holds {available}"
                    )
                return
            position += 8 + chunk_size + (chunk_size & 1)


def _decode(source: str, data) -> Tuple[np.ndarray, int]:
    """Decode a path or a file-like object with soundfile; returns ((N, C) float32, rate)."""
    try:
        samples, sample_rate = soundfile.read(data, dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError, ValueError, EOFError) as e:
        raise AudioCorruptError(source, f"cannot decode: {e}") from None
    return samples, int(sample_rate)


def _run_pipe(command: str) -> bytes:
    shell_command = command.rstrip()[:-1]
    result = subprocess.run(shell_command, shell=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if result.returncode != 0:
        stderr = result.stderr.decode("utf-8", "replace").strip().splitlines()
        tail = stderr[-1] if stderr else "no stderr"
        raise AudioPipeError(command, f"command exited with status {result.returncode} ({tail})")
    if not result.stdout:
        raise AudioPipeError(command, "command wrote nothing to stdout")
    return result.stdout


def resample_waveform(waveform: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """(N,) float32 at ``from_rate`` -> float32 at ``to_rate`` (torchaudio's sinc resampler).

    The one resampler of the toolkit: files, pipes, bytes and arrays all go through it.
    """
    waveform = np.ascontiguousarray(waveform, dtype=np.float32)
    if int(from_rate) == int(to_rate):
        return waveform
    return torchaudio.functional.resample(torch.from_numpy(waveform), int(from_rate), int(to_rate)).numpy()


def load_audio(path_or_cmd: str) -> Tuple[np.ndarray, int]:
    """Decode a file path or a ``cmd |`` pipe: ``((N, C) float32, native rate)``, unchecked."""
    source = path_or_cmd.strip()
    if is_pipe_command(source):
        return _decode(source, io.BytesIO(_run_pipe(source)))
    if not os.path.exists(source):
        raise AudioMissingError(source, "no such file")
    if os.path.isdir(source):
        raise AudioMissingError(source, "is a directory, not an audio file")
    _check_wav_not_truncated(source)
    return _decode(source, source)


def decode_audio_bytes(data: bytes, source: str) -> Tuple[np.ndarray, int]:
    """Decode a sound file's bytes (WAV, FLAC, Ogg, ...): ``((N, C) float32, native rate)``."""
    return _decode(source, io.BytesIO(data))


def read_audio(
    path_or_cmd: str,
    target_sr: Optional[int] = 16000,
    resample: bool = True,
    channel: Optional[int] = None,
) -> Tuple[np.ndarray, int, AudioInfo]:
    """Read one utterance as mono float32 samples in [-1, 1].

    Args:
        path_or_cmd: a file path, or a command ending in ``|`` whose stdout is a sound file.
        target_sr: the rate the caller needs (None: keep the file's rate).
        resample: when the file's rate differs from ``target_sr``, resample it
            (:func:`resample_waveform`, reported in ``info.resampled``) instead of refusing.
        channel: 0-based channel to keep from a multichannel file; None averages the channels
            (FunASR's default). A channel the file does not have is refused (``multichannel``).

    Returns:
        ``(samples (N,) float32, sample_rate, info)``.

    Raises:
        AudioError subclass (missing, corrupt, empty, multichannel, wrong_sample_rate,
        pipe_failed); the message names the file or command.
    """
    source = path_or_cmd.strip()
    samples, file_rate = load_audio(source)
    return prepare_samples(samples, file_rate, source, target_sr, resample, channel)


def prepare_samples(
    samples: np.ndarray,
    file_rate: int,
    source: str,
    target_sr: Optional[int] = 16000,
    resample: bool = True,
    channel: Optional[int] = None,
) -> Tuple[np.ndarray, int, AudioInfo]:
    """Decoded ``(N, C)`` samples -> checked mono float32 at ``target_sr`` (see :func:`read_audio`)."""
    num_samples, num_channels = samples.shape
    if num_samples == 0:
        raise AudioEmptyError(source, "0 samples")
    if channel is None:  # FunASR's choice: the mean of all channels
        waveform = samples[:, 0] if num_channels == 1 else samples.mean(axis=1, dtype=np.float32)
    elif not 0 <= channel < num_channels:
        raise AudioChannelError(
            source, f"channel {channel} requested but the file has {num_channels} channel(s) (0..{num_channels - 1})"
        )
    else:
        waveform = samples[:, channel]
    waveform = np.ascontiguousarray(waveform, dtype=np.float32)
    if not np.all(np.isfinite(waveform)):
        raise AudioCorruptError(source, "contains NaN or infinite samples")

    resampled = False
    sample_rate = file_rate
    if target_sr is not None and file_rate != target_sr:
        if not resample:
            raise AudioSampleRateError(
                source, f"refused: {file_rate} Hz, expected {target_sr}; pass --resample true"
            )
        waveform = resample_waveform(waveform, file_rate, target_sr)
        sample_rate = target_sr
        resampled = True
        logger.debug("%s: resampled %d Hz -> %d Hz", source, file_rate, target_sr)

    info = AudioInfo(
        source=source,
        file_sample_rate=file_rate,
        num_channels=num_channels,
        num_samples=int(waveform.shape[0]),
        resampled=resampled,
    )
    return waveform.astype(np.float32, copy=False), sample_rate, info
