"""The user-facing recogniser: ``SpeechRecognizer.from_model_dir(DIR)(audio_in)``.

    from funasr_lite import SpeechRecognizer
    asr = SpeechRecognizer.from_model_dir("exp/paraformer/model_dir")   # or a FunASR/ModelScope dir, or an exp dir
    asr("a.wav")                       # -> [{"key": "a", "text": ..., "token": [...], "score": ..., "timestamp": [[ms, ms], ...]}]
    asr("wav.scp", output_dir="out")   # also writes out/1best_recog/{text,token,score,time_stamp,rtf}

``audio_in`` may be (as in the ModelScope pipeline the model card describes):
  * a path to an audio file (any format soundfile reads; ``*.pcm`` is raw 16-bit PCM at audio_fs);
  * an ``http://`` / ``https://`` URL (fetched with a timeout and a size limit);
  * a ``wav.scp`` path (the name ends with ``.scp``): one result per line, keys from the file;
  * a Kaldi data dir (a directory with feats.scp or wav.scp);
  * ``bytes``: a RIFF/WAVE (or FLAC/Ogg) file's content, else raw 16-bit little-endian PCM at audio_fs;
  * a numpy array or torch tensor, 1-D (or (1, N) / (N, 1)): float samples in [-1, 1], or int16;
  * a list of any of these.
``audio_fs`` is the rate of PCM bytes and arrays (default: the model's rate); audio at another
rate is resampled to the model's. Multichannel audio is averaged to mono (FunASR's default);
``channel=N`` keeps the 0-based channel N instead. Keys: file name without extension for files
and URLs, ``utt1``, ``utt2``, ... (position in the list) otherwise, or the ``key`` argument.

Bad inputs: one input (a file, URL, bytes, an array) that cannot be decoded raises (AudioInputError
or DecodeError naming it). Many (a list, a wav.scp, a data dir): each unusable one is logged,
counted and returned in input order as ``{"key": ..., "error": "category: detail"}`` (no "text"),
the others are decoded; ``output_dir`` also gets ``1best_recog/failed``. ``max_failures=N`` raises
TooManyFailuresError at the (N+1)-th (0: any failure raises); default: no limit.
"""

from __future__ import annotations

import logging
import os
import urllib.parse
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np
import torch

from funasr_lite.frontend.audio import AudioError, decode_audio_bytes, prepare_samples
from funasr_lite.inference.model_dir import LoadedModel, load_model_dir
from funasr_lite.inference.onnx_backend import load_for_backend
from funasr_lite.inference.speech2text import (
    DecodeOptions,
    InputItem,
    Speech2Text,
    items_from_data_dir,
    items_from_wav_scp,
    key_of_path,
    summarize,
    unique_keys,
)
from funasr_lite.inference.writers import write_1best_recog
from funasr_lite.utils import http_fetch
from funasr_lite.utils.failures import FailureLog

logger = logging.getLogger(__name__)

URL_TIMEOUT_S = 30.0
URL_MAX_BYTES = 512 * 1024 * 1024  # 512 MiB: about 4.6 hours of 16 kHz 16-bit mono audio
URL_TOTAL_TIMEOUT_S = 300.0  # the whole transfer (URL_TIMEOUT_S bounds each network wait)
_SOUND_FILE_MAGIC = (b"RIFF", b"RF64", b"fLaC", b"OggS", b"FORM")
RESULT_KEYS = ("key", "text", "token", "score", "timestamp")


class AudioInputError(ValueError):
    """An ``audio_in`` that cannot be turned into audio; the message says which and why."""


# ---------------------------------------------------------------- audio_in -> samples


def fetch_url(url: str, timeout: float = URL_TIMEOUT_S, max_bytes: int = URL_MAX_BYTES,
              total_timeout: float = URL_TOTAL_TIMEOUT_S) -> bytes:
    """GET an http(s) ``url`` (other schemes and redirects to them refused) within the time and
    size limits of :mod:`funasr_lite.utils.http_fetch`; errors name the URL."""
    try:
        return http_fetch.fetch(url, timeout=timeout, max_bytes=max_bytes, total_timeout=total_timeout)
    except http_fetch.FetchError as e:
        raise AudioInputError(str(e)) from None


def pcm16_to_float(data: bytes, source: str) -> np.ndarray:
    """Raw 16-bit little-endian mono PCM -> (N,) float32 in [-1, 1)."""
    if len(data) % 2:
        raise AudioInputError(f"{source}: {len(data)} bytes is not a whole number of 16-bit samples")
    return np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0


def _mono(samples: np.ndarray, source: str) -> np.ndarray:
    if samples.ndim == 2 and 1 in samples.shape:
        samples = samples.reshape(-1)
    if samples.ndim != 1:
        raise AudioInputError(f"{source}: expected mono samples, shape (N,), got {samples.shape}")
    return samples


def bytes_to_waveform(data: bytes, audio_fs: Optional[int], default_fs: int, source: str,
                      channel: Optional[int] = None):
    """Sound-file bytes (RIFF/FLAC/Ogg, by their magic), else raw 16-bit PCM -> (samples, rate).

    channel: of a multichannel sound file, the 0-based channel to keep (None: their mean)."""
    if data[:4] in _SOUND_FILE_MAGIC:
        try:  # the frontend's decoder and checks; resampling happens in the frontend later
            samples, rate = decode_audio_bytes(data, source)
            if samples.shape[0] == 0:  # no samples: an empty hypothesis, as for an empty file
                waveform = np.zeros(0, dtype=np.float32)
            else:
                waveform, rate, _ = prepare_samples(samples, rate, source, target_sr=None, channel=channel)
        except AudioError as e:
            raise AudioInputError(str(e)) from None
        if audio_fs is not None and int(audio_fs) != rate:
            logger.warning("%s: audio_fs=%s ignored: the file says %d Hz", source, audio_fs, rate)
        return waveform, int(rate)
    return pcm16_to_float(data, source), int(audio_fs or default_fs)


def array_to_waveform(samples: Union[np.ndarray, torch.Tensor], source: str) -> np.ndarray:
    """int16 or float samples (numpy / torch) -> (N,) float32 in [-1, 1]."""
    if isinstance(samples, torch.Tensor):
        samples = samples.detach().cpu().numpy()
    samples = _mono(np.asarray(samples), source)
    if samples.dtype == np.int16:
        return samples.astype(np.float32) / 32768.0
    if np.issubdtype(samples.dtype, np.floating):
        samples = samples.astype(np.float32)
        if samples.size and not np.all(np.isfinite(samples)):
            raise AudioInputError(f"{source}: contains NaN or infinite samples")
        if samples.size and float(np.abs(samples).max()) > 2.0:
            raise AudioInputError(
                f"{source}: float samples reach {float(np.abs(samples).max()):.1f}; floats must lie in [-1, 1] "
                "(pass int16 samples as an int16 array)"
            )
        return samples
    raise AudioInputError(f"{source}: samples of dtype {samples.dtype}; pass float (in [-1, 1]) or int16")


def _is_url(text: str) -> bool:
    return text.lower().startswith(("http://", "https://"))


def _url_key(url: str) -> str:
    return key_of_path(urllib.parse.urlparse(url).path or "url")


def _describe(element: Any) -> str:
    if isinstance(element, (str, os.PathLike)):
        return os.fspath(element)
    return f"{type(element).__name__} input"


def _failed_item(key: str, source: str, message: str) -> InputItem:
    category = "missing" if "no such file" in message else "unreadable"
    return InputItem(key, "failed", source, error=message, category=category)


def input_items(audio_in: Any, audio_fs: Optional[int], model_fs: int, frontend=None,
                channel: Optional[int] = None) -> List[InputItem]:
    """Turn ``audio_in`` (see the module docstring) into input items with provisional keys.

    frontend: the model's WavFrontend; a data dir's stored features must match its fbank options.
    channel: the channel to keep of multichannel audio (None: their mean).
    In a list, an element that cannot be turned into audio becomes a ``"failed"`` item (its
    reason kept for the failed list) instead of raising.
    """
    if isinstance(audio_in, (list, tuple)):
        items: List[InputItem] = []
        for position, element in enumerate(audio_in, 1):
            if isinstance(element, (list, tuple)):
                raise AudioInputError(f"audio_in[{position - 1}]: nested lists are not inputs")
            try:
                element_items = input_items(element, audio_fs, model_fs, frontend, channel)
            except AudioInputError as e:
                source = _describe(element)
                key = key_of_path(source) if isinstance(element, (str, os.PathLike)) and not _is_url(source) \
                    else (_url_key(source) if isinstance(element, str) else f"utt{position}")
                element_items = [_failed_item(key, source, str(e))]
            for item in element_items:
                if item.key == "utt1" and item.kind == "waveform":
                    item.key = f"utt{position}"
                items.append(item)
        return items
    if isinstance(audio_in, os.PathLike):
        audio_in = os.fspath(audio_in)
    if isinstance(audio_in, str):
        if _is_url(audio_in):
            samples, rate = bytes_to_waveform(fetch_url(audio_in), audio_fs, model_fs, audio_in, channel)
            return [InputItem(_url_key(audio_in), "waveform", audio_in, samples, rate)]
        if os.path.isdir(audio_in):
            return _with_channel(items_from_data_dir(audio_in, frontend), channel)
        if not os.path.exists(audio_in):
            raise AudioInputError(f"{audio_in}: no such file (and not an http(s) URL)")
        if audio_in.endswith(".scp"):
            return _with_channel(items_from_wav_scp(audio_in), channel)
        if audio_in.lower().endswith(".pcm"):
            with open(audio_in, "rb") as f:
                samples = pcm16_to_float(f.read(), audio_in)
            return [InputItem(key_of_path(audio_in), "waveform", audio_in, samples, int(audio_fs or model_fs))]
        return [InputItem(key_of_path(audio_in), "audio", audio_in, channel=channel)]
    if isinstance(audio_in, (bytes, bytearray, memoryview)):
        samples, rate = bytes_to_waveform(bytes(audio_in), audio_fs, model_fs, "audio bytes", channel)
        return [InputItem("utt1", "waveform", "", samples, rate)]
    if isinstance(audio_in, (np.ndarray, torch.Tensor)):
        samples = array_to_waveform(audio_in, f"{type(audio_in).__name__} input")
        return [InputItem("utt1", "waveform", "", samples, int(audio_fs or model_fs))]
    raise AudioInputError(
        f"audio_in of type {type(audio_in).__name__} is not supported: give a path, URL, wav.scp, bytes, "
        "numpy array, torch tensor, or a list of them"
    )


def _with_channel(items: List[InputItem], channel: Optional[int]) -> List[InputItem]:
    for item in items:
        item.channel = channel
    return items


def _is_many(audio_in: Any) -> bool:
    """A list, a wav.scp or a data dir: bad elements are skipped and counted, not raised."""
    if isinstance(audio_in, (list, tuple)):
        return True
    if isinstance(audio_in, (str, os.PathLike)):
        path = os.fspath(audio_in)
        return not _is_url(path) and (path.endswith(".scp") or os.path.isdir(path))
    return False


# ---------------------------------------------------------------- the recogniser


class SpeechRecognizer:
    """A loaded recogniser (Paraformer, or any model dir the loader takes) that turns audio into text (see the module docstring)."""

    def __init__(self, loaded: LoadedModel, options: Optional[DecodeOptions] = None, longform=None):
        self.loaded = loaded
        self.speech2text = Speech2Text(loaded, options)
        self.longform = longform(self.speech2text) if longform is not None else None

    @classmethod
    def from_model_dir(cls, model_dir, checkpoint: Optional[str] = None, device: str = "cpu",
                       backend: str = "torch", quantized: bool = False, threads: Optional[int] = None,
                       vad_model=None, punc_model=None, **decode_options) -> "SpeechRecognizer":
        """Load a model dir (ours, FunASR's/ModelScope's) or a training exp dir (+ checkpoint).

        decode_options: fields of :class:`DecodeOptions` (decode_mode, beam_size, batch_bins, ...).
        backend: "torch", or "onnx" for a dir exported by funasr_lite.bin.export (onnxruntime, greedy;
        quantized: int8 (onnx: model_quant.onnx; torch: the Linears quantized on load, CPU);
        threads: onnxruntime threads, default 1; docs/deploy.md).
        vad_model / punc_model: a FunASR VAD / punctuation model dir: each input is then one
        recording of any length (funasr_lite.inference.longform; its LongformOptions fields,
        batch_size_s, max_segment_s, sentence_marks, max_end_silence_time, go in decode_options).
        """
        longform = None
        if vad_model is not None or punc_model is not None:
            from funasr_lite.inference.longform import longform_factory

            longform, decode_options = longform_factory(vad_model, punc_model, decode_options)
        loaded = load_for_backend(model_dir, backend, checkpoint, device, quantized, threads,
                                  decode_options.get("timestamps", True), decode_options.get("decode_mode", "greedy"))
        return cls(loaded, DecodeOptions(**decode_options), longform)

    @property
    def sample_rate(self) -> int:
        return self.loaded.sample_rate

    def __call__(self, audio_in, audio_fs: Optional[int] = None, output_dir=None,
                 key: Union[str, Sequence[str], None] = None, channel: Optional[int] = None,
                 max_failures: Optional[int] = None, hotword=None) -> List[Dict[str, Any]]:
        """Recognise ``audio_in``; returns one dict per utterance: key, text, token (list of
        str), score (float), timestamp ([[start_ms, end_ms], ...], one pair per token); for an
        input of many, an unusable one is ``{"key", "error"}`` (see the module docstring).

        output_dir: also write ``<output_dir>/1best_recog/{text,token,score,time_stamp,rtf[,failed]}``.
        key: the key (or one per input) to use instead of the derived ones.
        channel: the 0-based channel of multichannel audio (None: the mean of the channels).
        max_failures: with many inputs, raise TooManyFailuresError past this many failures.
        hotword: hotwords for this call (SeacoParaformer; FunASR's forms: docs/hotwords.md), instead
        of the ``hotword`` decode option.
        """
        if hotword is not None:
            with self.speech2text.using_hotwords(hotword):
                return self(audio_in, audio_fs, output_dir, key, channel, max_failures)
        failures = FailureLog(max_failures, what="utterance") if _is_many(audio_in) else None
        items = input_items(audio_in, audio_fs, self.sample_rate, self.loaded.frontend, channel)
        if key is not None:
            keys = [key] if isinstance(key, str) else list(key)
            if len(keys) != len(items):
                raise ValueError(f"{len(keys)} keys given for {len(items)} utterances")
            for item, new_key in zip(items, keys):
                item.key = new_key
        for item, unique in zip(items, unique_keys([item.key for item in items])):
            item.key = unique
        if self.longform is not None:
            return self.longform.decode_to_results(items, output_dir)
        if failures is None and items and items[0].kind == "failed":
            raise AudioInputError(items[0].error)
        results = self.speech2text.decode(items, failures=failures)
        failed = failures.failures if failures is not None else []
        if output_dir is not None:
            recog_dir = write_1best_recog(output_dir, results, failed)
            logger.info("%s -> %s", summarize(results), recog_dir)
        if failed:
            logger.warning("%s", failures.summary(len(results)))
        by_key = {result["key"]: {name: result[name] for name in RESULT_KEYS if name in result} for result in results}
        by_key.update({failure.key: {"key": failure.key, "error": failure.reason} for failure in failed})
        return [by_key[item.key] for item in items]

    def generate(self, input, **kwargs) -> List[Dict[str, Any]]:  # noqa: A002 (FunASR's argument name)
        """FunASR ``AutoModel.generate(input=...)`` spelling of :meth:`__call__`."""
        return self(input, **kwargs)

    def stream(self, chunk_size=(0, 10, 5), encoder_chunk_look_back: int = 4, decoder_chunk_look_back: int = 1,
               tail: str = "funasr", audio_fs: Optional[int] = None):
        """A new stream of a ParaformerStreaming model dir (docs/streaming.md):
        ``s = asr.stream(); s.feed(samples) -> new text; s.finish() -> StreamResult`` (text, tokens,
        timestamp, partials). Samples are floats in [-1, 1] at ``audio_fs`` (default :attr:`sample_rate`;
        another rate is resampled as the stream goes). Streams share
        the model and keep their own state: open as many as you like, drop them when done."""
        from funasr_lite.inference.streaming import StreamingSession

        return StreamingSession(self.loaded, chunk_size, encoder_chunk_look_back, decoder_chunk_look_back, tail,
                                audio_fs)



class VAD:
    """FunASR's FSMN-VAD: ``VAD.from_model_dir(DIR)(audio_in)`` -> ``[[start_ms, end_ms], ...]``.

    ``audio_in`` is one recording in any form :class:`SpeechRecognizer` takes; files are read in 60 s
    blocks (whole only when resampled), multichannel files downmixed, other rates resampled. No
    samples or no speech: ``[]``. DIR: a FunASR VAD model dir, by default the released one that
    tools/setup.sh installs (see funasr_lite/models/vad/).
    """

    def __init__(self, model):
        self.model = model

    @classmethod
    def from_model_dir(cls, model_dir=None) -> "VAD":
        from funasr_lite.models.vad.model import FsmnVad, released_vad_model_dir

        return cls(FsmnVad.from_model_dir(model_dir if model_dir is not None else released_vad_model_dir()))

    @property
    def sample_rate(self) -> int:
        return self.model.sample_rate

    def __call__(self, audio_in, audio_fs: Optional[int] = None,
                 max_end_silence_time: Optional[int] = None) -> List[List[int]]:
        """Segments of one recording; max_end_silence_time (ms) replaces FunASR's default schedule."""
        items = input_items(audio_in, audio_fs, self.sample_rate)
        if len(items) != 1:
            raise AudioInputError(f"{len(items)} recordings given; VAD(...) takes one, VAD.generate(...) several")
        return self._segments(items[0], max_end_silence_time)

    def generate(self, input, audio_fs: Optional[int] = None,  # noqa: A002 (FunASR's argument name)
                 max_end_silence_time: Optional[int] = None) -> List[Dict[str, Any]]:
        """FunASR's output for one or many recordings: ``[{"key", "value": segments}]``. A recording
        that cannot be read is logged and counted, and its entry has ``"error"`` instead of ``"value"``."""
        from funasr_lite.frontend.audio import AudioError

        items = input_items(input, audio_fs, self.sample_rate)
        results = []
        for item, key in zip(items, unique_keys([item.key for item in items])):
            try:
                results.append({"key": key, "value": self._segments(item, max_end_silence_time)})
            except (AudioError, AudioInputError) as e:
                logger.error("%s: no VAD segments: %s", key, e)
                results.append({"key": key, "error": str(e)})
        failed = sum("error" in result for result in results)
        if failed:
            logger.warning("VAD: %d of %d recordings could not be read", failed, len(results))
        return results

    def _segments(self, item: InputItem, max_end_silence_time: Optional[int]) -> List[List[int]]:
        from funasr_lite.models.vad.audio_blocks import read_audio_blocks

        if item.kind == "waveform":
            return self.model.segment(item.waveform, max_end_silence_time, sample_rate=item.sample_rate)
        if item.kind != "audio":
            raise AudioInputError(f"{item.key}: the VAD needs audio, not stored features ({item.value})")
        blocks = read_audio_blocks(item.value, self.sample_rate, self.model.chunk_samples)
        return self.model.segment_blocks(blocks, max_end_silence_time)


# ---------------------------------------------------------------- speaker verification


class SpeakerVerifier:
    """FunASR's x-vector speaker verification (docs/speaker.md): ``sv = SpeakerVerifier(DIR)``;
    ``sv.embed(audio)`` -> (E,) float32 embedding (a list, wav.scp or data dir: a list of them, in
    order); ``sv.score(a, b)`` -> cosine similarity; ``sv.verify(a, b)`` -> (same speaker?, score).

    Audio comes in any form :class:`SpeechRecognizer` takes; an input that cannot be used (missing,
    unreadable, shorter than one 25 ms window) raises AudioInputError naming it (in a list, by its key:
    the file name, or ``utt<N>`` for the N-th element given as samples).
    DIR: FunASR's released ``speech_xvector_sv-zh-cn-cnceleb-16k-spk3465-pytorch`` (sv.yaml + sv.pb)
    or a config.yaml + model.pt dir. ``threshold``: :meth:`verify`'s default, FunASR's ``sv_threshold``
    0.9465 (the released model's equal-error threshold on CN-Celeb; another model needs its own).
    ``embedding_node``: FunASR's, ``resnet1_dense`` (default) or ``resnet2_dense``.
    """

    DEFAULT_THRESHOLD = 0.9465

    def __init__(self, model_dir, checkpoint: Optional[str] = None, device: str = "cpu",
                 threshold: float = DEFAULT_THRESHOLD, embedding_node: str = "resnet1_dense",
                 batch_frames: int = 20000):
        from funasr_lite.inference.speaker import EMBEDDING_NODES, load_speaker_model_dir

        if embedding_node not in EMBEDDING_NODES:
            raise ValueError(f"embedding_node {embedding_node!r}: choose one of {', '.join(EMBEDDING_NODES)}")
        self.loaded = load_speaker_model_dir(model_dir, checkpoint, device)
        self.threshold = float(threshold)
        self.embedding_node = embedding_node
        self.batch_frames = int(batch_frames)

    @classmethod
    def from_model_dir(cls, model_dir, **options) -> "SpeakerVerifier":
        """The same as ``SpeakerVerifier(model_dir, **options)`` (the other recognisers' spelling)."""
        return cls(model_dir, **options)

    @property
    def sample_rate(self) -> int:
        return self.loaded.sample_rate

    def embed(self, audio, audio_fs: Optional[int] = None, channel: Optional[int] = None):
        """Speaker embedding(s) of ``audio``: (E,) float32, or a list of them for many inputs."""
        from funasr_lite.inference.speaker import embed_features, item_features
        from funasr_lite.inference.speech2text import ItemError

        many = _is_many(audio)
        items = input_items(audio, audio_fs, self.sample_rate, self.loaded.frontend, channel)
        features = []
        for item in items:
            label = f"input {item.key}" if many else "audio"  # a list's arrays are utt1, utt2, ... by position
            if item.kind == "failed":
                raise AudioInputError(f"{label}: {item.error}")
            try:
                features.append(item_features(self.loaded.frontend, item))
            except ItemError as e:
                source = f" ({item.value})" if item.value else ""
                raise AudioInputError(f"{label}{source}: {e.detail}") from None
        if not many and len(features) != 1:
            raise AudioInputError(f"audio: {len(features)} recordings where one was expected")
        vectors = embed_features(self.loaded, features, self.embedding_node, self.batch_frames)
        return vectors if many else vectors[0]

    def _one(self, audio, name: str, audio_fs: Optional[int]) -> np.ndarray:
        if _is_many(audio):
            raise AudioInputError(f"{name}: one recording expected, got {type(audio).__name__} of many")
        try:
            return self.embed(audio, audio_fs)
        except AudioInputError as e:
            raise AudioInputError(f"{name}: {e}") from None

    def score(self, a, b, audio_fs: Optional[int] = None) -> float:
        """Cosine similarity of the embeddings of recordings ``a`` and ``b`` (in [-1, 1])."""
        from funasr_lite.inference.speaker import cosine_score

        return cosine_score(self._one(a, "a", audio_fs), self._one(b, "b", audio_fs))

    def verify(self, a, b, threshold: Optional[float] = None, audio_fs: Optional[int] = None):
        """(score >= threshold, score): whether ``a`` and ``b`` are one speaker, and the cosine score.
        threshold: default the verifier's (FunASR's 0.9465 unless given at construction)."""
        score = self.score(a, b, audio_fs)
        return score >= (self.threshold if threshold is None else float(threshold)), score


__all__ = ["AudioInputError", "SpeakerVerifier", "SpeechRecognizer", "VAD", "array_to_waveform", "bytes_to_waveform",
           "fetch_url", "input_items"]


# ---------------------------------------------------------------- 2-pass


class TwoPass:
    """FunASR's "2pass" mode (docs/streaming.md#2-pass): ``TwoPass.from_model_dirs(streaming_dir,
    offline_dir)``; ``s = tp.stream(); s.feed(samples)`` -> events ``{"mode": "2pass-online", "text"}``
    as the streaming model hears, ``{"mode": "2pass-offline", "text", "token", "timestamp",
    "start_ms", "end_ms"}`` at each end of speech (the offline model's, punctuated if a punctuation
    model is given); ``s.finish()``. Streams share the models."""

    def __init__(self, online: SpeechRecognizer, offline: SpeechRecognizer, vad: VAD, punctuator=None):
        self.online, self.offline, self.vad, self.punctuator = online, offline, vad, punctuator

    @classmethod
    def from_model_dirs(cls, online_model, offline_model, vad_model=None, punc_model=None,
                        device: str = "cpu") -> "TwoPass":
        punctuator = None
        if punc_model is not None:
            from funasr_lite.models.punc import Punctuator

            punctuator = Punctuator.from_model_dir(punc_model, device=device)
        return cls(SpeechRecognizer.from_model_dir(online_model, device=device),
                   SpeechRecognizer.from_model_dir(offline_model, device=device), VAD.from_model_dir(vad_model),
                   punctuator)

    def stream(self, chunk_size=(0, 10, 5), encoder_chunk_look_back: int = 4, decoder_chunk_look_back: int = 1,
               vad_chunk_ms: int = 60, max_end_silence_time: Optional[int] = None):
        from funasr_lite.inference.twopass import TwoPassSession

        online = self.online.stream(chunk_size, encoder_chunk_look_back, decoder_chunk_look_back)
        return TwoPassSession(online, self.offline, self.vad.model, self.punctuator, vad_chunk_ms,
                              max_end_silence_time)
