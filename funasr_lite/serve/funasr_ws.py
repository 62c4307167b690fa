"""FunASR's WebSocket protocol (its runtime servers, HTML5 and Python clients), one stream at a time.

A client sends a JSON configuration first::

    {"mode": "offline" | "online" | "2pass", "chunk_size": [5, 10, 5], "chunk_interval": 10,
     "encoder_chunk_look_back": 4, "decoder_chunk_look_back": 0, "wav_name": "demo",
     "is_speaking": true, "hotwords": "{\\"阿里巴巴\\": 20}", "wav_format": "pcm", "audio_fs": 16000,
     "itn": true}

then binary messages (16-bit little-endian mono PCM at ``audio_fs``; with another ``wav_format``,
the pieces of one sound file), then ``{"is_speaking": false}``. A JSON message may come at any
time and changes the fields it names. Answers (JSON text):

* ``online``: ``{"mode": "online", "text": <new text>, "wav_name", "is_final": false}`` whenever the
  streaming model emits text; at the end ``{"mode": "online", "text": <the final call's text>,
  "is_final": true}``.
* ``2pass``: ``2pass-online`` messages as ``online``; at every end of speech the VAD finds (and at
  the end) ``{"mode": "2pass-offline", "text": <punctuated segment>, "timestamp", "stamp_sents",
  "is_final"}``; ``is_final`` is true on the last message of the stream.
* ``offline``: at the end, ``{"mode": "offline", "text", "wav_name", "is_final": true,
  "timestamp": "[[start_ms,end_ms],...]", "stamp_sents": [...]}``.

``timestamp`` is a JSON string of the token times, as FunASR's C++ server sends it;
``stamp_sents`` is one entry per sentence ``{"text_seg", "punc", "start", "end", "ts_list"}``
(FunASR's ``sentence_info`` form, ms). After the final message the stream starts over: the
connection may carry another utterance (FunASR's servers do the same); the client closes it.

Where we differ from FunASR's servers, on purpose: audio before any configuration, text that is not
a JSON object, unknown modes, a bad ``chunk_size`` or ``audio_fs`` close the stream with 1008 / 1007
and a reason (FunASR's Python server guesses defaults or dies); ``itn`` is accepted and ignored (no
inverse text normalisation here); ``hotwords`` (a JSON object of word -> weight, or words separated by
spaces or commas) are used by a SeACo offline model, weights ignored (SeACo has none), and are never
read as a file name or URL.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Awaitable, Callable, Dict, List, Optional

import numpy as np

from funasr_lite.api import AudioInputError, bytes_to_waveform, pcm16_to_float
from funasr_lite.inference.speech2text import DecodeError
from funasr_lite.serve.openai_format import segments_of

logger = logging.getLogger(__name__)

CLOSE_BAD_DATA = 1007
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
CLOSE_INTERNAL = 1011
CLOSE_TRY_AGAIN = 1013
MODES = ("offline", "online", "2pass")
MAX_HOTWORDS = 1000


class ProtocolError(Exception):
    """The client broke the protocol: close the stream with ``code`` and ``reason``."""

    def __init__(self, code: int, reason: str):
        super().__init__(reason)
        self.code, self.reason = code, close_reason(reason)


def close_reason(text: str, limit: int = 123) -> str:
    """``text`` cut to the 123 UTF-8 bytes a close frame's reason may hold."""
    data = text.encode("utf-8")
    return text if len(data) <= limit else data[:limit].decode("utf-8", "ignore")


def client_hotwords(value: Any) -> Optional[List[str]]:
    """A client's hotwords -> a list of words (our list form, never a file name or URL): FunASR's
    JSON object of word -> weight (a string or an object), else words separated by spaces/commas."""
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("{"):
            try:
                value = json.loads(text)
            except json.JSONDecodeError:
                raise ProtocolError(CLOSE_BAD_DATA, "hotwords: neither a JSON object nor a word list") from None
        else:
            value = [w for w in text.replace(",", " ").replace("，", " ").split() if w]
    if isinstance(value, dict):
        value = [str(k) for k in value]
    if not isinstance(value, list) or not all(isinstance(w, str) for w in value):
        raise ProtocolError(CLOSE_BAD_DATA, "hotwords: expected a JSON object of word -> weight or a word list")
    return value[:MAX_HOTWORDS] or None


def stamp_sents(result: Dict[str, Any]) -> List[Dict[str, Any]]:
    """The result's sentences as FunASR's runtime sends them (``text_seg``: the sentence's tokens
    separated by spaces; ``punc``: its closing mark)."""
    sentences = segments_of(result)  # the sentences, or one over the tokens (as the OpenAI segments)
    out = []
    for sentence in sentences:
        text = sentence["text"]
        punc = text[-1] if text and text[-1] in "，。？！、,.?!" else ""
        body = text[: len(text) - len(punc)]
        out.append({"text_seg": " ".join(body.replace(" ", "")), "punc": punc, "start": int(sentence["start"]),
                    "end": int(sentence["end"]), "ts_list": [[int(s), int(e)] for s, e in sentence.get("timestamp", [])]})
    return out


def timestamp_string(stamps) -> str:
    return json.dumps([[int(s), int(e)] for s, e in stamps or []], separators=(",", ":"))


class FunasrWsSession:
    """One connection's state. ``await on_text(str)`` / ``await on_binary(bytes)`` for each client
    message; answers go through ``send(dict)``; model work runs through ``engine.run`` (in its pool)."""

    def __init__(self, engine, send: Callable[[Dict[str, Any]], Awaitable[None]]):
        self.engine, self.send = engine, send
        self.configured = False
        self.mode = "2pass"
        self.wav_name = "microphone"
        self.chunk_size = list(engine.options.chunk_size)
        self.encoder_look_back, self.decoder_look_back = 4, 0
        self.hotwords: Optional[List[str]] = None
        self.wav_format = "pcm"
        self.audio_fs = 16000
        self._reset_stream()

    # ------------------------------------------------------------ state
    def _reset_stream(self) -> None:
        self._stream = None  # the online / 2-pass session, made on the first audio
        self._resampler = None
        self._chunks: List[bytes] = []  # offline mode (or a whole-file format): the audio so far
        self._bytes = 0
        self._odd = b""  # an odd byte left from a PCM message (a sample split across messages)

    @property
    def idle(self) -> bool:
        """No audio is waiting to be decoded (a client leaving now loses nothing)."""
        return self._stream is None and not self._chunks

    def close(self) -> None:
        self._reset_stream()

    # ------------------------------------------------------------ messages
    async def on_text(self, text: str) -> None:
        try:
            message = json.loads(text)
        except (json.JSONDecodeError, RecursionError):
            raise ProtocolError(CLOSE_BAD_DATA, f"a text message that is not JSON: {text[:40]!r}") from None
        if not isinstance(message, dict):
            raise ProtocolError(CLOSE_BAD_DATA, "a text message must be a JSON object")
        self._configure(message)
        if message.get("is_speaking") is False or message.get("is_finished") is True:
            await self._finish(bool(message.get("is_end")))

    async def on_binary(self, data: bytes) -> None:
        if not self.configured:
            raise ProtocolError(CLOSE_POLICY, "audio before the JSON configuration message")
        self._bytes += len(data)
        if self.wav_format != "pcm" or self.mode == "offline":
            limit = self.engine.options.max_stream_s * self.audio_fs * 2
            if self._bytes > limit:
                raise ProtocolError(CLOSE_TOO_BIG, f"over {self.engine.options.max_stream_s:g} s of audio in one stream")
            self._chunks.append(data)
            return
        samples = self._pcm(data)
        if samples.size == 0:
            return
        if self._stream is None:
            self._start_stream()
        events = await self.engine.run(self._feed, samples, False)
        for event in events:
            await self.send(event)

    # ------------------------------------------------------------ configuration
    def _configure(self, message: Dict[str, Any]) -> None:
        if "mode" in message:
            if message["mode"] not in MODES:
                raise ProtocolError(CLOSE_POLICY, f"mode {message['mode']!r} is not one of {', '.join(MODES)}")
            if message["mode"] != "offline" and self.engine.online is None:
                raise ProtocolError(CLOSE_POLICY, f"mode {message['mode']!r} needs a streaming model; this server "
                                    "serves offline only")
            if message["mode"] != self.mode and not self.idle:
                raise ProtocolError(CLOSE_POLICY, "mode changed in the middle of an utterance")
            self.mode = message["mode"]
        if "chunk_size" in message:
            value = message["chunk_size"]
            try:
                parts = [int(x) for x in (value.split(",") if isinstance(value, str) else value)]
            except (TypeError, ValueError):
                raise ProtocolError(CLOSE_BAD_DATA, f"chunk_size {value!r}: expected three integers") from None
            if len(parts) != 3 or parts[1] <= 0 or min(parts) < 0:
                raise ProtocolError(CLOSE_BAD_DATA, f"chunk_size {value!r}: expected three integers, the middle > 0")
            self.chunk_size = parts
        for name, attribute in (("encoder_chunk_look_back", "encoder_look_back"),
                                ("decoder_chunk_look_back", "decoder_look_back")):
            if name in message:
                try:
                    setattr(self, attribute, int(message[name]))
                except (TypeError, ValueError):
                    raise ProtocolError(CLOSE_BAD_DATA, f"{name} {message[name]!r}: expected an integer") from None
        if "wav_name" in message:
            self.wav_name = str(message["wav_name"])[:200]
        if "hotwords" in message:
            self.hotwords = client_hotwords(message["hotwords"])
        if "wav_format" in message:
            self.wav_format = str(message["wav_format"]).lower() or "pcm"
        if "audio_fs" in message:
            try:
                rate = int(message["audio_fs"])
            except (TypeError, ValueError):
                rate = 0
            if not 1000 <= rate <= 192000:
                raise ProtocolError(CLOSE_BAD_DATA, f"audio_fs {message['audio_fs']!r}: expected a rate in Hz")
            self.audio_fs = rate
        self.configured = True

    # ------------------------------------------------------------ audio
    def _pcm(self, data: bytes) -> np.ndarray:
        data = self._odd + data
        whole = len(data) - len(data) % 2
        self._odd = data[whole:]
        return pcm16_to_float(data[:whole], self.wav_name)

    def _start_stream(self) -> None:
        try:
            if self.mode == "online":
                self._stream = self.engine.online_stream(self.chunk_size, self.encoder_look_back,
                                                         self.decoder_look_back, self.audio_fs)
            else:
                from funasr_lite.frontend.streaming import StreamResampler

                self._stream = self.engine.two_pass_stream(self.chunk_size, self.encoder_look_back,
                                                           self.decoder_look_back)
                if self.audio_fs != self._stream.sample_rate:
                    self._resampler = StreamResampler(self.audio_fs, self._stream.sample_rate)
        except ValueError as e:
            raise ProtocolError(CLOSE_POLICY, str(e)) from None

    def _feed(self, samples: np.ndarray, final: bool) -> List[Dict[str, Any]]:
        """Model work (in the pool): this piece's answers."""
        if self.mode == "online":
            if final:
                result = self._stream.finish(samples)
                return [self._message("online", result.last_text, True)]
            text = self._stream.feed(samples)
            return [self._message("online", text, False)] if text else []
        if self._resampler is not None:
            samples = np.concatenate([self._resampler.accept(samples)] +
                                     ([self._resampler.finish()] if final else []))
        events = self._stream.finish(samples) if final else self._stream.feed(samples)
        messages = []
        for event in events:
            if event["mode"] == "2pass-online":
                messages.append(self._message("2pass-online", event["text"], False))
            else:
                result = {"text": event["text"], "timestamp": event["timestamp"],
                          "sentence_info": [{"text": event["text"], "start": event["start_ms"],
                                             "end": event["end_ms"], "timestamp": event["timestamp"]}]
                          if event["text"] else []}
                messages.append(self._message("2pass-offline", event["text"], False, result))
        if final:
            if messages and messages[-1]["mode"] == "2pass-offline":
                messages[-1]["is_final"] = True
            else:  # nothing left to decode: the client still hears that the stream is done
                messages.append(self._message("2pass-offline", "", True, {"text": "", "timestamp": []}))
        return messages

    def _message(self, mode: str, text: str, is_final: bool, result: Optional[Dict[str, Any]] = None):
        message = {"mode": mode, "text": text, "wav_name": self.wav_name, "is_final": is_final}
        if result is not None:
            message["timestamp"] = timestamp_string(result.get("timestamp"))
            message["stamp_sents"] = stamp_sents(result)
        return message

    def _decode_whole(self) -> Dict[str, Any]:
        """Model work (in the pool): the buffered audio as one recording."""
        data = b"".join(self._chunks)
        if self.wav_format == "pcm":
            samples, rate = pcm16_to_float(data[: len(data) - len(data) % 2], self.wav_name), self.audio_fs
        else:
            samples, rate = bytes_to_waveform(data, self.audio_fs, self.engine.sample_rate, self.wav_name)
        if samples.size == 0:
            return {"text": "", "timestamp": [], "sentence_info": []}
        return self.engine.transcribe(samples, rate, self.hotwords, key=self.wav_name or "audio")

    async def _finish(self, is_end: bool = False) -> None:
        """End of speech: the stream's final answer(s), then a fresh stream on the same connection.
        ``is_end`` (FunASR's newer Python client asks for it): the final answer also says ``"is_end": true``."""
        send = self.send
        if is_end:
            async def send(message):  # noqa: F811 (the acknowledging sender for this end)
                if message.get("is_final"):
                    message = {**message, "is_end": True}
                await self.send(message)
        try:
            if self.mode == "offline" or self.wav_format != "pcm":
                if self.mode != "offline":
                    logger.info("%s: wav_format %r is decoded whole (offline)", self.wav_name, self.wav_format)
                try:
                    result = await self.engine.run(self._decode_whole)
                except (AudioInputError, DecodeError, ValueError) as e:
                    raise ProtocolError(CLOSE_BAD_DATA, f"{self.wav_name}: {e}") from None
                await send(self._message(self.mode if self.mode == "offline" else "2pass-offline",
                                         result.get("text", ""), True, result))
            elif self._stream is None:  # no audio: an empty final answer
                mode = "online" if self.mode == "online" else "2pass-offline"
                await send(self._message(mode, "", True, None if mode == "online" else {"text": ""}))
            else:
                for message in await self.engine.run(self._feed, np.zeros(0, dtype=np.float32), True):
                    await send(message)
        finally:
            self._reset_stream()


__all__ = ["CLOSE_INTERNAL", "CLOSE_TRY_AGAIN", "FunasrWsSession", "MODES", "ProtocolError", "client_hotwords", "close_reason",
           "stamp_sents", "timestamp_string"]
