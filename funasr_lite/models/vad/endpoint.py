"""Speech segments from FSMN-VAD frame posteriors: FunASR's ``FsmnVADStreaming`` post-processing.

Every 10 ms frame t goes through three steps (times in ms, frames of ``frame_in_ms``):

1. Frame state (:meth:`EndpointDetector._frame_is_speech`): with ``s`` the summed posterior of
   the silence pdfs (``sil_pdf_ids``), the frame is speech when
   ``1 - s >= s ** speech_2_noise_ratio + speech_noise_thres`` and its energy passes
   ``decibel_thres`` and ``snr_thres`` (energy ``10 log10(sum x^2 + 1e-6)`` over the frame's
   25 ms of float samples; the noise level is a running average over non-speech frames).
2. Window detector (:class:`WindowDetector`): the number of speech frames among the last
   ``window_size_ms`` turns silence into speech when it reaches ``sil_to_speech_time_thres`` and
   speech into silence when it falls to ``speech_to_sil_time_thres``.
3. Segment state machine (:class:`EndpointDetector`): a segment starts at the silence->speech
   change, moved back by the window plus ``lookback_time_start_point`` (never before the end of
   the previous segment); it ends after ``max_end_silence_time`` of continuous silence, the end
   kept ``lookahead_time_end_point`` after the last speech frame; a segment longer than
   ``max_single_segment_time`` is cut; the last frame of the input closes an open segment.
   A segment is ``[start_ms, end_ms]`` with ``end_ms`` one frame past its last frame.

FunASR's offline ``generate`` additionally scores the audio in 60 s chunks and, by default
(when ``max_end_silence_time`` is not passed at inference), replaces the configured end silence and
speech/noise threshold at each chunk start by a schedule over the speech accumulated without a
segment end (:data:`DEFAULT_SILENCE_SCHEDULE`): 2000 ms while under 10 s ... 100 ms past 60 s, and
threshold 0.5. :meth:`EndpointDetector.start_chunk` and :meth:`EndpointDetector.end_chunk`
reproduce that bookkeeping; the segments match FunASR's output (tested against ``funasr``).
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

logger = logging.getLogger(__name__)

# (speech accumulated since the last segment end, ms; end silence then, ms): FunASR 1.4.16's
# non-streaming schedule, applied at chunk starts.
DEFAULT_SILENCE_SCHEDULE: Tuple[Tuple[float, int], ...] = (
    (10000, 2000),
    (20000, 1000),
    (30000, 800),
    (40000, 600),
    (50000, 400),
    (60000, 200),
    (float("inf"), 100),
)
SCHEDULE_SPEECH_NOISE_THRES = 0.5  # FunASR sets it with every schedule step

SINGLE_UTTERANCE_MODE = 0
MULTIPLE_UTTERANCE_MODE = 1

# model_conf keys FunASR accepts but whose features neither FunASR's offline path nor this port use.
_UNUSED_KEYS = {
    "snr_mode", "do_start_point_detection", "do_end_point_detection", "nn_eval_block_size",
    "dcd_block_size", "speech_noise_thresh_low", "speech_noise_thresh_high", "output_frame_probs",
}


@dataclass
class VadOptions:
    """``model_conf`` of a FunASR ``FsmnVADStreaming`` config (FunASR's names and defaults)."""

    sample_rate: int = 16000
    detect_mode: int = MULTIPLE_UTTERANCE_MODE
    max_end_silence_time: int = 800
    max_start_silence_time: int = 3000
    window_size_ms: int = 200
    sil_to_speech_time_thres: int = 150
    speech_to_sil_time_thres: int = 150
    speech_2_noise_ratio: float = 1.0
    do_extend: int = 1
    lookback_time_start_point: int = 200
    lookahead_time_end_point: int = 100
    max_single_segment_time: int = 60000
    snr_thres: float = -100.0
    noise_frame_num_used_for_snr: int = 100
    decibel_thres: float = -100.0
    speech_noise_thres: float = 0.6
    fe_prior_thres: float = 1e-4
    silence_pdf_num: int = 1
    sil_pdf_ids: List[int] = field(default_factory=lambda: [0])
    frame_in_ms: int = 10
    frame_length_ms: int = 25

    @classmethod
    def from_model_conf(cls, conf: Optional[Dict], source: str = "model_conf") -> "VadOptions":
        """Known keys are taken, FunASR's unused ones ignored, unknown ones named in a warning."""
        conf = dict(conf or {})
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(conf) - names - _UNUSED_KEYS)
        if unknown:
            logger.warning("%s: ignoring keys this VAD does not know: %s", source, ", ".join(unknown))
        options = cls(**{k: v for k, v in conf.items() if k in names})
        options.validate(source)
        return options

    def validate(self, source: str = "model_conf") -> None:
        if self.frame_in_ms <= 0 or self.window_size_ms < self.frame_in_ms:
            raise ValueError(f"{source}: need frame_in_ms > 0 and window_size_ms >= frame_in_ms")
        if not self.sil_pdf_ids or len(self.sil_pdf_ids) != self.silence_pdf_num:
            raise ValueError(
                f"{source}: sil_pdf_ids {self.sil_pdf_ids} must list silence_pdf_num={self.silence_pdf_num} ids"
            )
        if self.detect_mode not in (SINGLE_UTTERANCE_MODE, MULTIPLE_UTTERANCE_MODE):
            raise ValueError(f"{source}: detect_mode must be 0 (single) or 1 (multiple), got {self.detect_mode}")


class WindowDetector:
    """Speech/silence hysteresis over a sliding window of frame states."""

    def __init__(self, window_frames: int, sil_to_speech_frames: int, speech_to_sil_frames: int):
        self.window_frames = window_frames
        self.sil_to_speech_frames = sil_to_speech_frames
        self.speech_to_sil_frames = speech_to_sil_frames
        self.reset()

    def reset(self) -> None:
        self.states = [0] * self.window_frames
        self.position = 0
        self.speech_in_window = 0
        self.in_speech = False

    def push(self, is_speech: bool) -> Tuple[bool, bool]:
        """Add one frame; returns (speech before, speech after) of the smoothed state."""
        value = 1 if is_speech else 0
        self.speech_in_window += value - self.states[self.position]
        self.states[self.position] = value
        self.position = (self.position + 1) % self.window_frames
        before = self.in_speech
        if not before and self.speech_in_window >= self.sil_to_speech_frames:
            self.in_speech = True
        elif before and self.speech_in_window <= self.speech_to_sil_frames:
            self.in_speech = False
        return before, self.in_speech


_WAITING, _IN_SPEECH, _ENDED = "waiting", "in_speech", "ended"


class EndpointDetector:
    """Turns per-frame silence posteriors and energies into ``[start_ms, end_ms]`` segments.

    Feed frames in order with :meth:`accept` (one call per chunk, the last with ``is_final``);
    read :attr:`segments`. ``dynamic_silence`` enables FunASR's offline schedule (module docstring).
    """

    def __init__(
        self,
        options: VadOptions,
        dynamic_silence: bool = True,
        silence_schedule: Sequence[Tuple[float, int]] = DEFAULT_SILENCE_SCHEDULE,
        chunk_ms: int = 60000,
    ):
        self.options = options
        self.dynamic_silence = dynamic_silence
        self.silence_schedule = tuple(silence_schedule)
        self.chunk_ms = chunk_ms
        frame = options.frame_in_ms
        self.window = WindowDetector(
            options.window_size_ms // frame,
            options.sil_to_speech_time_thres // frame,
            options.speech_to_sil_time_thres // frame,
        )
        # Frames between the true start and the frame where the window confirms speech.
        self.start_latency = options.window_size_ms // frame
        if options.do_extend:
            self.start_latency += options.lookback_time_start_point // frame
        self.end_silence_ms = options.max_end_silence_time - options.speech_to_sil_time_thres
        self.speech_noise_thres = options.speech_noise_thres
        self.noise_decibel = -100.0
        self.frames_seen = 0
        self.consumed = 0  # first frame not yet given to a segment or to the silence before one
        self.ends_detected = 0
        self.segments: List[List[int]] = []  # [start_ms, end_ms]
        self._open = False  # the last segment has no end point yet
        self._accumulated_ms = 0.0
        self._accumulating = False
        self._segments_at_chunk_start = 0
        self._reset_detection()

    # ------------------------------------------------------------ chunk bookkeeping (offline schedule)

    def start_chunk(self) -> None:
        """Before each chunk: FunASR's dynamic end-silence schedule."""
        self._segments_at_chunk_start = self._closed_segments()
        if not self.dynamic_silence:
            return
        if self.mode == _IN_SPEECH or self._accumulating:
            self._accumulated_ms += self.chunk_ms
            self._accumulating = True
        for limit_ms, silence_ms in self.silence_schedule:
            if self._accumulated_ms <= limit_ms:
                self.end_silence_ms = max(silence_ms - self.options.speech_to_sil_time_thres, 0)
                self.speech_noise_thres = SCHEDULE_SPEECH_NOISE_THRES
                break

    def end_chunk(self) -> None:
        """After each non-final chunk: a segment ended in it restarts the schedule."""
        if self._closed_segments() > self._segments_at_chunk_start:
            self._accumulated_ms = 0.0
            self._accumulating = False

    def restart_schedule(self) -> None:
        """Start the end-silence schedule over (FunASR's streaming VAD does so at every output event)."""
        self._accumulated_ms = 0.0
        self._accumulating = False

    def _closed_segments(self) -> int:
        return len(self.segments) - (1 if self._open else 0)

    # ------------------------------------------------------------ frames

    def accept(self, silence_prob: np.ndarray, decibel: np.ndarray, is_final: bool) -> None:
        """Process the next frames: silence_prob (T,) summed silence posteriors, decibel (T,)."""
        silence_prob = np.asarray(silence_prob, dtype=np.float64)
        decibel = np.asarray(decibel, dtype=np.float64)
        if silence_prob.shape != decibel.shape:
            raise ValueError(f"{silence_prob.shape} posteriors but {decibel.shape} energies")
        o = self.options
        with np.errstate(divide="ignore", invalid="ignore"):
            confident = (1.0 - silence_prob) >= silence_prob ** o.speech_2_noise_ratio + self.speech_noise_thres
        speech_keeps_prior = abs(1.0) > o.fe_prior_thres  # FunASR's prior check on speech frames
        last = len(decibel) - 1
        for i, (db, is_confident) in enumerate(zip(decibel.tolist(), confident.tolist())):
            frame = self.frames_seen
            self.frames_seen += 1
            if self.mode == _ENDED:  # single-utterance mode after its end point: nothing more
                continue
            is_speech = False
            if db >= o.decibel_thres:
                if is_confident:
                    is_speech = db - self.noise_decibel >= o.snr_thres and speech_keeps_prior
                elif self.noise_decibel < -99.9:
                    self.noise_decibel = db
                else:
                    n = o.noise_frame_num_used_for_snr
                    self.noise_decibel = (db + self.noise_decibel * (n - 1)) / n
            self._detect(frame, is_speech, is_final and i == last)

    def _detect(self, t: int, is_speech: bool, is_final: bool) -> None:
        o = self.options
        frame_ms = o.frame_in_ms
        was_speech, now_speech = self.window.push(is_speech)
        too_long = t - self.start_frame + 1 > o.max_single_segment_time / frame_ms
        if not was_speech and now_speech:  # silence -> speech
            self.silence_run = 0
            if self.mode == _WAITING:
                start = max(self.consumed, t - self.start_latency)
                self._voice_start(start)
                self.mode = _IN_SPEECH
                for u in range(start + 1, t + 1):
                    self._voice_frame(u)
            elif self.mode == _IN_SPEECH:
                for u in range(self.last_speech_frame + 1, t):
                    self._voice_frame(u)
                self._continue_or_end(t, too_long, is_final)
        elif was_speech:  # speech -> speech, speech -> silence
            self.silence_run = 0
            if self.mode == _IN_SPEECH:
                self._continue_or_end(t, too_long, is_final)
        else:  # silence -> silence
            self.silence_run += 1
            if self.mode == _WAITING:
                timed_out = (
                    o.detect_mode == SINGLE_UTTERANCE_MODE
                    and self.silence_run * frame_ms > o.max_start_silence_time
                )
                if timed_out or (is_final and self.ends_detected == 0):
                    self.ends_detected += 1  # FunASR's empty ("fake") start/end pair
                    self.mode = _ENDED
                elif t >= self.start_latency:
                    self.consumed = max(self.consumed, t - self.start_latency)
            elif self.mode == _IN_SPEECH:
                if self.silence_run * frame_ms >= self.end_silence_ms:
                    lookback = int(self.end_silence_ms / frame_ms)
                    if o.do_extend:
                        lookback = max(0, lookback - int(o.lookahead_time_end_point / frame_ms) - 1)
                    self._voice_end(t - lookback)
                elif too_long:
                    self._voice_end(t)
                elif o.do_extend and not is_final:
                    if self.silence_run <= int(o.lookahead_time_end_point / frame_ms):
                        self._voice_frame(t)
                elif is_final:
                    self._voice_end(t)
        if self.mode == _ENDED and o.detect_mode == MULTIPLE_UTTERANCE_MODE:
            self._reset_detection()

    def _continue_or_end(self, t: int, too_long: bool, is_final: bool) -> None:
        if too_long or is_final:
            self._voice_end(t)
        else:
            self._voice_frame(t)

    # ------------------------------------------------------------ segment bookkeeping

    def _reset_detection(self) -> None:
        self.mode = _WAITING
        self.window.reset()
        self.silence_run = 0
        self.last_speech_frame = 0
        self.start_frame = -1

    def _take_frame(self, t: int) -> None:
        """Frame t joins the open segment: its end moves to t + 1 frames."""
        self.consumed = max(self.consumed, t) + 1
        self.segments[-1][1] = (t + 1) * self.options.frame_in_ms

    def _voice_start(self, start: int) -> None:
        self.start_frame = start
        start_ms = start * self.options.frame_in_ms
        self.segments.append([start_ms, start_ms])
        self._open = True
        self._take_frame(start)

    def _voice_frame(self, t: int) -> None:
        self.last_speech_frame = t
        self._take_frame(t)

    def _voice_end(self, end: int) -> None:
        for u in range(self.last_speech_frame + 1, end):
            self._voice_frame(u)
        self._take_frame(end)
        self._open = False
        self.ends_detected += 1
        self.mode = _ENDED
