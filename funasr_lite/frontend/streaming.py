"""The model-input features of audio that arrives in pieces: the same frames as
:class:`funasr_lite.frontend.wav_frontend.WavFrontend` gives for the whole recording.

``StreamingFrontend(frontend)``: ``accept(samples)`` takes any number of samples (1 to minutes)
and returns the LFR + CMVN frames that are complete; ``finish()`` returns the rest (the last LFR
frames repeat the last fbank frame, as the offline LFR does). An fbank frame needs its whole
window (25 ms), an LFR frame the fbank frames up to its centre + (lfr_m - 1) // 2, so frames come
out a little behind the audio: at most one window plus (lfr_m - 1) // 2 fbank frames. Only what
later frames still need is kept: memory does not grow with the length of the stream.

Kaldi fbank works on each window alone (dither 0: no randomness), so the frames equal the offline
ones up to float rounding of the batched FFT and mel product (tested against WavFrontend).
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np
import torch
import torchaudio

from funasr_lite.frontend.cmvn import apply_cmvn
from funasr_lite.frontend.fbank import num_fbank_frames
from funasr_lite.frontend.lfr import lfr_length
from funasr_lite.frontend.wav_frontend import WavFrontend


class StreamingFrontend:
    """Incremental ``WavFrontend`` (see the module docstring). Not thread-safe: one per stream."""

    def __init__(self, frontend: WavFrontend):
        self.frontend = frontend
        conf = frontend.conf
        rate = frontend.sample_rate
        self.window = int(rate * float(conf["frame_length"]) * 0.001)
        self.shift = int(rate * float(conf["frame_shift"]) * 0.001)
        self.reset()

    def reset(self) -> None:
        """Forget the stream: the next sample is the first of a new one."""
        self._samples = np.zeros(0, dtype=np.float32)  # from sample self._fbank_frames * shift on
        self._fbank = torch.zeros(0, self.frontend.n_mels)  # fbank frames from index self._fbank_base on
        self._fbank_base = 0
        self._fbank_frames = 0  # fbank frames computed so far
        self._emitted = 0  # LFR frames returned so far
        self.samples_seen = 0
        self.finished = False

    @property
    def frames_emitted(self) -> int:
        return self._emitted

    def accept(self, samples) -> torch.Tensor:
        """(N,) float samples in [-1, 1] at the frontend's rate -> (k, D) newly complete frames."""
        if self.finished:
            raise RuntimeError("the stream is finished: reset() it to start another")
        samples = np.asarray(samples, dtype=np.float32).reshape(-1)
        self.samples_seen += samples.size
        self._samples = np.concatenate([self._samples, samples])
        total = num_fbank_frames(self.samples_seen, self.frontend.sample_rate, self.frontend.conf["frame_length"],
                                 self.frontend.conf["frame_shift"])
        new = total - self._fbank_frames
        if new > 0:
            used = (new - 1) * self.shift + self.window
            frames = self.frontend.fbank(self._samples[:used])
            self._fbank = torch.cat([self._fbank, frames])
            self._fbank_frames = total
            self._samples = self._samples[new * self.shift:]
        m, n = self.frontend.lfr_m, self.frontend.lfr_n
        ready = 0
        while n * (self._emitted + ready) + (m - 1) - (m - 1) // 2 < self._fbank_frames:
            ready += 1
        return self._emit(ready, last_frame=None)

    def finish(self) -> torch.Tensor:
        """The frames left when the stream ends (the offline edge rule at the end)."""
        if self.finished:
            return torch.zeros(0, self.frontend.output_size)
        self.finished = True
        remaining = lfr_length(self._fbank_frames, self.frontend.lfr_n) - self._emitted if self._fbank_frames else 0
        return self._emit(max(remaining, 0), last_frame=self._fbank_frames - 1)

    def _emit(self, count: int, last_frame: Optional[int]) -> torch.Tensor:
        if count <= 0:
            return torch.zeros(0, self.frontend.output_size)
        m, n = self.frontend.lfr_m, self.frontend.lfr_n
        centres = (torch.arange(count) + self._emitted) * n
        index = centres[:, None] + (torch.arange(m) - (m - 1) // 2)[None, :]
        index = index.clamp(min=0)
        if last_frame is not None:
            index = index.clamp(max=last_frame)
        stacked = self._fbank[index - self._fbank_base].reshape(count, -1)
        self._emitted += count
        keep_from = max(n * self._emitted - (m - 1) // 2, 0)  # the first fbank frame later LFR frames use
        if keep_from > self._fbank_base:
            self._fbank = self._fbank[keep_from - self._fbank_base:]
            self._fbank_base = keep_from
        if self.frontend.cmvn_shift is None:
            return stacked
        return apply_cmvn(stacked, self.frontend.cmvn_shift, self.frontend.cmvn_scale).float()


class StreamResampler:
    """The toolkit's resampler (``frontend.audio.resample_waveform``: torchaudio's windowed sinc,
    its defaults) on audio that arrives in pieces: ``accept(samples)`` returns the output samples
    that no later input can change, ``finish()`` the rest; together they equal resampling the
    whole signal at once (up to float rounding). Output block b (``new`` samples after dividing
    both rates by their gcd) reads input [b*orig - width, (b+1)*orig + width), so each call
    resamples the unfinished input plus a block-aligned history of at least ``width`` samples."""

    LOWPASS_FILTER_WIDTH = 6  # torchaudio's defaults
    ROLLOFF = 0.99

    def __init__(self, from_rate: int, to_rate: int):
        self.from_rate, self.to_rate = int(from_rate), int(to_rate)
        divisor = math.gcd(self.from_rate, self.to_rate)
        self.orig, self.new = self.from_rate // divisor, self.to_rate // divisor
        width = math.ceil(self.LOWPASS_FILTER_WIDTH * self.orig / (min(self.orig, self.new) * self.ROLLOFF))
        self.history_blocks = math.ceil(width / self.orig)
        self.width = width
        self.reset()

    def reset(self) -> None:
        self._buffer = np.zeros(0, dtype=np.float32)  # input from block self._first_block - history on
        self._buffer_block = 0  # the block where _buffer starts
        self._next_block = 0  # the first block not yet emitted
        self._seen = 0
        self._emitted = 0

    def _resample(self) -> np.ndarray:
        return torchaudio.functional.resample(torch.from_numpy(self._buffer), self.orig, self.new).numpy()

    def accept(self, samples) -> np.ndarray:
        samples = np.asarray(samples, dtype=np.float32).reshape(-1)
        self._seen += samples.size
        if self.orig == self.new:
            return samples
        self._buffer = np.concatenate([self._buffer, samples])
        end = self._buffer_block * self.orig + self._buffer.size  # absolute input samples available
        complete = max((end - self.width) // self.orig, 0)  # blocks whose whole input is here
        if complete <= self._next_block:
            return np.zeros(0, dtype=np.float32)
        out = self._resample()
        start = (self._next_block - self._buffer_block) * self.new
        stop = (complete - self._buffer_block) * self.new
        emitted = out[start:stop]
        self._next_block = complete
        keep_block = max(complete - self.history_blocks, self._buffer_block)
        self._buffer = self._buffer[(keep_block - self._buffer_block) * self.orig:]
        self._buffer_block = keep_block
        self._emitted += emitted.size
        return emitted

    def finish(self) -> np.ndarray:
        """The rest of the output (the whole signal's length: ceil(N * new / orig))."""
        if self.orig == self.new:
            return np.zeros(0, dtype=np.float32)
        total = math.ceil(self._seen * self.new / self.orig)
        if total <= self._emitted or self._buffer.size == 0:
            return np.zeros(0, dtype=np.float32)
        out = self._resample()
        start = (self._next_block - self._buffer_block) * self.new
        rest = out[start:start + total - self._emitted]
        self._emitted += rest.size
        return rest


__all__ = ["StreamingFrontend", "StreamResampler"]
