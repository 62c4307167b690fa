"""FSMN-VAD over a whole recording in bounded memory, reading a FunASR VAD model dir unchanged.

A FunASR VAD model dir (e.g. the released ``speech_fsmn_vad_zh-cn-16k-common-pytorch``) holds::

    config.yaml   model: FsmnVADStreaming, encoder: FSMN + encoder_conf, model_conf (endpoint
                  options, see endpoint.py), frontend_conf (16 kHz, 80 mels, 25/10 ms, LFR 5/1)
    am.mvn        400-dim CMVN (80 x lfr_m), Kaldi nnet1 text
    model.pt      state dict ``encoder.*`` (read with torch.load(weights_only=True), strict)

Offline segmentation runs like FunASR's ``AutoModel(model=DIR).generate(wav)``: the audio is cut
into ``chunk_ms`` (60 s) chunks; per chunk, the toolkit's one feature frontend (WavFrontend: Kaldi
fbank with dither 0, LFR 5/1, CMVN) on the samples not yet framed, with the neighbour frames carried
across chunks (edges repeat the first/last frame), the causal FSMN with its per-layer cache, then the endpoint state machine. Only one chunk of audio
and features is held at a time, so memory does not grow with the recording's length, and the
result equals a single pass (the chunk boundaries matter only for FunASR's end-silence schedule,
which :class:`EndpointDetector` reproduces). Output: ``[[start_ms, end_ms], ...]``.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Iterable, List, Optional

import numpy as np
import torch
import yaml
from torch import nn

from funasr_lite.frontend.audio import resample_waveform
from funasr_lite.frontend.wav_frontend import WavFrontend
from funasr_lite.models.load import load_model_weights
from funasr_lite.models.vad.endpoint import EndpointDetector, VadOptions
from funasr_lite.models.vad.fsmn import FSMN

logger = logging.getLogger(__name__)

DEFAULT_CHUNK_MS = 60000  # FunASR's offline chunk_size
MIN_CHUNK_MS = 15000  # below this FunASR switches generate() to streaming output


def released_vad_model_dir() -> str:
    """Where tools/setup.sh puts FunASR's released FSMN-VAD: ``<sys.prefix>/share/funasr_lite/fsmn-vad``."""
    return os.path.join(sys.prefix, "share", "funasr_lite", "fsmn-vad")


class VadModelDirError(ValueError):
    """A VAD model dir that cannot be used; the message names the file and the problem."""


class _ChunkFeatures:
    """The model's :class:`WavFrontend` (fbank -> LFR -> CMVN) applied chunk by chunk, equal to one
    pass over the whole signal.

    Fbank frame t covers samples [t*shift, t*shift + window) (snip_edges), so a chunk is framed
    together with the samples left over from the previous one. LFR frame c stacks fbank frames
    c - left .. c + right (left = (m-1)//2, right = m-1-left; clamped only at the recording's
    edges): the frontend stacks the new frames together with the ``left + right`` frames kept from
    before, and a centre is emitted once its right neighbours exist (or at the end).
    """

    def __init__(self, frontend: WavFrontend):
        if frontend.lfr_n != 1:
            raise ValueError(f"chunked VAD features need lfr_n 1, got {frontend.lfr_n}")
        self.frontend = frontend
        self.window = int(frontend.sample_rate * float(frontend.conf["frame_length"]) / 1000)
        self.hop = int(frontend.sample_rate * float(frontend.conf["frame_shift"]) / 1000)
        self.left = (frontend.lfr_m - 1) // 2
        self.right = frontend.lfr_m - 1 - self.left
        self.leftover = np.zeros(0, dtype=np.float32)  # samples from the next frame's start on
        self.frames: Optional[torch.Tensor] = None  # fbank frames from the first pending centre - left
        self.decibel = np.zeros(0)  # energies of the pending centres

    def accept(self, samples: np.ndarray, is_final: bool):
        """samples (N,) float32 -> (features (T, n_mels * lfr_m), decibel (T,)) of the centres now
        complete, or (None, None)."""
        samples = np.concatenate([self.leftover, np.asarray(samples, dtype=np.float32)])
        num_frames = 0 if len(samples) < self.window else 1 + (len(samples) - self.window) // self.hop
        self.leftover = samples[num_frames * self.hop :]
        if num_frames:
            framed = samples[: (num_frames - 1) * self.hop + self.window]
            fbank = self.frontend.fbank(framed)
            starts = np.arange(num_frames)[:, None] * self.hop + np.arange(self.window)[None, :]
            frames = framed[starts]  # (T, window) float32, framed as FunASR frames the energy
            decibel = 10 * np.log10(np.sum(np.square(frames), axis=1) + 0.000001)
            if self.frames is None:  # the recording's first frame, repeated as left context
                self.frames = fbank[:1].repeat(self.left, 1)
            self.frames = torch.cat([self.frames, fbank])
            self.decibel = np.concatenate([self.decibel, decibel.astype(np.float64)])
        if self.frames is None:  # no frame yet (or ever: audio shorter than one window)
            return None, None
        end = self.frames.shape[0] if is_final else self.frames.shape[0] - self.right
        if end <= self.left:  # the first pending centre still lacks its right neighbours
            return None, None
        # stacked rows left..end-1 never reach the clamped start; the end is clamped only when final
        features = self.frontend.lfr_cmvn(self.frames)[self.left : end]
        decibel = self.decibel[: end - self.left]
        self.frames = self.frames[end - self.left :]
        self.decibel = self.decibel[end - self.left :]
        return features, decibel


class FsmnVad(nn.Module):
    """FunASR's FSMN-VAD: ``FsmnVad.from_model_dir(DIR).segment(waveform)`` -> ``[[start_ms, end_ms], ...]``."""

    def __init__(self, encoder_conf: dict, options: VadOptions, frontend: WavFrontend):
        super().__init__()
        self.encoder = FSMN(**encoder_conf)
        self.options = options
        self.frontend = frontend
        self.sample_rate = frontend.sample_rate
        self.eval()

    @classmethod
    def from_model_dir(cls, model_dir) -> "FsmnVad":
        """Read ``config.yaml``, ``am.mvn`` and ``model.pt`` of a FunASR VAD model dir."""
        model_dir = os.fspath(model_dir)
        config_path = os.path.join(model_dir, "config.yaml")
        if not os.path.isfile(config_path):
            raise VadModelDirError(f"{model_dir}: no config.yaml (not a FunASR VAD model dir)")
        with open(config_path, encoding="utf-8") as f:
            try:
                config = yaml.safe_load(f) or {}
            except yaml.YAMLError as e:
                raise VadModelDirError(f"{config_path}: not valid YAML: {e}") from None
        for key, expected in (("model", "FsmnVADStreaming"), ("encoder", "FSMN")):
            if config.get(key) != expected:
                raise VadModelDirError(f"{config_path}: {key} is {config.get(key)!r}, this VAD reads {expected!r}")
        # the one feature frontend: checks frontend_conf and that am.mvn has n_mels x lfr_m dims
        frontend = WavFrontend(config.get("frontend_conf"), os.path.join(model_dir, "am.mvn"), source=config_path)
        if frontend.lfr_n != 1:
            raise VadModelDirError(f"{config_path}: frontend_conf.lfr_n must be 1 (one score per 10 ms frame)")
        options = VadOptions.from_model_conf(config.get("model_conf"), f"{config_path}: model_conf")
        encoder_conf = dict(config.get("encoder_conf") or {})
        if encoder_conf.get("input_dim") != frontend.output_size:
            raise VadModelDirError(f"{config_path}: encoder_conf.input_dim {encoder_conf.get('input_dim')} != "
                                   f"n_mels x lfr_m = {frontend.output_size}")
        try:
            model = cls(encoder_conf, options, frontend)
        except TypeError as e:
            raise VadModelDirError(f"{config_path}: encoder_conf does not fit FSMN: {e}") from None
        load_model_weights(model, os.path.join(model_dir, "model.pt"), strict=True)
        return model.eval()

    @property
    def chunk_samples(self) -> int:
        return self.sample_rate * DEFAULT_CHUNK_MS // 1000

    @torch.no_grad()
    def segment_blocks(
        self, blocks: Iterable[np.ndarray], max_end_silence_time: Optional[int] = None, chunk_ms: int = DEFAULT_CHUNK_MS
    ) -> List[List[int]]:
        """Segments of a recording given as consecutive blocks of (N,) float32 samples at ``sample_rate``.

        max_end_silence_time: a fixed end silence (ms) instead of FunASR's default schedule.
        chunk_ms: the scoring chunk (FunASR's ``chunk_size``; the schedule steps per chunk).
        """
        if chunk_ms < MIN_CHUNK_MS:
            raise ValueError(f"chunk_ms={chunk_ms}: offline VAD needs chunks of at least {MIN_CHUNK_MS} ms")
        options = self.options
        if max_end_silence_time is not None:
            options = VadOptions(**{**vars(self.options), "max_end_silence_time": int(max_end_silence_time)})
        detector = EndpointDetector(options, dynamic_silence=max_end_silence_time is None, chunk_ms=chunk_ms)
        features = _ChunkFeatures(self.frontend)
        chunk = self.sample_rate * chunk_ms // 1000
        cache = None
        sil_ids = list(options.sil_pdf_ids)

        def run(samples: np.ndarray, is_final: bool) -> None:
            nonlocal cache
            detector.start_chunk()
            feats, decibel = features.accept(samples, is_final)
            if feats is not None:
                posteriors, cache = self.encoder(feats.unsqueeze(0), cache)
                silence_prob = posteriors[0, :, sil_ids].double().sum(dim=-1).numpy()
                detector.accept(silence_prob, decibel, is_final)
            if not is_final:
                detector.end_chunk()

        pending = np.zeros(0, dtype=np.float32)
        for block in blocks:
            pending = np.concatenate([pending, np.asarray(block, dtype=np.float32).reshape(-1)])
            while pending.size >= chunk:  # every full chunk is non-final (FunASR: n = N // chunk + 1)
                run(pending[:chunk], is_final=False)
                pending = pending[chunk:]
        run(pending, is_final=True)
        return [list(segment) for segment in detector.segments]

    def segment(self, waveform, max_end_silence_time: Optional[int] = None,
                sample_rate: Optional[int] = None) -> List[List[int]]:
        """Segments of one (N,) float32 waveform in [-1, 1]; audio at another ``sample_rate`` is
        resampled first (torchaudio's sinc resampler, as FunASR)."""
        waveform = np.asarray(waveform, dtype=np.float32).reshape(-1)
        if sample_rate is not None and int(sample_rate) != self.sample_rate and waveform.size:
            waveform = resample_waveform(waveform, int(sample_rate), self.sample_rate)
        blocks = (waveform[i : i + self.chunk_samples] for i in range(0, waveform.size, self.chunk_samples))
        return self.segment_blocks(blocks, max_end_silence_time)
