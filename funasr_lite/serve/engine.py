"""The models a server holds and the one place where recognition work runs.

:class:`ServeEngine` loads the model dirs once (the offline recogniser, with VAD and punctuation
when given; the streaming model; the VAD and punctuator of 2-pass), runs every piece of model work
in a bounded thread pool (never on the event loop), and refuses work beyond its limits with
:class:`Busy` instead of queueing it without end. Everything a client sends arrives as bytes or
samples: no client value ever names a file on the server's disk.

Thread safety: the models are only read. A SeACo model's hotwords are a decoding context swapped
in for the call, so calls to a hotword-taking offline model take one lock (one at a time).
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np
import torch

from funasr_lite.api import VAD, SpeechRecognizer, TwoPass, bytes_to_waveform

logger = logging.getLogger(__name__)


class Busy(RuntimeError):
    """The server is at its limit (connections or queued work): the client should retry later."""


@dataclass
class ServeOptions:
    """A server's models and limits (``funasr_lite.bin.serve`` fills it from its options)."""

    model_dir: str
    checkpoint: Optional[str] = None
    vad_model_dir: Optional[str] = None
    punc_model_dir: Optional[str] = None
    online_model_dir: Optional[str] = None
    model_name: Optional[str] = None  # the id /v1/models lists (default: the model dir's name)
    workers: int = 2  # threads that run model work
    threads: int = 1  # torch intra-op threads (each worker's work)
    max_connections: int = 32  # open WebSocket streams; one more is closed with 1013 "busy"
    max_pending: int = 64  # model calls queued or running; one more is refused (HTTP 503 / WS 1013)
    max_upload_mb: float = 100.0  # request body limit of POST /v1/audio/transcriptions (413 above)
    max_message_mb: float = 16.0  # one WebSocket message (the protocol library closes with 1009 above)
    max_stream_s: float = 3600.0  # audio one WebSocket stream may hold for offline decoding (1009 above)
    idle_timeout_s: float = 120.0  # a WebSocket silent this long is closed (1001 "idle")
    chunk_size: Sequence[int] = (0, 10, 5)  # the streaming model's default chunk (a client may set it)
    log_requests: bool = True
    # SpeechRecognizer.from_model_dir options of the offline recogniser (decode_mode, beam_size,
    # sentence_marks, batch_size_s, ...).
    decode_options: Dict[str, Any] = field(default_factory=dict)


class ServeEngine:
    """Loaded models + the work pool + admission limits (module docstring)."""

    def __init__(self, options: ServeOptions):
        self.options = options
        torch.set_num_threads(max(1, int(options.threads)))
        started = time.perf_counter()
        self.recognizer = SpeechRecognizer.from_model_dir(
            options.model_dir, checkpoint=options.checkpoint, vad_model=options.vad_model_dir,
            punc_model=options.punc_model_dir, **options.decode_options)
        # The same loaded model without VAD/punctuation: what 2-pass re-decodes each segment with.
        self.segment_recognizer = (SpeechRecognizer(self.recognizer.loaded, self.recognizer.speech2text.options)
                                   if self.recognizer.longform is not None else self.recognizer)
        self.takes_hotwords = bool(getattr(self.recognizer.speech2text.model, "takes_hotwords", False))
        self.online = None
        if options.online_model_dir is not None:
            self.online = SpeechRecognizer.from_model_dir(options.online_model_dir)
        elif _is_streaming(self.recognizer):
            self.online = self.recognizer
        self._vad = None
        self._punctuator = None
        if self.online is not None:  # 2-pass needs them: loaded now, not on a first stream's event loop
            self.vad()
            self.punctuator()
        self.model_name = options.model_name or os.path.basename(os.path.normpath(options.model_dir))
        self.sample_rate = self.recognizer.sample_rate
        self._hotword_lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=max(1, int(options.workers)), thread_name_prefix="asr")
        self._count_lock = threading.Lock()
        self.pending = 0
        self.connections = 0
        self.stats = {"requests": 0, "streams": 0, "busy": 0, "errors": 0}
        logger.info("models loaded in %.1f s: %s (%d Hz)%s%s%s", time.perf_counter() - started, options.model_dir,
                    self.sample_rate, f", streaming {options.online_model_dir or 'same dir'}" if self.online else "",
                    f", VAD {options.vad_model_dir}" if options.vad_model_dir else "",
                    f", punctuation {options.punc_model_dir}" if options.punc_model_dir else "")

    # ------------------------------------------------------------ what the server offers
    @property
    def modes(self) -> List[str]:
        """The WebSocket modes this server serves."""
        return ["offline"] + (["online", "2pass"] if self.online is not None else [])

    def describe(self) -> Dict[str, Any]:
        return {"model": self.model_name, "sample_rate": self.sample_rate, "modes": self.modes,
                "hotwords": self.takes_hotwords, "vad": self.options.vad_model_dir is not None,
                "punctuation": self.options.punc_model_dir is not None}

    # ------------------------------------------------------------ admission
    def open_connection(self) -> None:
        with self._count_lock:
            if self.connections >= self.options.max_connections:
                self.stats["busy"] += 1
                raise Busy(f"{self.connections} streams open (limit {self.options.max_connections})")
            self.connections += 1
            self.stats["streams"] += 1

    def close_connection(self) -> None:
        with self._count_lock:
            self.connections -= 1

    async def run(self, function: Callable, *args):
        """``function(*args)`` in the work pool; :class:`Busy` when ``max_pending`` calls are already
        queued or running."""
        with self._count_lock:
            if self.pending >= self.options.max_pending:
                self.stats["busy"] += 1
                raise Busy(f"{self.pending} model calls queued or running (limit {self.options.max_pending})")
            self.pending += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, function, *args)
        finally:
            with self._count_lock:
                self.pending -= 1

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=False)

    # ------------------------------------------------------------ model work (runs in the pool)
    def transcribe(self, samples: np.ndarray, rate: int, hotwords: Optional[str] = None,
                   key: str = "audio") -> Dict[str, Any]:
        """One recording (float samples at ``rate``) -> the API's result (+ ``duration`` in s)."""
        hotword = hotwords if (hotwords and self.takes_hotwords) else None
        if self.takes_hotwords:
            with self._hotword_lock:
                result = self.recognizer(samples, audio_fs=rate, key=key, hotword=hotword)[0]
        else:
            result = self.recognizer(samples, audio_fs=rate, key=key)[0]
        result = dict(result)
        result["duration"] = samples.size / float(rate)
        return result

    def transcribe_bytes(self, data: bytes, audio_fs: Optional[int], source: str,
                         hotwords: Optional[str] = None) -> Dict[str, Any]:
        """A sound file's bytes (WAV/FLAC/Ogg...) or raw 16-bit PCM at ``audio_fs`` -> result."""
        samples, rate = bytes_to_waveform(data, audio_fs, self.sample_rate, source)
        return self.transcribe(samples, rate, hotwords)

    def vad(self) -> VAD:
        if self._vad is None:
            self._vad = VAD.from_model_dir(self.options.vad_model_dir)
        return self._vad

    def punctuator(self):
        if self._punctuator is None and self.options.punc_model_dir is not None:
            from funasr_lite.models.punc import Punctuator

            self._punctuator = Punctuator.from_model_dir(self.options.punc_model_dir)
        return self._punctuator

    def online_stream(self, chunk_size: Sequence[int], encoder_look_back: int, decoder_look_back: int, audio_fs: int):
        if self.online is None:
            raise ValueError("this server has no streaming model (start it with --online_model_dir)")
        return self.online.stream(tuple(chunk_size), encoder_look_back, decoder_look_back, audio_fs=audio_fs)

    def two_pass_stream(self, chunk_size: Sequence[int], encoder_look_back: int, decoder_look_back: int):
        if self.online is None:
            raise ValueError("this server has no streaming model (start it with --online_model_dir)")
        two_pass = TwoPass(self.online, self.segment_recognizer, self.vad(), self.punctuator())
        return two_pass.stream(tuple(chunk_size), encoder_look_back, decoder_look_back)


def _is_streaming(recognizer: SpeechRecognizer) -> bool:
    return type(recognizer.speech2text.model).__name__ == "ParaformerStreaming"


__all__ = ["Busy", "ServeEngine", "ServeOptions"]
