"""Kaldi log-mel filterbank features (docs/spec.md §1.1-1.2) and the per-job extraction loop.

Settings are Kaldi's compute-fbank defaults that FunASR uses (frontend_conf may change the window,
n_mels and frame length/shift: the job loop takes them from a ``wav_frontend.WavFrontend``):
25 ms hamming window, 10 ms shift, snip_edges (frames = 1 + (N - 400) // 160 at 16 kHz), pre-emphasis 0.97, DC removal,
energy_floor 0, on the waveform scaled to the int16 range (x * 32768).

Dither: FunASR's configs default to dither 1.0 everywhere. Here dither is 0 unless asked
for: use dither > 0 only for training features (a little noise regularises silent frames);
decoding and CMVN statistics must use dither 0 so results are deterministic.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple, Union

import kaldiio
import numpy as np
import torch
import torchaudio.compliance.kaldi

from funasr_lite.frontend.audio import AudioError
from funasr_lite.frontend.speed_perturb import speed_perturb
from funasr_lite.utils.failures import TooManyFailuresError
from funasr_lite.utils.fileio import atomic_open
from funasr_lite.utils.kaldi_kv import DataDirError, iter_kv, read_kv
from funasr_lite.utils.progress import progress

logger = logging.getLogger(__name__)

INT16_SCALE = 32768.0


class WaveformTooShortError(ValueError):
    """The waveform is shorter than one analysis window, so it has no frames."""

    reason = "too_short"


class WaveformRangeError(ValueError):
    """Samples far outside [-1, 1]: int16 values passed as floats, or a broken float file."""

    reason = "out_of_range"


def num_fbank_frames(
    num_samples: int, sample_rate: int = 16000, frame_length: float = 25, frame_shift: float = 10
) -> int:
    """Frames produced with snip_edges: ``1 + (N - window) // shift``, 0 if N < window."""
    window = int(sample_rate * frame_length * 0.001)
    shift = int(sample_rate * frame_shift * 0.001)
    return 0 if num_samples < window else 1 + (num_samples - window) // shift


def compute_fbank(
    waveform: Union[np.ndarray, torch.Tensor],
    sample_rate: int = 16000,
    num_mel_bins: int = 80,
    frame_length: float = 25,
    frame_shift: float = 10,
    dither: float = 0.0,
    energy_floor: float = 0.0,
    window_type: str = "hamming",
    preemphasis_coefficient: float = 0.97,
    remove_dc_offset: bool = True,
    snip_edges: bool = True,
) -> torch.Tensor:
    """Log-mel filterbank of one mono waveform.

    Args:
        waveform: (N,) float samples in [-1, 1] (numpy or torch); scaled by 32768 here.
        dither: 0 for decoding and CMVN statistics; > 0 only for training features.
            Uses torch's global RNG (seed it for reproducible training features).

    Returns:
        (T, num_mel_bins) float32 tensor, T = 1 + (N - 400) // 160 at 16 kHz.

    Raises:
        WaveformTooShortError: N is shorter than one window (400 samples at 16 kHz).
        WaveformRangeError: the peak is above 2.0 (e.g. already scaled to the int16 range).
        ValueError: the waveform is not 1-D.
    """
    samples = torch.as_tensor(waveform)
    if samples.dim() != 1:
        raise ValueError(f"compute_fbank expects a 1-D waveform (N,), got shape {tuple(samples.shape)}")
    samples = samples.to(torch.float32)
    window = int(sample_rate * frame_length * 0.001)
    if samples.numel() < window:
        raise WaveformTooShortError(
            f"{samples.numel()} samples, fewer than one {window}-sample window ({frame_length} ms at {sample_rate} Hz)"
        )
    peak = float(samples.abs().max())
    # Float audio may clip a little above 1; a peak far above it means the caller already scaled.
    if peak > 2.0:
        raise WaveformRangeError(f"waveform peak {peak:.1f} is outside [-1, 1]: pass float samples, not int16 values")
    return torchaudio.compliance.kaldi.fbank(
        (samples * INT16_SCALE).unsqueeze(0),
        num_mel_bins=num_mel_bins,
        frame_length=frame_length,
        frame_shift=frame_shift,
        dither=dither,
        energy_floor=energy_floor,
        window_type=window_type,
        preemphasis_coefficient=preemphasis_coefficient,
        remove_dc_offset=remove_dc_offset,
        snip_edges=snip_edges,
        sample_frequency=sample_rate,
    )


def read_utt2speed(path) -> Dict[str, float]:
    """Read ``utt2speed`` (``sp0.9-UTT 0.9``); a bad factor is an error naming file:line."""
    factors: Dict[str, float] = {}
    for key, value, line_no in iter_kv(path):
        try:
            factor = float(value)
        except ValueError:
            raise DataDirError(f"{path}:{line_no}: speed factor {value!r} for {key!r} is not a number") from None
        if not 0.0 < factor < 10.0:
            raise DataDirError(f"{path}:{line_no}: speed factor {factor} for {key!r} is out of range (0, 10)")
        factors[key] = factor
    return factors


@dataclass
class FbankJobSummary:
    """Counts of one compute_fbank job; ``dropped`` maps utt id -> (reason, detail)."""

    total: int = 0
    written: int = 0
    resampled: int = 0
    dropped: Dict[str, Tuple[str, str]] = field(default_factory=dict)

    def reason_counts(self) -> Dict[str, int]:
        return dict(collections.Counter(reason for reason, _ in self.dropped.values()))

    def describe(self) -> str:
        """e.g. ``5 utterances, 2 written, 3 dropped: 2 corrupt, 1 wrong sample rate``."""
        text = f"{self.total} utterances, {self.written} written, {len(self.dropped)} dropped"
        counts = self.reason_counts()
        if counts:
            ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
            text += ": " + ", ".join(f"{n} {reason.replace('_', ' ')}" for reason, n in ordered)
        if self.resampled:
            text += f" ({self.resampled} resampled to the target rate)"
        return text


def extract_fbank_job(
    wav_scp,
    out_ark,
    out_scp,
    out_utt2num_frames,
    frontend,
    utt2speed=None,
    resample: bool = True,
    channel: Optional[int] = None,
    max_failures: Optional[int] = None,
) -> FbankJobSummary:
    """Compute fbank for every utterance of ``wav_scp`` into one float32 ark + scp.

    ``frontend`` (a ``funasr_lite.frontend.wav_frontend.WavFrontend``) reads the audio at its
    rate and computes the fbank with its options (``frontend.fbank``); the caller records
    ``frontend.fbank_options()`` beside the features.

    Bad utterances are logged one line each, skipped, and listed with their reason in
    ``<out_scp>.dropped`` (``utt_id reason source: detail``). ``channel`` picks one channel of
    multichannel audio (None: their mean, FunASR's default). With ``max_failures`` N, the
    (N+1)-th bad utterance raises TooManyFailuresError and nothing is written (0: any is fatal;
    None: no limit, as Kaldi's compute-fbank). All outputs are written under temp names and renamed at the end,
    the scp last, so a killed job leaves no half files. The scp refers to the ark by its
    absolute path.

    Returns:
        FbankJobSummary (the caller decides the exit status).
    """
    wav_entries = read_kv(wav_scp)
    speed_factors = read_utt2speed(utt2speed) if utt2speed else {}
    summary = FbankJobSummary(total=len(wav_entries))
    ark_path_in_scp = os.path.abspath(os.fspath(out_ark))
    dropped_path = os.fspath(out_scp) + ".dropped"
    scp_lines: List[str] = []
    num_frames_lines: List[str] = []

    with contextlib.ExitStack() as stack:
        # atomic_open renames on exit, in reverse order of entry: ark first, scp last.
        scp_file = stack.enter_context(atomic_open(out_scp))
        num_frames_file = stack.enter_context(atomic_open(out_utt2num_frames))
        dropped_file = stack.enter_context(atomic_open(dropped_path))
        ark_file = stack.enter_context(atomic_open(out_ark, "wb"))
        for utt_id, source in progress(wav_entries.items(), total=len(wav_entries), desc="fbank", unit="utt"):
            try:
                waveform, info = frontend.read_audio(source, resample=resample, channel=channel)
                factor = speed_factors.get(utt_id, 1.0)
                if factor != 1.0:
                    waveform = speed_perturb(waveform, frontend.sample_rate, factor)
                feats = frontend.fbank(waveform)
            except (AudioError, WaveformTooShortError, WaveformRangeError) as e:
                detail = e.detail if isinstance(e, AudioError) else str(e)
                logger.warning("utt %s (%s): %s: %s, dropped", utt_id, source, e.reason.replace("_", " "), detail)
                summary.dropped[utt_id] = (e.reason, f"{source}: {detail}")
                if max_failures is not None and len(summary.dropped) > max_failures:
                    raise TooManyFailuresError(
                        f"utt {utt_id} ({source}): {e.reason.replace('_', ' ')}: {detail}; that is "
                        f"{len(summary.dropped)} bad utterance(s), more than max_failures={max_failures}: stopping, "
                        "nothing written") from None
                continue
            if info.resampled:
                summary.resampled += 1
            # The scp offset points just past "<utt_id> ", where the binary matrix starts.
            offset = ark_file.tell() + len((utt_id + " ").encode("utf-8"))
            kaldiio.save_ark(ark_file, {utt_id: feats.numpy().astype(np.float32, copy=False)})
            scp_lines.append(f"{utt_id} {ark_path_in_scp}:{offset}\n")
            num_frames_lines.append(f"{utt_id} {feats.shape[0]}\n")
            summary.written += 1
        scp_file.writelines(scp_lines)
        num_frames_file.writelines(num_frames_lines)
        for utt_id, (reason, detail) in summary.dropped.items():
            dropped_file.write(f"{utt_id} {reason} {detail}\n")
    return summary
