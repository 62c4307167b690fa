"""2-pass recognition (FunASR's runtime "2pass" mode): streaming partials while someone speaks,
then, at each end of speech the streaming VAD finds, the segment re-decoded by an offline model
(plain, BiCif or SeACo dir; with punctuation if given), which replaces the partials.

``session = TwoPassSession(online, offline, vad, punctuator=None)``; ``session.feed(samples)``
returns this call's events, in order:

* ``{"mode": "2pass-online", "text": ...}``: the streaming model's new text (FunASR's
  ``2pass-online`` messages);
* ``{"mode": "2pass-offline", "text", "token", "timestamp", "start_ms", "end_ms"}``: a finished
  segment from the offline model, times in ms from the start of the stream (FunASR's
  ``2pass-offline``).

``finish()`` ends the stream: a segment still open is closed at the end of the audio and decoded.

As FunASR's server: the streaming model hears all the audio, its state is reset at every segment
end (its own flush is never used: the offline result replaces it); the VAD runs on 60 ms steps
(``vad_chunk_ms``) with FunASR's streaming end-silence schedule unless ``max_end_silence_time`` is
set. Unlike FunASR's server, which re-decodes the 60 ms messages it kept since the start was
detected, the offline model decodes exactly the VAD segment's samples. Audio is held only from the
open segment's start (or the last ``keep_ms`` before it), so memory does not grow with the stream.
"""

from __future__ import annotations

import time
from typing import Any, Dict, List, Optional

import numpy as np

from funasr_lite.inference.streaming import StreamingSession
from funasr_lite.models.vad.streaming import VadStream

KEEP_MS = 1000  # audio kept before any segment start (a start is reported after it happened)


class TwoPassSession:
    """One 2-pass stream (module docstring). ``online``: a StreamingSession factory or session of a
    streaming model; ``offline``: a SpeechRecognizer; ``vad``: an FsmnVad; ``punctuator``: a
    Punctuator or None."""

    def __init__(self, online: StreamingSession, offline, vad, punctuator=None, vad_chunk_ms: int = 60,
                 max_end_silence_time: Optional[int] = None, keep_ms: int = KEEP_MS):
        if online.sample_rate != offline.sample_rate or offline.sample_rate != vad.sample_rate:
            raise ValueError(f"sample rates differ: streaming {online.sample_rate}, offline {offline.sample_rate}, "
                             f"VAD {vad.sample_rate}")
        self.online, self.offline, self.punctuator = online, offline, punctuator
        self.sample_rate = online.sample_rate
        self.vad = VadStream(vad, vad_chunk_ms, max_end_silence_time)
        self.keep = self.sample_rate * keep_ms // 1000
        self.reset()

    def reset(self) -> None:
        self.online.reset()
        self.vad.reset()
        self._audio = np.zeros(0, dtype=np.float32)
        self._audio_start = 0  # absolute sample index of self._audio[0]
        self._samples = 0
        self._open_start: Optional[int] = None  # ms
        self.segments: List[Dict[str, Any]] = []
        self.finished = False

    def _ms_to_sample(self, ms: int) -> int:
        return int(ms) * self.sample_rate // 1000

    def _trim(self) -> None:
        """Drop audio no segment can still need."""
        keep_from = self._samples - self.keep if self._open_start is None else self._ms_to_sample(self._open_start)
        drop = max(0, min(keep_from, self._samples) - self._audio_start)
        if drop:
            self._audio = self._audio[drop:]
            self._audio_start += drop

    def _offline(self, start_ms: int, end_ms: int) -> Dict[str, Any]:
        from funasr_lite.inference.longform import punctuated_text

        started = time.perf_counter()
        a = max(self._ms_to_sample(start_ms) - self._audio_start, 0)
        b = max(self._ms_to_sample(end_ms) - self._audio_start, a)
        segment = self._audio[a:b]
        result = self.offline(segment, audio_fs=self.sample_rate)[0] if segment.size else {
            "text": "", "token": [], "timestamp": []}
        tokens = list(result.get("token", []))
        text = result["text"]
        if self.punctuator is not None and tokens:
            text = punctuated_text(tokens, self.punctuator.punctuate_tokens(tokens))
        event = {"mode": "2pass-offline", "text": text, "token": tokens,
                 "timestamp": [[s + start_ms, e + start_ms] for s, e in result.get("timestamp", [])],
                 "start_ms": int(start_ms), "end_ms": int(end_ms),
                 "compute_ms": round(1000.0 * (time.perf_counter() - started), 3)}
        self.segments.append(event)
        return event

    def feed(self, samples, is_final: bool = False) -> List[Dict[str, Any]]:
        """Samples (float in [-1, 1], the models' rate) -> this call's events (module docstring)."""
        if self.finished:
            raise RuntimeError("the 2-pass stream is finished: reset() it to start another")
        samples = np.asarray(samples, dtype=np.float32).reshape(-1)
        self._audio = np.concatenate([self._audio, samples])
        self._samples += samples.size
        events: List[Dict[str, Any]] = []
        text = self.online.feed(samples)
        if text:
            events.append({"mode": "2pass-online", "text": text})
        for start, end in self.vad.feed(samples, is_final=is_final):
            if start >= 0:
                self._open_start = start
            if end >= 0:
                events.append(self._offline(self._open_start if self._open_start is not None else 0, end))
                self._open_start = None
                self.online.reset()
        if is_final:
            if self._open_start is not None:  # speech until the end of the audio
                events.append(self._offline(self._open_start, 1000 * self._samples // self.sample_rate))
                self._open_start = None
            self.finished = True
        self._trim()
        return events

    def finish(self, samples=None) -> List[Dict[str, Any]]:
        """The final call -> its events; every segment's offline result is in :attr:`segments`."""
        return self.feed(np.zeros(0, dtype=np.float32) if samples is None else samples, is_final=True)


__all__ = ["TwoPassSession"]
