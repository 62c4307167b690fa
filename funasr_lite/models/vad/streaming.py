"""FSMN-VAD on audio that arrives in pieces, with FunASR's streaming output (the 2-pass front end).

``stream = VadStream(vad, chunk_ms=60)``; ``stream.feed(samples, is_final=False)`` returns the
events of this call, as FunASR's ``generate(input=piece, cache=cache, is_final=..., chunk_size=60)``
returns them: ``[start_ms, -1]`` when a segment starts, ``[-1, end_ms]`` when the open one ends,
``[start_ms, end_ms]`` for a segment that starts and ends in one call; times in ms from the start
of the stream.

The work is the offline VAD's (``model.py``: features carried across pieces, the causal FSMN with
its cache, :class:`EndpointDetector`), run on steps of ``chunk_ms`` of audio counted from the start
of the stream whatever the pieces (FunASR's ``n = len // chunk + is_final`` grid). FunASR 1.4.16's
end-silence schedule runs in streaming too: before each step the time spent in speech grows by
``chunk_ms`` and picks the end silence (2 s under 10 s of speech, ...), and any event resets it;
``max_end_silence_time`` fixes the end silence instead.
"""

from __future__ import annotations

from typing import List, Optional

import numpy as np
import torch

from funasr_lite.models.vad.endpoint import EndpointDetector, VadOptions
from funasr_lite.models.vad.model import FsmnVad, _ChunkFeatures


class VadStream:
    """One audio stream through a :class:`FsmnVad` (module docstring). Not thread-safe; any number
    of streams may share the model."""

    def __init__(self, vad: FsmnVad, chunk_ms: int = 60, max_end_silence_time: Optional[int] = None):
        if chunk_ms <= 0:
            raise ValueError(f"chunk_ms must be > 0, got {chunk_ms}")
        self.vad = vad
        self.chunk_ms = int(chunk_ms)
        self.chunk_samples = vad.sample_rate * self.chunk_ms // 1000
        self.max_end_silence_time = max_end_silence_time
        self.reset()

    def reset(self) -> None:
        options = self.vad.options
        if self.max_end_silence_time is not None:
            options = VadOptions(**{**vars(options), "max_end_silence_time": int(self.max_end_silence_time)})
        self.detector = EndpointDetector(options, dynamic_silence=self.max_end_silence_time is None,
                                         chunk_ms=self.chunk_ms)
        self.features = _ChunkFeatures(self.vad.frontend)
        self.cache = None
        self._pending = np.zeros(0, dtype=np.float32)
        self._reported_start = 0  # segments whose start has been reported
        self._reported_end = 0  # segments whose end has been reported
        self.finished = False

    @torch.no_grad()
    def _step(self, samples: np.ndarray, is_final: bool) -> List[List[int]]:
        detector = self.detector
        detector.start_chunk()
        feats, decibel = self.features.accept(samples, is_final)
        if feats is not None:
            posteriors, self.cache = self.vad.encoder(feats.unsqueeze(0), self.cache)
            silence = posteriors[0, :, list(detector.options.sil_pdf_ids)].double().sum(dim=-1).numpy()
            detector.accept(silence, decibel, is_final)
        events = self._events()
        if events and detector.dynamic_silence:  # FunASR's streaming schedule restarts at any event
            detector.restart_schedule()
        return events

    def _events(self) -> List[List[int]]:
        events = []
        segments = self.detector.segments
        closed = len(segments) - (1 if self.detector._open else 0)
        while self._reported_start < len(segments):
            index = self._reported_start
            start, end = segments[index]
            if index < closed:
                events.append([start, end])
                self._reported_end = index + 1
            else:
                events.append([start, -1])
            self._reported_start += 1
        while self._reported_end < closed:
            events.append([-1, segments[self._reported_end][1]])
            self._reported_end += 1
        return events

    def feed(self, samples, is_final: bool = False) -> List[List[int]]:
        """(N,) float32 samples in [-1, 1] at the model's rate -> this call's events."""
        if self.finished:
            raise RuntimeError("the VAD stream is finished: reset() it to start another")
        audio = np.concatenate([self._pending, np.asarray(samples, dtype=np.float32).reshape(-1)])
        steps = audio.size // self.chunk_samples + int(is_final)
        events: List[List[int]] = []
        for index in range(steps):
            piece = audio[index * self.chunk_samples:(index + 1) * self.chunk_samples]
            events += self._step(piece, is_final and index == steps - 1)
        self._pending = np.zeros(0, dtype=np.float32) if is_final else audio[steps * self.chunk_samples:].copy()
        self.finished = is_final
        return events


__all__ = ["VadStream"]
