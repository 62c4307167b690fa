"""Sentence synthesis with espeak-ng's library, and where each syllable starts in the audio.

espeak-ng's C API (``libespeak-ng.so.1``, loaded with ctypes) synthesises a whole sentence in one
call and reports a *phoneme event* for every phoneme it emits, with the sample at which that
phoneme begins in the output stream. A sentence is passed as tone-numbered pinyin, one espeak
"word" per Chinese word (``zhong1guo2 ren2min2``), so that espeak joins the syllables of a word
with its own coarticulation and gives the sentence one intonation contour.

Syllable spans come from the events: the phonemes of a word are the concatenation of its
syllables' phonemes, and the number of phonemes of each tonal syllable is learnt once by
synthesising it alone (:meth:`Espeak.phoneme_count`). A syllable starts at its first phoneme's
sample and ends where the next syllable of the word starts; the last syllable of a word ends at
espeak's word-boundary pause (``_|``) or sentence-final silence. When the counts do not add up
for a word (espeak read it in an unexpected way), that word is read again with its syllables as
separate espeak words, which always gives one boundary per syllable.

One :class:`Espeak` per process: the library keeps global state and is not thread-safe.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import dataclasses
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

VOICE = "cmn-latn-pinyin"
LIBRARY_NAMES = ("libespeak-ng.so.1", "libespeak-ng.so")

# espeak_AUDIO_OUTPUT, espeak_EVENT_TYPE and espeak_PARAMETER values from speak_lib.h.
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_PHONEME_EVENTS = 0x0001
_INITIALIZE_DONT_EXIT = 0x8000
_EVENT_LIST_TERMINATED = 0
_EVENT_PHONEME = 7
_PARAM_RATE = 1
_PARAM_PITCH = 3
_PARAM_RANGE = 4
_CHARS_UTF8 = 1


class EspeakError(RuntimeError):
    """espeak-ng's library is missing, or a call into it failed."""


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint), ("text_position", ctypes.c_int),
                ("length", ctypes.c_int), ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
                ("user_data", ctypes.c_void_p), ("id", _EventId)]


_Callback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))


@dataclasses.dataclass(frozen=True)
class Prosody:
    """espeak-ng's rate (words per minute, 80-450), base pitch (0-99) and pitch range (0-99)."""

    rate_wpm: int
    pitch: int
    pitch_range: int


@dataclasses.dataclass
class Sentence:
    """int16 audio ``(T,)`` at :attr:`Espeak.sample_rate` and one ``(start, end)`` sample span per syllable."""

    audio: np.ndarray
    spans: List[Tuple[int, int]]


def _load_library() -> ctypes.CDLL:
    names = list(LIBRARY_NAMES)
    found = ctypes.util.find_library("espeak-ng")
    if found:
        names.append(found)
    for name in names:
        try:
            return ctypes.CDLL(name)
        except OSError:
            continue
    raise EspeakError("espeak-ng's library (libespeak-ng.so.1) is not installed; "
                      "apt-get install espeak-ng (tools/setup.sh does this)")


class Espeak:
    """The espeak-ng library in this process: voices, prosody, synthesis with phoneme events."""

    _instance: Optional["Espeak"] = None

    @classmethod
    def get(cls) -> "Espeak":
        """The process's one instance (created on first use)."""
        if cls._instance is None:
            cls._instance = cls()
        return cls._instance

    def __init__(self) -> None:
        self._lib = _load_library()
        rate = self._lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, None,
                                           _INITIALIZE_PHONEME_EVENTS | _INITIALIZE_DONT_EXIT)
        if rate <= 0:
            raise EspeakError(f"espeak_Initialize failed ({rate}); is espeak-ng-data installed?")
        self.sample_rate = int(rate)
        self._chunks: List[np.ndarray] = []
        self._events: List[Tuple[int, int, bytes]] = []  # (text_position, sample, phoneme name)
        self._callback = _Callback(self._on_audio)  # kept referenced: the library holds the pointer
        self._lib.espeak_SetSynthCallback(self._callback)
        self._voice: Optional[str] = None
        self._phoneme_counts: Dict[Tuple[Optional[str], str], int] = {}

    def _on_audio(self, wav, num_samples, events) -> int:
        if wav and num_samples > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(num_samples,)).copy())
        i = 0
        while events[i].type != _EVENT_LIST_TERMINATED:
            event = events[i]
            if event.type == _EVENT_PHONEME:
                self._events.append((event.text_position, event.sample, bytes(event.id.string)))
            i += 1
        return 0

    def set_voice(self, variant: Optional[str]) -> None:
        """``cmn-latn-pinyin`` with an espeak variant (``f1``, ``m3``, ...; None: the plain voice)."""
        name = VOICE if not variant else f"{VOICE}+{variant}"
        if name == self._voice:
            return
        status = self._lib.espeak_SetVoiceByName(name.encode())
        if status != 0:
            raise EspeakError(f"espeak-ng has no voice {name!r} (status {status}); "
                              f"`espeak-ng --voices=cmn` lists the installed ones")
        self._voice = name

    def set_prosody(self, prosody: Prosody) -> None:
        for parameter, value in ((_PARAM_RATE, prosody.rate_wpm), (_PARAM_PITCH, prosody.pitch),
                                 (_PARAM_RANGE, prosody.pitch_range)):
            status = self._lib.espeak_SetParameter(parameter, int(value), 0)
            if status != 0:
                raise EspeakError(f"espeak_SetParameter({parameter}, {value}) failed ({status})")

    def synthesize(self, text: str) -> Tuple[np.ndarray, List[Tuple[int, int, str]]]:
        """int16 audio of ``text`` and its phoneme events ``(text_position, sample, phoneme)``.

        ``text_position`` is the 1-based character offset of the espeak word the phoneme belongs to.
        """
        self._chunks, self._events = [], []
        data = text.encode("utf-8")
        status = self._lib.espeak_Synth(data, len(data) + 1, 0, 0, 0, _CHARS_UTF8, None, None)
        if status != 0:
            raise EspeakError(f"espeak_Synth failed ({status}) for {text!r}")
        audio = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)
        events = [(pos, sample, name.rstrip(b"\0").decode("ascii", "replace")) for pos, sample, name in self._events]
        return audio, events

    def phoneme_count(self, syllable: str) -> int:
        """How many (non-pause) phonemes the current voice says for a tonal syllable alone (cached)."""
        key = (self._voice, syllable)
        if key not in self._phoneme_counts:
            _, events = self.synthesize(syllable)
            self._phoneme_counts[key] = sum(1 for _, _, name in events if not is_pause(name))
        return self._phoneme_counts[key]

    def speak_sentence(self, words: Sequence[Sequence[str]], separator: str = " ",
                       syllable_words: bool = False) -> Sentence:
        """Say a sentence given as words of tonal syllables; returns the audio and syllable spans.

        ``separator`` goes between espeak words (``", "`` makes espeak pause after every word).
        ``syllable_words``: give espeak every syllable as a word of its own (``zhong1 guo2``), the
        way a plain pinyin string is read: short boundaries between all syllables, no joining.
        """
        for word in words:  # learn the counts first: the synthesis order stays the same
            for syllable in word:
                self.phoneme_count(syllable)
        respelled = [syllable_words] * len(words)
        for _ in range(2):
            pieces, positions = [], []
            offset = 1  # espeak's text positions are 1-based
            for word, separate in zip(words, respelled):
                # A word read syllable by syllable is several espeak words: each gets its position.
                parts = list(word) if separate else ["".join(word)]
                for part in parts:
                    positions.append(offset)
                    pieces.append(part)
                    offset += len(part) + len(separator)
            audio, events = self.synthesize(separator.join(pieces) + ".")
            by_position: Dict[int, List[Tuple[int, str]]] = {}
            for pos, sample, name in events:
                by_position.setdefault(pos, []).append((sample, name))
            starts_after = _first_sample_after(by_position)
            spans: List[Tuple[int, int]] = []
            bad_words = []
            cursor = 0
            for w, (word, separate) in enumerate(zip(words, respelled)):
                parts = [[s] for s in word] if separate else [list(word)]
                word_spans = []
                ok = True
                for part in parts:
                    position = positions[cursor]
                    cursor += 1
                    phonemes = by_position.get(position, [])
                    spoken = [(sample, name) for sample, name in phonemes if not is_pause(name)]
                    expected = [self.phoneme_count(s) for s in part]
                    if len(spoken) != sum(expected) or not spoken:
                        ok = False
                        continue
                    end = _word_end(phonemes, spoken[-1][0], starts_after.get(position), len(audio))
                    starts = np.cumsum([0] + expected[:-1])
                    syllable_starts = [spoken[int(k)][0] for k in starts]
                    for k, start in enumerate(syllable_starts):
                        stop = syllable_starts[k + 1] if k + 1 < len(syllable_starts) else end
                        word_spans.append((start, stop))
                if ok:
                    spans.extend(word_spans)
                else:
                    bad_words.append(w)
            if not bad_words:
                return Sentence(audio, _trim_word_ends(audio, spans, self.sample_rate))
            if all(respelled[w] for w in bad_words):
                break
            for w in bad_words:
                respelled[w] = True
        raise EspeakError("espeak-ng's phonemes do not match the syllables of "
                          + " ".join("".join(word) for word in words))


def is_pause(phoneme: str) -> bool:
    """espeak's pause and boundary pseudo-phonemes (``_``, ``_:``, ``_|``, ``_!``...)."""
    return not phoneme or phoneme.startswith("_")


def _first_sample_after(by_position: Dict[int, List[Tuple[int, str]]]) -> Dict[int, Optional[int]]:
    """For each text position, the earliest event sample of any later position (None for the last)."""
    out: Dict[int, Optional[int]] = {}
    earliest: Optional[int] = None
    for pos in sorted(by_position, reverse=True):
        out[pos] = earliest
        first = min(sample for sample, _ in by_position[pos])
        earliest = first if earliest is None else min(earliest, first)
    return out


def _word_end(phonemes: List[Tuple[int, str]], last_start: int, next_start: Optional[int], total: int) -> int:
    """Sample where a word's speech ends: its first pause after the last phoneme, else the next word's start."""
    for sample, name in phonemes:
        if is_pause(name) and sample > last_start:
            return sample
    return total if next_start is None else next_start


# A word's last syllable ends at espeak's pause marker, which can fall before or after the sound
# has died away: its end is moved to the last millisecond, before the next syllable starts, that
# is louder than this share of the peak.
_SILENCE_SHARE = 0.01


def _trim_word_ends(audio: np.ndarray, spans: List[Tuple[int, int]], sample_rate: int) -> List[Tuple[int, int]]:
    """End each span that is followed by a pause at its last loud millisecond (see above)."""
    frame = max(1, sample_rate // 1000)
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    if peak == 0.0:
        return spans
    out = []
    for i, (start, end) in enumerate(spans):
        limit = spans[i + 1][0] if i + 1 < len(spans) else audio.size
        if limit <= end:  # the next syllable follows without a pause
            out.append((start, end))
            continue
        n = (limit - start) // frame
        blocks = np.abs(audio[start:start + n * frame].astype(np.float64)).reshape(n, frame)
        loud = np.flatnonzero(np.sqrt(np.mean(blocks ** 2, axis=1)) > _SILENCE_SHARE * peak)
        out.append((start, start + (int(loud[-1]) + 1) * frame) if loud.size else (start, end))
    return out
