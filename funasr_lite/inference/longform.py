"""Long-form transcription: VAD -> batched Paraformer over the segments -> punctuation -> sentences.

The pipeline FunASR's ``AutoModel(model=ASR, vad_model=VAD, punc_model=PUNC)`` runs
(``inference_with_vad``), for a recording of any length in bounded memory:

1. **Audio in blocks.** A file already at the model rate is never held whole: the VAD reads it in
   60 s blocks (``models/vad/audio_blocks.py``), and each segment is read back by seeking
   (:class:`RecordingAudio`). Memory then depends on ``batch_size_s`` and ``max_segment_s``, not on
   the recording's length. A ``cmd |`` pipe, a file at another rate, or an in-memory array is
   decoded (and resampled) whole first, as the VAD does.
2. **Segments.** FSMN-VAD segments ``[[start_ms, end_ms], ...]``; one longer than
   ``max_segment_s`` is cut into equal parts no longer than that. Without a VAD the whole recording
   is one segment (cut the same way).
3. **Batches.** Segments sorted by length (shortest first, as FunASR) and cut into batches whose
   padded length (longest x count) is at most ``batch_size_s`` seconds; a longer segment is a
   batch alone. Each batch goes through :meth:`Speech2Text.decode_batch` (the model dir's one
   feature frontend and search), and results are put back in time order. A batch that fails is
   retried segment by segment; a segment that still fails is logged with its recording, index and
   time span, counted, and contributes no tokens — the other segments are kept.
4. **Joining.** Tokens concatenated in time order; each token's ``[start_ms, end_ms]`` shifted by
   its segment's start (absolute time in the recording); scores summed.
5. **Punctuation** (optional): ``Punctuator.punctuate_tokens(tokens)`` over all tokens of the
   recording (the punctuation model's own windowing handles the length): one mark or ``""`` after
   each token; ``text`` is the tokens' text with the marks inserted.
6. **Sentences** (``sentence_info``: ``[{"text", "start", "end", "timestamp"}]``, FunASR's
   format): with punctuation, a sentence ends after each token whose mark is in
   ``sentence_marks`` (default ``。？！``; FunASR's ``timestamp_sentence`` splits at every mark,
   ``，。？、`` reproduces that); trailing tokens with no closing mark form a last sentence (FunASR
   drops them). ``start``/``end`` are the first/last token's times, ``timestamp`` the tokens' pairs.
   Without punctuation, one sentence per VAD segment that has tokens, with the segment's bounds
   (FunASR's fallback, ``_vad_segment_sentences``).

A result is one dict per recording: ``key``, ``text``, ``token``, ``score``, ``timestamp``,
``sentence_info``, ``audio_s`` (the recording), ``compute_s`` (VAD + ASR + punctuation wall time),
``segments`` (the decoded VAD segments, ms), ``failed_segments`` (their indices).
"""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass
from typing import Callable, Dict, Iterator, List, Optional, Sequence

import numpy as np
import soundfile

from funasr_lite.data.tokenizer import tokens_to_text
from funasr_lite.frontend.audio import (
    AudioCorruptError,
    AudioEmptyError,
    AudioError,
    _check_wav_not_truncated,  # a seekable file must be refused when truncated, as load_audio does
    is_pipe_command,
    resample_waveform,
)
from funasr_lite.inference.speech2text import DecodeError, InputItem, PreparedUtterance, Speech2Text, summarize
from funasr_lite.inference.writers import write_1best_recog
from funasr_lite.models.vad.audio_blocks import read_audio_blocks
from funasr_lite.utils.failures import ItemFailure
from funasr_lite.utils.progress import progress

logger = logging.getLogger(__name__)

DEFAULT_SENTENCE_MARKS = "。？！"
FUNASR_SENTENCE_MARKS = "，。？、"  # FunASR's timestamp_sentence splits at every mark it predicts
_DECODE_ERRORS = (soundfile.LibsndfileError, RuntimeError, ValueError, EOFError)


class LongformError(DecodeError):
    """A recording the long-form pipeline cannot read; the message names it."""


@dataclass
class LongformOptions:
    """How a recording is cut and batched (see the module docstring)."""

    batch_size_s: float = 300.0  # padded seconds of audio per batch (FunASR's batch_size_s)
    max_segment_s: float = 60.0  # longer VAD segments are cut into equal parts
    sentence_marks: str = DEFAULT_SENTENCE_MARKS  # marks that end a sentence
    max_end_silence_time: Optional[int] = None  # VAD: fixed end silence (ms) instead of FunASR's schedule

    def check(self) -> None:
        if not self.batch_size_s > 0:
            raise DecodeError(f"batch_size_s must be > 0, got {self.batch_size_s}")
        if not self.max_segment_s >= 1:
            raise DecodeError(f"max_segment_s must be >= 1 s, got {self.max_segment_s}")


# ---------------------------------------------------------------- audio


class RecordingAudio:
    """One recording at the model rate, mono float32: sequential blocks and random reads.

    A plain file at the model rate stays on disk (``soundfile`` seeks); anything else is decoded,
    downmixed and resampled once and held in memory.
    """

    def __init__(self, item: InputItem, sample_rate: int):
        self.key = item.key
        self.sample_rate = int(sample_rate)
        self.path: Optional[str] = None
        self.waveform: Optional[np.ndarray] = None
        if item.kind == "waveform":
            samples = np.asarray(item.waveform, dtype=np.float32).reshape(-1)
            rate = int(item.sample_rate or sample_rate)
            self.waveform = resample_waveform(samples, rate, self.sample_rate) if samples.size else samples
        elif item.kind == "audio":
            source = item.value.strip()
            if not is_pipe_command(source) and os.path.isfile(source):
                _check_wav_not_truncated(source)
                try:
                    info = soundfile.info(source)
                except _DECODE_ERRORS as e:
                    raise AudioCorruptError(source, f"cannot decode: {e}") from None
                if int(info.samplerate) == self.sample_rate:
                    self.path = source
                    self.num_samples = int(info.frames)
                    return
            try:
                blocks = list(read_audio_blocks(source, self.sample_rate, 1 << 20))
            except AudioEmptyError:
                blocks = []
            self.waveform = np.concatenate(blocks) if blocks else np.zeros(0, dtype=np.float32)
        elif getattr(item, "error", None):  # an input the API could not turn into audio
            raise LongformError(str(item.error))
        else:
            raise LongformError(f"recording {item.key}: long-form decoding needs audio, not stored features "
                                f"({item.value})")
        self.num_samples = int(self.waveform.size)

    @property
    def duration_ms(self) -> int:
        return self.num_samples * 1000 // self.sample_rate

    def blocks(self, block_samples: int) -> Iterator[np.ndarray]:
        if self.path is not None:
            return read_audio_blocks(self.path, self.sample_rate, block_samples)
        return (self.waveform[i : i + block_samples] for i in range(0, self.num_samples, block_samples))

    def read(self, start_ms: int, end_ms: int) -> np.ndarray:
        """Samples of ``[start_ms, end_ms)`` (clipped to the recording), (N,) float32."""
        start = min(self.num_samples, start_ms * self.sample_rate // 1000)
        end = min(self.num_samples, max(start, end_ms * self.sample_rate // 1000))
        if self.path is None:
            return self.waveform[start:end]
        try:
            with soundfile.SoundFile(self.path) as f:
                f.seek(start)
                block = f.read(end - start, dtype="float32", always_2d=True)
        except _DECODE_ERRORS as e:
            raise AudioCorruptError(self.path, f"cannot decode samples {start}-{end}: {e}") from None
        return np.ascontiguousarray(block[:, 0] if block.shape[1] == 1 else block.mean(axis=1), dtype=np.float32)


# ---------------------------------------------------------------- segments and batches


def split_long_segments(segments: Sequence[Sequence[int]], max_ms: int) -> List[List[int]]:
    """Cut each ``[start, end]`` longer than ``max_ms`` into ``ceil(len / max_ms)`` equal parts."""
    out: List[List[int]] = []
    for start, end in segments:
        start, end = int(start), int(end)
        parts = max(1, math.ceil((end - start) / max_ms))
        bounds = [start + (end - start) * k // parts for k in range(parts + 1)]
        out.extend([bounds[k], bounds[k + 1]] for k in range(parts))
    return out


def batch_segments(segments: Sequence[Sequence[int]], batch_ms: float) -> List[List[int]]:
    """Indices of ``segments`` in batches: sorted by length (shortest first, ties by position),
    cut where the padded length (longest x count) would exceed ``batch_ms``."""
    order = sorted(range(len(segments)), key=lambda i: (segments[i][1] - segments[i][0], i))
    batches: List[List[int]] = []
    current: List[int] = []
    for index in order:
        length = segments[index][1] - segments[index][0]  # the longest so far: sorted ascending
        if current and length * (len(current) + 1) > batch_ms:
            batches.append(current)
            current = []
        current.append(index)
    if current:
        batches.append(current)
    return batches


# ---------------------------------------------------------------- text and sentences


def punctuated_text(tokens: Sequence[str], marks: Sequence[str], detokenize: Callable = tokens_to_text) -> str:
    """The tokens' text with ``marks[i]`` (or nothing) after token i."""
    text = ""
    run: List[str] = []
    for token, mark in zip(tokens, marks):
        run.append(token)
        if mark:
            text = _join(text, detokenize(run) + mark)
            run = []
    return _join(text, detokenize(run)) if run else text


def _join(left: str, right: str) -> str:
    if left and right and (left[-1].isascii() and left[-1].isalnum() or left[-1] in ",.?!") \
            and right[0].isascii() and right[0].isalnum():
        return left + " " + right
    return left + right


def sentences_from_marks(tokens: Sequence[str], timestamps: Sequence[Sequence[int]], marks: Sequence[str],
                         sentence_marks: str = DEFAULT_SENTENCE_MARKS,
                         detokenize: Callable = tokens_to_text) -> List[Dict]:
    """Split a punctuated token sequence into sentences (see the module docstring, step 6)."""
    if not (len(tokens) == len(timestamps) == len(marks)):
        raise ValueError(f"{len(tokens)} tokens, {len(timestamps)} timestamps, {len(marks)} marks")
    sentences: List[Dict] = []
    begin = 0
    for i, mark in enumerate(marks):
        if (mark and mark in sentence_marks) or i == len(tokens) - 1:
            stamps = [list(pair) for pair in timestamps[begin : i + 1]]
            sentences.append({
                "text": punctuated_text(tokens[begin : i + 1], marks[begin : i + 1], detokenize),
                "start": stamps[0][0], "end": stamps[-1][1], "timestamp": stamps,
            })
            begin = i + 1
    return sentences


# ---------------------------------------------------------------- the pipeline


class LongformRecognizer:
    """VAD + Paraformer + punctuation over recordings of any length (see the module docstring).

    Args:
        speech2text: the ASR decoder (its DecodeOptions apply per batch).
        vad: a :class:`~funasr_lite.models.vad.FsmnVad`, or None (the recording is one segment).
        punctuator: an object with ``punctuate_tokens(tokens) -> marks`` (e.g.
            ``funasr_lite.models.punc.Punctuator``), or None.
    """

    def __init__(self, speech2text: Speech2Text, vad=None, punctuator=None,
                 options: Optional[LongformOptions] = None):
        self.speech2text = speech2text
        self.vad = vad
        self.punctuator = punctuator
        self.options = options or LongformOptions()
        self.options.check()
        self.sample_rate = speech2text.frontend.sample_rate
        if vad is not None and vad.sample_rate != self.sample_rate:
            raise DecodeError(f"the VAD runs at {vad.sample_rate} Hz but the ASR model at {self.sample_rate} Hz")
        self.detokenize = speech2text.loaded.tokenizer.tokens2text

    def segments(self, audio: RecordingAudio) -> List[List[int]]:
        """VAD segments (ms) of the recording, over-long ones cut."""
        if audio.num_samples == 0:
            return []
        if self.vad is None:
            raw = [[0, audio.duration_ms]]
        else:
            raw = self.vad.segment_blocks(audio.blocks(self.vad.chunk_samples), self.options.max_end_silence_time)
        return split_long_segments(raw, int(self.options.max_segment_s * 1000))

    def _decode_batch(self, audio: RecordingAudio, segments, indices) -> List[Optional[Dict]]:
        def prepared(index: int) -> PreparedUtterance:
            start, end = segments[index]
            item = InputItem(f"{audio.key}-{start:08d}-{end:08d}", "waveform",
                             waveform=audio.read(start, end), sample_rate=self.sample_rate)
            return self.speech2text.prepare(index, item)

        try:
            return self.speech2text.decode_batch([prepared(i) for i in indices])
        except Exception as e:  # noqa: BLE001 -- a failed batch must not lose the recording
            if len(indices) > 1:
                logger.warning("%s: a batch of %d segments failed (%s); decoding them one by one",
                               audio.key, len(indices), e)
                return [result for i in indices for result in self._decode_batch(audio, segments, [i])]
            start, end = segments[indices[0]]
            logger.error("%s: segment %d (%d-%d ms) failed to decode and is left out: %s",
                         audio.key, indices[0], start, end, e)
            return [None]

    def transcribe(self, item: InputItem) -> Dict:
        """One recording -> its result dict (module docstring). Raises AudioError / LongformError
        for a recording that cannot be read."""
        begin = time.perf_counter()
        audio = RecordingAudio(item, self.sample_rate)
        segments = self.segments(audio)
        decoded: List[Optional[Dict]] = [None] * len(segments)
        failed: List[int] = []
        bar = progress(total=len(segments), desc=f"{audio.key} segments", unit="seg")
        try:
            for indices in batch_segments(segments, self.options.batch_size_s * 1000):
                for index, result in zip(indices, self._decode_batch(audio, segments, indices)):
                    decoded[index] = result
                    if result is None:
                        failed.append(index)
                bar.update(len(indices))
        finally:
            bar.close()
        if failed:
            logger.warning("%s: %d of %d segments failed to decode (indices %s); the others are kept",
                           audio.key, len(failed), len(segments), sorted(failed))

        tokens: List[str] = []
        timestamps: List[List[int]] = []
        score = 0.0
        segment_sentences: List[Dict] = []
        for (start, end), result in zip(segments, decoded):
            if result is None or not result["token"]:
                continue
            stamps = [[int(round(a)) + start, int(round(b)) + start] for a, b in result.get("timestamp") or []]
            tokens.extend(result["token"])
            timestamps.extend(stamps)
            score += float(result["score"])
            segment_sentences.append({"text": result["text"], "start": start, "end": end, "timestamp": stamps})
        timed = self.speech2text.options.timestamps

        if self.punctuator is not None and tokens:
            marks = list(self.punctuator.punctuate_tokens(tokens))
            if len(marks) != len(tokens):
                raise DecodeError(f"recording {audio.key}: the punctuator gave {len(marks)} marks for "
                                  f"{len(tokens)} tokens")
            text = punctuated_text(tokens, marks, self.detokenize)
            sentence_info = (sentences_from_marks(tokens, timestamps, marks, self.options.sentence_marks,
                                                  self.detokenize) if timed else [])
        else:
            text = self.detokenize(tokens)
            sentence_info = segment_sentences if timed else []
        result = {
            "key": audio.key, "text": text, "token": tokens, "score": score,
            "sentence_info": sentence_info,
            "audio_s": audio.num_samples / float(self.sample_rate),
            "compute_s": time.perf_counter() - begin,
            "segments": segments, "failed_segments": sorted(failed),
        }
        if timed:
            result["timestamp"] = timestamps
        return result

    def decode(self, items: Sequence[InputItem]) -> List[Dict]:
        """Every recording; one that cannot be read is logged, counted, and returned as
        ``{"key", "error"}`` while the others are decoded."""
        results = []
        for item in items:
            try:
                results.append(self.transcribe(item))
            except (AudioError, DecodeError) as e:
                logger.error("recording %s is not decoded: %s", item.key, e)
                results.append({"key": item.key, "error": str(e)})
        errors = sum("error" in r for r in results)
        if errors:
            logger.warning("%d of %d recordings could not be decoded", errors, len(results))
        return results

    def decode_to_results(self, items: Sequence[InputItem], output_dir=None) -> List[Dict]:
        """:meth:`decode`, then (with ``output_dir``) ``1best_recog/`` of the decoded recordings
        (:func:`funasr_lite.inference.writers.write_1best_recog`: text, token, score, time_stamp, rtf,
        sentences, srt/). The API's results: key, text, token, score, timestamp, sentence_info (or
        key, error). One recording that cannot be decoded raises its LongformError/AudioError."""
        results = self.decode(items)
        if len(results) == 1 and "error" in results[0]:
            raise LongformError(f"recording {results[0]['key']}: {results[0]['error']}")
        if output_dir is not None:
            good = [r for r in results if "error" not in r]
            sources = {item.key: item.value for item in items}
            failures = [ItemFailure(r["key"], sources.get(r["key"], ""), "unreadable", r["error"])
                        for r in results if "error" in r]
            recog_dir = write_1best_recog(output_dir, good, failures)
            logger.info("%s -> %s", summarize(good), recog_dir)
        return [{name: r[name] for name in RESULT_KEYS if name in r} for r in results]


RESULT_KEYS = ("key", "text", "token", "score", "timestamp", "sentence_info", "error")


def longform_factory(vad_model, punc_model, options: Dict):
    """For ``SpeechRecognizer.from_model_dir``: load the VAD/punctuation model dirs, take the
    :class:`LongformOptions` fields out of ``options``; returns ``(make(speech2text), decode_options)``."""
    from funasr_lite.models.vad.model import FsmnVad

    names = set(LongformOptions.__dataclass_fields__)
    longform_options = LongformOptions(**{k: v for k, v in options.items() if k in names})
    longform_options.check()
    vad = FsmnVad.from_model_dir(vad_model) if vad_model is not None else None
    punctuator = None
    if punc_model is not None:
        from funasr_lite.models.punc import Punctuator

        punctuator = Punctuator.from_model_dir(punc_model)
    return (lambda speech2text: LongformRecognizer(speech2text, vad, punctuator, longform_options),
            {k: v for k, v in options.items() if k not in names})


__all__ = [
    "DEFAULT_SENTENCE_MARKS", "FUNASR_SENTENCE_MARKS", "LongformError", "LongformOptions", "LongformRecognizer",
    "RecordingAudio", "batch_segments", "longform_factory", "punctuated_text", "sentences_from_marks", "split_long_segments",
]
