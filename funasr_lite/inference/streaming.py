"""Streaming recognition with a ParaformerStreaming model dir: audio in pieces, text as it comes.

``session = StreamingSession(loaded)`` (or ``SpeechRecognizer.stream()``):

- ``feed(samples)`` takes any number of samples (1 to minutes) and returns the text of the tokens
  this call completed ("" until a step of audio is complete);
- ``finish(samples=None)`` feeds the last samples as the final call and returns a
  :class:`StreamResult`: the whole text, tokens, scores, per-call partials and timings;
- ``reset()`` starts a new stream; dropping a session frees everything (no state on the model).

Audio at another rate (``audio_fs``) is resampled piece by piece by :class:`StreamResampler`,
which gives exactly the whole recording's resampling (FunASR resamples each call's piece alone).

**Steps.** The model runs on steps of ``chunk_size[1]`` LFR frames of audio (600 ms at
[0, 10, 5]: 9600 samples at 16 kHz) counted from the start of the stream, whatever the callers'
piece sizes, as FunASR's ``generate(..., cache=...)`` does: the pieces only decide which call
returns which tokens. A step's frames are :class:`StreamingFrontend`'s, which equal the offline
frontend's; the final step adds the rest of the audio, LFR-padded as offline.

**The tail** (``tail="funasr"``, the default): a final step shorter than one LFR frame (960
samples at 16 kHz, including an empty one when the audio ends on a step boundary) is FunASR's
*tail chunk*: its samples are dropped and the encoder re-reads its kept look-ahead frames, scaled
a second time (FunASR's in-place scaling), to fire the last token. ``tail="pad"`` (a lite fix)
instead decodes those samples as an ordinary, LFR-padded final step, so nothing is dropped.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import torch

from funasr_lite.data.tokenizer import tokens_to_text
from funasr_lite.decode.timestamps import cif_timestamps
from funasr_lite.frontend.streaming import StreamingFrontend, StreamResampler
from funasr_lite.inference.model_dir import LoadedModel

TAIL_MODES = ("funasr", "pad")


class StreamingError(ValueError):
    """A model that cannot stream, or a bad streaming option."""


@dataclass
class StreamResult:
    """What :meth:`StreamingSession.finish` returns."""

    text: str  # all tokens' text
    tokens: List[str]
    token_ids: List[int]
    scores: List[float]  # each token's log-probability
    timestamp: List[List[int]]  # [[start_ms, end_ms], ...] per token (from the alphas CIF counted)
    last_text: str  # the final call's text (FunASR's return value of the is_final call)
    partials: List[Dict[str, Any]] = field(default_factory=list)  # per call: audio_end_ms, text, compute_ms
    audio_s: float = 0.0
    compute_s: float = 0.0
    finish_s: float = 0.0  # wall time of the final call


class StreamingSession:
    """One stream through a ParaformerStreaming model (see the module docstring). Not thread-safe;
    any number of sessions may share one loaded model."""

    def __init__(self, loaded: LoadedModel, chunk_size: Sequence[int] = (0, 10, 5), encoder_chunk_look_back: int = 4,
                 decoder_chunk_look_back: int = 1, tail: str = "funasr", audio_fs: Optional[int] = None):
        from funasr_lite.models.paraformer.streaming import ParaformerStreaming

        if not isinstance(loaded.model, ParaformerStreaming):
            raise StreamingError(f"{loaded.files.config}: model {loaded.config.get('model')!r} does not stream "
                                 "(a ParaformerStreaming model dir does)")
        if tail not in TAIL_MODES:
            raise StreamingError(f"tail={tail!r}: choose one of {', '.join(TAIL_MODES)}")
        self.loaded = loaded
        self.model = loaded.model
        self.options = dict(chunk_size=tuple(chunk_size), encoder_chunk_look_back=encoder_chunk_look_back,
                            decoder_chunk_look_back=decoder_chunk_look_back)
        try:
            self.model.init_stream(**self.options)
        except ValueError as e:
            raise StreamingError(str(e)) from None
        self.tail = tail
        self.audio_fs = int(audio_fs or loaded.sample_rate)
        if self.audio_fs <= 0:
            raise StreamingError(f"audio_fs must be > 0, got {audio_fs}")
        conf = loaded.frontend.conf
        shift = int(loaded.sample_rate * float(conf["frame_shift"]) * 0.001)
        self.lfr_frame_samples = shift * loaded.frontend.lfr_n  # 960 at 16 kHz, LFR 6
        self.step_samples = int(chunk_size[1]) * self.lfr_frame_samples
        self.reset()

    @property
    def sample_rate(self) -> int:
        return self.loaded.sample_rate

    def reset(self) -> None:
        """Forget the stream: the next sample starts a new one."""
        self.state = self.model.init_stream(**self.options)
        self.frontend = StreamingFrontend(self.loaded.frontend)
        self.resampler = StreamResampler(self.audio_fs, self.sample_rate) if self.audio_fs != self.sample_rate else None
        self._pending = np.zeros(0, dtype=np.float32)
        self._samples = 0
        self.tokens: List[str] = []
        self.token_ids: List[int] = []
        self.scores: List[float] = []
        self.partials: List[Dict[str, Any]] = []
        self.compute_s = 0.0
        self.finished = False

    def feed(self, samples, is_final: bool = False) -> str:
        """Samples (float in [-1, 1], at ``audio_fs``: the model's rate unless given) -> the text
        of the tokens this call completed. ``is_final`` makes it the last call (see :meth:`finish`)."""
        if self.finished:
            raise StreamingError("the stream is finished: reset() it to start another")
        samples = np.asarray(samples, dtype=np.float32).reshape(-1)
        started = time.perf_counter()
        if self.resampler is not None:  # exactly the whole signal's resampling, piece by piece
            samples = self.resampler.accept(samples)
            if is_final:
                samples = np.concatenate([samples, self.resampler.finish()])
        self._samples += samples.size
        audio = np.concatenate([self._pending, samples]) if self._pending.size else samples
        steps = audio.size // self.step_samples + int(is_final)
        tokens: List[str] = []
        for index in range(steps):
            piece = audio[index * self.step_samples:(index + 1) * self.step_samples]
            final = is_final and index == steps - 1
            tokens += self._step(piece, final)
        self._pending = np.zeros(0, dtype=np.float32) if is_final else audio[steps * self.step_samples:].copy()
        elapsed = time.perf_counter() - started
        self.compute_s += elapsed
        text = tokens_to_text(tokens)
        self.partials.append({"audio_end_ms": round(1000.0 * self._samples / self.sample_rate, 3), "text": text,
                              "tokens": len(tokens), "compute_ms": round(1000.0 * elapsed, 3)})
        if is_final:
            self.finished = True
        return text

    def finish(self, samples=None) -> StreamResult:
        """The final call (with the last ``samples``, if any) -> the whole result."""
        started = time.perf_counter()
        last_text = self.feed(np.zeros(0, dtype=np.float32) if samples is None else samples, is_final=True)
        return StreamResult(text=tokens_to_text(self.tokens), tokens=list(self.tokens),
                            token_ids=list(self.token_ids), scores=list(self.scores),
                            timestamp=self.timestamps(), last_text=last_text, partials=list(self.partials),
                            audio_s=self._samples / self.sample_rate, compute_s=self.compute_s,
                            finish_s=time.perf_counter() - started)

    def timestamps(self) -> List[List[int]]:
        """Each token's [start_ms, end_ms] so far, read off the alphas CIF counted in the steps (one
        track over the stream) by the offline rule (``cif_timestamps``: FunASR's fire delay,
        60 ms frames). FunASR's streaming returns no times; this is a lite extension."""
        if not self.tokens or not self.state.alphas:
            return []
        alphas = torch.cat(self.state.alphas).numpy()
        frame_ms = self.loaded.encoder_frame_ms
        times = cif_timestamps(alphas, None, self.tokens, frame_ms=frame_ms,
                               offset_ms=self.state.alpha_start * frame_ms,
                               time_shift_frames=self.loaded.timestamp_shift_frames)
        return [[max(start, 0), max(end, 0)] for start, end in times]

    def _step(self, piece: np.ndarray, final: bool) -> List[str]:
        if final and self.tail == "funasr" and piece.size < self.lfr_frame_samples:
            feats = None  # FunASR's tail chunk: these samples are dropped
        else:
            frames = self.frontend.accept(piece)
            if final:
                frames = torch.cat([frames, self.frontend.finish()])
            feats = frames[None].to(self.loaded.device)
        output = self.model.forward_step(feats, self.state, is_final=final)
        tokens = self.loaded.tokenizer.ids2tokens(output.token_ids)
        self.tokens += tokens
        self.token_ids += output.token_ids
        self.scores += output.scores
        return tokens


# ---------------------------------------------------------------- a data set through streams


def _percentiles(values: Sequence[float]) -> Dict[str, Optional[float]]:
    if not len(values):
        return {"median": None, "p95": None, "max": None}
    array = np.asarray(values, dtype=np.float64)
    return {"median": round(float(np.median(array)), 3), "p95": round(float(np.percentile(array, 95)), 3),
            "max": round(float(array.max()), 3)}


def decode_streaming(loaded: LoadedModel, items, piece_ms: float = 600.0, failures=None,
                     **session_options) -> List[Dict[str, Any]]:
    """Each item through a fresh :class:`StreamingSession`, fed in pieces of ``piece_ms`` of audio
    as a live source would (then ``finish()``). Results are Speech2Text's dicts (key, text, token,
    token_int, score, timestamp, audio_s, compute_s) plus ``partials`` and ``finish_ms``.
    ``failures`` (a FailureLog): unreadable items are recorded there and skipped; None: raised."""
    from funasr_lite.inference.speech2text import ItemError, item_waveform

    if piece_ms <= 0:
        raise StreamingError(f"piece_ms must be > 0, got {piece_ms}")
    session = StreamingSession(loaded, **session_options)
    piece = max(1, int(round(loaded.sample_rate * piece_ms / 1000.0)))
    results = []
    for item in items:
        try:
            audio = item_waveform(loaded.frontend, item)
        except ItemError as e:
            if failures is None:
                raise
            failures.add(e.key, e.source or item.value, e.category, e.detail)
            continue
        session.reset()
        end = max(audio.size - piece, 0)  # the last piece goes with finish()
        for start in range(0, end, piece):
            session.feed(audio[start:min(start + piece, end)])
        result = session.finish(audio[end:])
        results.append({
            "key": item.key, "text": result.text, "token": result.tokens,
            "token_int": result.token_ids,
            "score": float(sum(result.scores)), "timestamp": result.timestamp, "audio_s": result.audio_s,
            "compute_s": result.compute_s, "partials": result.partials, "finish_ms": 1000.0 * result.finish_s,
        })
    return results


def latency_summary(results: Sequence[Dict[str, Any]], piece_ms: float, options: Dict[str, Any]) -> Dict[str, Any]:
    """The figures ``infer --streaming`` writes to latency.json (ms unless named): per call compute
    (calls that ran a step), the final call's compute (the result's delay after the audio ends),
    the audio time of the first non-empty partial, and the RTF."""
    steps = [p["compute_ms"] for r in results for p in r["partials"][:-1] if p["tokens"] or p["compute_ms"] > 0.5]
    first = [next((p["audio_end_ms"] for p in r["partials"] if p["text"]), None) for r in results]
    audio = sum(r["audio_s"] for r in results)
    compute = sum(r["compute_s"] for r in results)
    return {
        "utterances": len(results), "piece_ms": piece_ms, **{k: list(v) if isinstance(v, tuple) else v
                                                             for k, v in options.items()},
        "call_compute_ms": _percentiles(steps), "finish_ms": _percentiles([r["finish_ms"] for r in results]),
        "first_partial_audio_ms": _percentiles([f for f in first if f is not None]),
        "audio_s": round(audio, 3), "compute_s": round(compute, 3), "rtf": round(compute / audio, 5) if audio else None,
    }


__all__ = ["StreamingSession", "StreamResult", "StreamingError", "TAIL_MODES", "decode_streaming",
           "latency_summary"]
