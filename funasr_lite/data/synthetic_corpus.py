"""An embedded synthetic Mandarin corpus laid out exactly like AISHELL-1.

Text: sentences cut from the People's Daily January 1998 corpus (word-segmented, POS-tagged).
Speech: espeak-ng's ``cmn-latn-pinyin`` voice reads tone-numbered pinyin from pypinyin. Each
speaker (an espeak variant with its own pitch and rate) says every tonal syllable it needs once;
an utterance is the concatenation of those trimmed syllables with short pauses (longer at word
boundaries), so the per-character timestamps are exact by construction. Additive noise
(white / pink / brown / babble-like) at an SNR drawn uniformly from 15-35 dB.

Output tree (see docs/synthetic_corpus.md)::

    <out>/data_aishell/wav/{train,dev,test}/<SPK>/<UTT>.wav      16 kHz, int16, mono
    <out>/data_aishell/transcript/aishell_transcript_v0.8.txt      UTT 词 词 词
    <out>/data_aishell/transcript/aishell_char_timestamps.txt      UTT 字 start_ms end_ms ...
    <out>/data_aishell/.done                                        JSON: parameters and counts

Every random choice is drawn from a generator seeded by (seed, speaker, utterance), so the bytes
depend only on the seed, never on the number of parallel jobs.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import io
import json
import logging
import math
import multiprocessing
import os
import re
import subprocess
import sys
import time
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from funasr_lite.data.char_timestamps import write_char_timestamps
from funasr_lite.utils.fileio import atomic_open
from funasr_lite.utils.progress import progress

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
SAMPLE_RATE = 16000
ESPEAK_VOICE = "cmn-latn-pinyin"
ESPEAK_RATE = 22050  # espeak-ng's output sample rate
SPLITS = ("train", "dev", "test")
MIN_CHARS = 6
MAX_CHARS = 25
SNR_RANGE_DB = (15.0, 35.0)
TRANSCRIPT_NAME = "aishell_transcript_v0.8.txt"
TIMESTAMPS_NAME = "aishell_char_timestamps.txt"

# First speaker number of each split, as in AISHELL-1 (train S0002-, dev S0724-, test S0764-).
FIRST_SPEAKER_NUMBER = {"train": 2, "dev": 724, "test": 764}

# espeak-ng variants that give intelligible speech with the pinyin voice (whisper, croak,
# stutter and announcer effects left out). Each speaker gets its own variant, so speakers of
# different splits never share a voice. Female-sounding and male-sounding variants alternate
# so that every split gets a mix.
_FEMALE_VARIANTS = (
    "f1", "f2", "f3", "f4", "f5", "Alicia", "aunty", "belinda", "linda", "steph",
    "steph2", "steph3", "anika", "shelby", "grandma", "zac", "quincy", "robert", "m8", "Andrea",
)
_MALE_VARIANTS = (
    "m1", "m2", "m3", "m4", "m5", "m6", "m7", "klatt", "klatt2", "klatt3", "klatt4", "klatt5",
    "klatt6", "adam", "Alex", "Andy", "Annie", "benjamin", "boris", "caleb", "david", "Denis",
    "Diogo", "ed", "edward", "edward2", "Gene", "Gene2", "gustave", "Henrique", "Hugo", "iven",
    "iven2", "iven3", "iven4", "Jacky", "john", "kaukovalta", "Lee", "marcelo", "Mario", "max",
    "Michael", "michel", "miguel", "Mike", "Mr", "Nguyen", "pablo", "paul", "pedro", "norbert",
    "sandro", "travis", "victor", "grandpa", "Storm", "Tweaky", "rob",
)


def _interleave_variants() -> Tuple[str, ...]:
    """Female, male, male, female, male, male, ... until the female list runs out."""
    out: List[str] = []
    male = list(_MALE_VARIANTS)
    for female in _FEMALE_VARIANTS:
        out.append(female)
        out.extend(male[:2])
        male = male[2:]
    return tuple(out + male)


VARIANT_POOL = _interleave_variants()


@dataclasses.dataclass(frozen=True)
class CorpusSize:
    """Speakers per split and utterances per speaker of one corpus size."""

    speakers: Dict[str, int]
    utts_per_speaker: Dict[str, int]

    def num_utts(self, split: str) -> int:
        return self.speakers[split] * self.utts_per_speaker[split]


SIZES: Dict[str, CorpusSize] = {
    # ~100 utterances: tests and CI.
    "tiny": CorpusSize({"train": 8, "dev": 3, "test": 3}, {"train": 9, "dev": 5, "test": 5}),
    # The demo default (~9 h of train audio): a small Paraformer trains on it on 2 CPU cores.
    "small": CorpusSize({"train": 24, "dev": 4, "test": 4}, {"train": 320, "dev": 60, "test": 60}),
    # >= 50 hours of train audio (~53 h).
    "full": CorpusSize({"train": 60, "dev": 8, "test": 8}, {"train": 760, "dev": 150, "test": 150}),
}


class CorpusError(RuntimeError):
    """The corpus cannot be generated as asked (missing tool or text, conflicting output)."""


def default_text_path() -> str:
    """Where tools/setup.sh puts the People's Daily text: ``<sys.prefix>/share/funasr_lite/``."""
    return os.path.join(sys.prefix, "share", "funasr_lite", "people_daily_199801.txt")


# ---------------------------------------------------------------------------------------------
# Text
# ---------------------------------------------------------------------------------------------

_DIGIT_READING = "零一二三四五六七八九"
_FULLWIDTH_TO_ASCII = str.maketrans("０１２３４５６７８９．％", "0123456789.%")
# Marks removed without cutting the sentence (quotes and title marks wrap a phrase).
_INLINE_MARKS = frozenset("“”‘’『』《》〈〉「」\"'")
_NUMBER_RE = re.compile(r"(\d+)(?:\.(\d+))?(%)?")
_SYLLABLE_RE = re.compile(r"^[a-z]*[aeiouv][a-z]*[1-5]$")


def is_chinese_char(ch: str) -> bool:
    """True for a CJK unified ideograph or 〇 (the characters a transcript may hold)."""
    return "\u4e00" <= ch <= "\u9fff" or ch == "\u3007"


def _read_four_digits(group: int) -> str:
    """Reading of 1..9999 with 千百十 units and inner 零 (``一十`` kept; the caller strips it)."""
    out = ""
    zero_pending = False
    for power, unit in ((1000, "千"), (100, "百"), (10, "十"), (1, "")):
        digit = group // power % 10
        if digit == 0:
            zero_pending = bool(out)
        else:
            if zero_pending:
                out += "零"
                zero_pending = False
            out += _DIGIT_READING[digit] + unit
    return out


def read_integer(number: int) -> str:
    """Chinese reading of a non-negative integer below 10**16: 10010 -> 一万零一十."""
    if number < 0 or number >= 10**16:
        raise ValueError(f"cannot read {number}")
    if number == 0:
        return "零"
    groups = []
    while number:
        groups.append(number % 10000)
        number //= 10000
    units = ("", "万", "亿", "万亿")
    out = ""
    need_zero = False
    for index in range(len(groups) - 1, -1, -1):
        group = groups[index]
        if group == 0:
            need_zero = bool(out)
            continue
        if out and (need_zero or group < 1000):
            out += "零"
        out += _read_four_digits(group) + units[index]
        need_zero = False
    if out.startswith("一十"):
        out = out[1:]
    elif out[:2] in ("二千", "二万", "二亿"):
        out = "两" + out[1:]
    return out


def read_digits(digits: str) -> str:
    """Digit-by-digit reading: 1998 -> 一九九八."""
    return "".join(_DIGIT_READING[int(d)] for d in digits)


def spell_out_numbers(word: str) -> str:
    """Replace the (half- or full-width) numbers in ``word`` by their Chinese reading.

    Years before 年 are read digit by digit (１９９８年 -> 一九九八年), so are numbers with a
    leading zero; decimals use 点 (１２．３ -> 十二点三) and ``%`` becomes 百分之. The result may
    still hold non-Chinese characters; the caller decides what to drop.
    """
    text = word.translate(_FULLWIDTH_TO_ASCII)

    def replace(match: re.Match) -> str:
        integer, fraction, percent = match.group(1), match.group(2), match.group(3)
        followed_by_year = text[match.end():match.end() + 1] == "年"
        if (followed_by_year and fraction is None and not percent and 2 <= len(integer) <= 4) or (
            len(integer) > 1 and integer.startswith("0")
        ) or len(integer) > 16:
            reading = read_digits(integer)
        else:
            reading = read_integer(int(integer))
        if fraction is not None:
            reading += "点" + read_digits(fraction)
        return ("百分之" + reading) if percent else reading

    return _NUMBER_RE.sub(replace, text)


def _split_tagged_token(token: str) -> Tuple[str, str]:
    word, slash, tag = token.rpartition("/")
    if not slash or not word:
        return token, ""
    return word, tag


def segments_from_tagged_line(line: str, dropped: Optional[collections.Counter] = None) -> Iterator[List[str]]:
    """Yield runs of words between punctuation marks of one ``词/pos 词/pos`` line.

    Words are returned with POS tags stripped and numbers spelt out; a run that still holds a
    non-Chinese character (Latin letters, symbols) is dropped and counted in ``dropped``.
    """
    words: List[str] = []
    clean = True

    def finish():
        if words and not clean and dropped is not None:
            dropped["non-Chinese characters"] += 1
        return bool(words) and clean

    for token in line.split():
        word, tag = _split_tagged_token(token)
        if tag == "w" or all(not is_chinese_char(c) and not c.isalnum() for c in word):
            if all(c in _INLINE_MARKS for c in word):
                continue
            if finish():
                yield words
            words, clean = [], True
            continue
        word = spell_out_numbers(word)
        if not all(is_chinese_char(c) for c in word):
            clean = False
        words.append(word)
    if finish():
        yield words


def extract_sentences(text_path: str, min_chars: int = MIN_CHARS, max_chars: int = MAX_CHARS,
                      dropped: Optional[collections.Counter] = None) -> List[Tuple[str, ...]]:
    """Distinct word-segmented sentences of ``min_chars``..``max_chars`` characters, in file order.

    Two sentences with the same characters but a different segmentation count once. Runs left
    out are counted by reason in ``dropped``; a line that is not UTF-8 is skipped with a warning
    naming ``file:line``.
    """
    dropped = collections.Counter() if dropped is None else dropped
    seen = set()
    sentences: List[Tuple[str, ...]] = []
    with open(text_path, "rb") as f:
        for line_no, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                logger.warning("%s:%d: not valid UTF-8 (%s); line skipped", text_path, line_no, e.reason)
                dropped["lines not UTF-8"] += 1
                continue
            for words in segments_from_tagged_line(line, dropped):
                chars = "".join(words)
                if not min_chars <= len(chars) <= max_chars:
                    dropped[f"outside {min_chars}-{max_chars} characters"] += 1
                elif chars in seen:
                    dropped["duplicates"] += 1
                else:
                    seen.add(chars)
                    sentences.append(tuple(words))
    return sentences


def sentence_pinyin(words: Sequence[str]) -> Optional[List[str]]:
    """Tone-numbered pinyin per character (``lv4``, neutral tone 5, tone sandhi applied).

    Phrase-aware: pypinyin sees the words. None when a character has no speakable syllable
    (e.g. 嗯 -> ``n2``, which espeak-ng cannot voice).
    """
    from pypinyin import Style, lazy_pinyin

    syllables = lazy_pinyin(list(words), style=Style.TONE3, neutral_tone_with_five=True,
                            tone_sandhi=True)
    if len(syllables) != sum(len(w) for w in words):
        return None
    if not all(_SYLLABLE_RE.match(s) for s in syllables):
        return None
    return syllables


# ---------------------------------------------------------------------------------------------
# Speakers and syllable synthesis
# ---------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class SpeakerVoice:
    """One synthetic speaker: an espeak-ng variant with its own pitch (0-99) and rate (wpm)."""

    speaker_id: str
    split: str
    variant: str
    pitch: int
    speed_wpm: int

    @property
    def espeak_voice(self) -> str:
        return f"{ESPEAK_VOICE}+{self.variant}"


def make_speakers(size: CorpusSize, seed: int) -> Dict[str, List[SpeakerVoice]]:
    """Speakers of every split; each has a variant no other speaker uses.

    Dev takes the first variants of :data:`VARIANT_POOL`, test the next, train the rest, so the
    same variant never appears in two splits whatever the size.
    """
    needed = sum(size.speakers.values())
    if needed > len(VARIANT_POOL):
        raise CorpusError(f"{needed} speakers asked for, only {len(VARIANT_POOL)} voices exist")
    order = ("dev", "test", "train")
    offsets = {}
    start = 0
    for split in order:
        offsets[split] = start
        start += size.speakers[split]
    speakers: Dict[str, List[SpeakerVoice]] = {}
    for split in SPLITS:
        speakers[split] = []
        for i in range(size.speakers[split]):
            number = FIRST_SPEAKER_NUMBER[split] + i
            rng = np.random.default_rng([seed, 1, number])
            speakers[split].append(SpeakerVoice(
                speaker_id=f"S{number:04d}", split=split, variant=VARIANT_POOL[offsets[split] + i],
                pitch=int(rng.integers(30, 71)), speed_wpm=int(rng.integers(185, 256))))
    return speakers


def check_espeak() -> None:
    """Raise CorpusError when espeak-ng or its pinyin voice is missing."""
    try:
        out = subprocess.run(["espeak-ng", f"--voices={ESPEAK_VOICE.split('-')[0]}"],
                             capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        raise CorpusError(f"espeak-ng is not usable ({e}); install it (apt-get install espeak-ng)") from None
    if ESPEAK_VOICE not in out:
        raise CorpusError(f"espeak-ng has no {ESPEAK_VOICE} voice; `espeak-ng --voices=cmn` lists:\n{out}")


def _run_espeak(voice: SpeakerVoice, text: str, ssml: bool) -> np.ndarray:
    """espeak-ng's int16 output for ``text`` at its native rate (22050 Hz)."""
    import soundfile as sf

    cmd = ["espeak-ng", "-v", voice.espeak_voice, "-p", str(voice.pitch), "-s", str(voice.speed_wpm),
           "--stdout"]
    if ssml:
        cmd.append("-m")
    try:
        result = subprocess.run(cmd + [text], capture_output=True, check=True)
    except (OSError, subprocess.CalledProcessError) as e:
        stderr = getattr(e, "stderr", b"") or b""
        raise CorpusError(f"espeak-ng failed for voice {voice.espeak_voice}: {e} {stderr.decode(errors='replace')}") from None
    audio, rate = sf.read(io.BytesIO(result.stdout), dtype="int16")
    if rate != ESPEAK_RATE:
        raise CorpusError(f"espeak-ng wrote {rate} Hz audio, expected {ESPEAK_RATE}")
    return audio.reshape(-1)


# Pause espeak-ng puts between syllables of one batch; intra-syllable silences are far shorter.
_BATCH_BREAK_MS = 800
_MIN_SEPARATOR_MS = 300
_MAX_INNER_SILENCE_MS = 200


# Some variants add a +-1 LSB dither to their pauses: "silent" means below this int16 level.
_SILENCE_LEVEL = 16


def _active_runs(audio: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Start and end (exclusive) sample of each run of int16 samples louder than the silence level."""
    active = np.concatenate([[0], (np.abs(audio.astype(np.int32)) > _SILENCE_LEVEL).astype(np.int8), [0]])
    edges = np.diff(active)
    return np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)


def _split_batch(audio: np.ndarray, count: int) -> Optional[List[Tuple[int, int]]]:
    """Cut a batch recording into ``count`` syllable regions at its ``count - 1`` longest pauses.

    Returns ``[(start, end)]`` regions (cut at pause midpoints) or None when the pauses are not
    clearly separable from silences inside syllables.
    """
    starts, ends = _active_runs(audio)
    if len(starts) < count:
        return None
    gaps = starts[1:] - ends[:-1]
    cut = np.sort(np.argsort(gaps, kind="stable")[len(gaps) - (count - 1):]) if count > 1 else np.array([], int)
    ms = ESPEAK_RATE / 1000.0
    if count > 1 and gaps[cut].min() < _MIN_SEPARATOR_MS * ms:
        return None
    inner = np.delete(gaps, cut)
    if inner.size and inner.max() > _MAX_INNER_SILENCE_MS * ms:
        return None
    bounds = [0] + [int((ends[c] + starts[c + 1]) // 2) for c in cut] + [len(audio)]
    return list(zip(bounds[:-1], bounds[1:]))


def trim_silence(audio: np.ndarray, floor_db: float = -50.0) -> np.ndarray:
    """Drop leading and trailing samples quieter than ``floor_db`` relative to the peak."""
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    if peak == 0.0:
        return audio[:0]
    loud = np.flatnonzero(np.abs(audio) > peak * 10 ** (floor_db / 20))
    return audio[loud[0]:loud[-1] + 1]


def _resample(audio: np.ndarray, orig_rate: int, new_rate: int) -> np.ndarray:
    import torch
    import torchaudio.functional as AF

    wave = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))
    return AF.resample(wave, orig_rate, new_rate).numpy()


def synthesize_syllables(voice: SpeakerVoice, syllables: Iterable[str], sample_rate: int = SAMPLE_RATE,
                         batch_size: int = 120) -> Dict[str, np.ndarray]:
    """Each tonal syllable said once by ``voice``: trimmed float32 audio ``(T,)`` at ``sample_rate``.

    Syllables are read in batches (one espeak-ng process per batch, SSML pauses between them)
    because a process start costs more than the speech; a batch whose pauses cannot be told
    apart is read again one syllable per call. A syllable the voice does not say (no audio) is
    missing from the result.
    """
    wanted = sorted(set(syllables))
    out: Dict[str, np.ndarray] = {}
    for first in range(0, len(wanted), batch_size):
        batch = wanted[first:first + batch_size]
        ssml = "<speak>" + "".join(f'<s>{s}</s><break time="{_BATCH_BREAK_MS}ms"/>' for s in batch) + "</speak>"
        recording = _run_espeak(voice, ssml, ssml=True)
        regions = _split_batch(recording, len(batch))
        if regions is None:
            logger.warning("voice %s: pauses of a %d-syllable batch are ambiguous; reading one by one",
                           voice.espeak_voice, len(batch))
            pieces = [_resample(_run_espeak(voice, s, ssml=False) / 32768.0, ESPEAK_RATE, sample_rate)
                      for s in batch]
        else:
            resampled = _resample(recording / 32768.0, ESPEAK_RATE, sample_rate)
            scale = sample_rate / ESPEAK_RATE
            pieces = [resampled[int(round(a * scale)):int(round(b * scale))] for a, b in regions]
        for syllable, piece in zip(batch, pieces):
            piece = trim_silence(piece)
            if piece.size < sample_rate // 100:
                logger.warning("voice %s produced no audio for syllable %r; utterances with it are dropped",
                               voice.espeak_voice, syllable)
                continue
            out[syllable] = piece.astype(np.float32)
    return out


# ---------------------------------------------------------------------------------------------
# Noise and mixing
# ---------------------------------------------------------------------------------------------

def signal_power(x: np.ndarray) -> float:
    """Mean square of ``x``."""
    return float(np.mean(np.square(x, dtype=np.float64)))


def mix_at_snr(clean: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """``clean + g * noise`` with g chosen so that 10·log10(P_clean / P_{g·noise}) = snr_db.

    Powers are means over the whole signal (silences included). Shapes ``(T,)``.
    """
    if clean.shape != noise.shape:
        raise ValueError(f"clean {clean.shape} and noise {noise.shape} differ in shape")
    noise_power = signal_power(noise)
    if noise_power == 0.0:
        raise ValueError("noise is all zeros")
    gain = math.sqrt(signal_power(clean) / (noise_power * 10 ** (snr_db / 10)))
    return (clean + gain * noise).astype(clean.dtype)


def _shaped_noise(length: int, rng: np.random.Generator, exponent: float) -> np.ndarray:
    """Gaussian noise with power spectrum ∝ 1/f**exponent (0 white, 1 pink, 2 brown)."""
    if exponent == 0.0:
        return rng.standard_normal(length)
    fft_length = 1 << max(length - 1, 1).bit_length()  # a power of two: fast FFT
    spectrum = np.fft.rfft(rng.standard_normal(fft_length))
    freqs = np.arange(spectrum.size, dtype=np.float64)
    freqs[0] = 1.0
    spectrum /= freqs ** (exponent / 2)
    spectrum[0] = 0.0
    return np.fft.irfft(spectrum, n=fft_length)[:length]


def _babble_noise(length: int, rng: np.random.Generator, pieces: Sequence[np.ndarray],
                  streams: int = 5) -> np.ndarray:
    """Several overlapping streams of time-reversed syllables: speech-like but unintelligible."""
    total = np.zeros(length)
    for _ in range(streams):
        parts: List[np.ndarray] = []
        filled = 0
        while filled < length:
            piece = pieces[int(rng.integers(len(pieces)))][::-1]
            parts.append(piece)
            filled += piece.size
        stream = np.concatenate(parts)
        offset = int(rng.integers(0, stream.size - length + 1))
        total += stream[offset:offset + length]
    return total


NOISE_KINDS = ("white", "pink", "brown", "babble")


def make_noise(kind: str, length: int, rng: np.random.Generator,
               babble_pieces: Sequence[np.ndarray] = ()) -> np.ndarray:
    """Noise of ``kind`` (one of :data:`NOISE_KINDS`), shape ``(length,)``."""
    if kind == "babble":
        if not babble_pieces:
            raise ValueError("babble noise needs syllable recordings")
        return _babble_noise(length, rng, babble_pieces)
    exponents = {"white": 0.0, "pink": 1.0, "brown": 2.0}
    if kind not in exponents:
        raise ValueError(f"unknown noise kind {kind!r}; choose from {NOISE_KINDS}")
    return _shaped_noise(length, rng, exponents[kind])


# ---------------------------------------------------------------------------------------------
# Utterances
# ---------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class UtterancePlan:
    """What one utterance says and who says it."""

    utt_id: str
    speaker_id: str
    split: str
    index: int
    words: Tuple[str, ...]
    syllables: Tuple[str, ...]


@dataclasses.dataclass
class RenderedUtterance:
    """Audio ``(T,)`` float32 in [-1, 1] and one ``(char, start_ms, end_ms)`` per character."""

    audio: np.ndarray
    char_times: List[Tuple[str, int, int]]
    snr_db: float
    noise_kind: str


def _jitter(piece: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Replay ``piece`` at a random rate in [0.93, 1.07] (linear interpolation) and gain +-2 dB."""
    rate = rng.uniform(0.93, 1.07)
    gain = 10 ** (rng.uniform(-2.0, 2.0) / 20)
    positions = np.arange(0.0, piece.size - 1, rate)
    return (np.interp(positions, np.arange(piece.size), piece) * gain).astype(np.float32)


def utterance_rng(seed: int, plan: UtterancePlan) -> np.random.Generator:
    """The generator of every random choice in one utterance (independent of job layout)."""
    return np.random.default_rng([seed, 2, int(plan.speaker_id[1:]), plan.index])


def render_utterance(plan: UtterancePlan, syllable_audio: Dict[str, np.ndarray], rng: np.random.Generator,
                     sample_rate: int = SAMPLE_RATE) -> RenderedUtterance:
    """Concatenate the speaker's syllables with pauses, add noise; timestamps are the syllable spans.

    Pauses: 0-30 ms inside a word, 60-200 ms between words, 150-450 ms before and after.
    Each syllable occurrence is replayed 7 % slower to 7 % faster (tempo and pitch together)
    and 2 dB softer to louder, so repeated syllables are not identical copies.
    """
    def seconds(low: float, high: float) -> int:
        return int(round(rng.uniform(low, high) * sample_rate))

    fade = sample_rate // 500  # 2 ms ramps so the cut syllable edges do not click
    ramp = np.linspace(0.0, 1.0, fade, endpoint=False, dtype=np.float32)
    chunks: List[np.ndarray] = [np.zeros(seconds(0.15, 0.45), np.float32)]
    position = chunks[0].size
    spans: List[Tuple[int, int]] = []
    syllable_iter = iter(plan.syllables)
    for word_index, word in enumerate(plan.words):
        if word_index:
            gap = seconds(0.06, 0.20)
            chunks.append(np.zeros(gap, np.float32))
            position += gap
        for char_index in range(len(word)):
            if char_index:
                gap = seconds(0.0, 0.03)
                chunks.append(np.zeros(gap, np.float32))
                position += gap
            piece = _jitter(syllable_audio[next(syllable_iter)], rng)
            if piece.size > 2 * fade:
                piece[:fade] *= ramp
                piece[-fade:] *= ramp[::-1]
            chunks.append(piece)
            spans.append((position, position + piece.size))
            position += piece.size
    chunks.append(np.zeros(seconds(0.15, 0.45), np.float32))
    clean = np.concatenate(chunks).astype(np.float64)

    # Level: speech RMS (over the syllables) between -30 and -18 dBFS.
    speech = np.concatenate([clean[a:b] for a, b in spans])
    clean *= 10 ** (rng.uniform(-30.0, -18.0) / 20) / math.sqrt(signal_power(speech))

    noise_kind = NOISE_KINDS[int(rng.integers(len(NOISE_KINDS)))]
    noise = make_noise(noise_kind, clean.size, rng, list(syllable_audio.values()))
    snr_db = float(rng.uniform(*SNR_RANGE_DB))
    noisy = mix_at_snr(clean, noise, snr_db)
    peak = float(np.max(np.abs(noisy)))
    if peak > 0.95:
        noisy *= 0.95 / peak

    chars = "".join(plan.words)
    times = [(ch, round(a * 1000 / sample_rate), round(b * 1000 / sample_rate)) for ch, (a, b) in zip(chars, spans)]
    return RenderedUtterance(noisy.astype(np.float32), times, snr_db, noise_kind)


def to_int16(audio: np.ndarray) -> np.ndarray:
    """Float in [-1, 1] -> int16 PCM (rounded, clipped)."""
    return np.clip(np.round(audio * 32768.0), -32768, 32767).astype(np.int16)


def write_wav_atomic(path: str, audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> None:
    """Write ``(T,)`` float audio as 16-bit PCM mono WAV through a temp file and rename."""
    import soundfile as sf

    buffer = io.BytesIO()
    sf.write(buffer, to_int16(audio), sample_rate, subtype="PCM_16", format="WAV")
    with atomic_open(path, "wb") as f:
        f.write(buffer.getvalue())


def _wav_is_complete(path: str, expected_frames: int) -> bool:
    import soundfile as sf

    try:
        info = sf.info(path)
    except (OSError, RuntimeError):
        return False
    return info.frames == expected_frames and info.samplerate == SAMPLE_RATE and info.channels == 1


# ---------------------------------------------------------------------------------------------
# Planning and generation
# ---------------------------------------------------------------------------------------------

def utterance_id(speaker_id: str, index: int) -> str:
    """AISHELL-style id: BAC009 + speaker + W + 4-digit index (BAC009S0002W0001)."""
    return f"BAC009{speaker_id}W{index:04d}"


def plan_corpus(sentences: Sequence[Tuple[str, ...]], size: CorpusSize, speakers: Dict[str, List[SpeakerVoice]],
                seed: int, dropped: Optional[collections.Counter] = None) -> List[UtterancePlan]:
    """Assign sentences to speakers: test and dev sentences are distinct and never used in train.

    Sentences are taken in a seeded random order; one whose pinyin is unspeakable is skipped
    (counted in ``dropped``). Train reuses its sentences (different speakers) only when there
    are more train utterances than sentences left.
    """
    dropped = collections.Counter() if dropped is None else dropped
    order = np.random.default_rng([seed, 0]).permutation(len(sentences))
    cursor = 0

    def take(count: int) -> List[Tuple[Tuple[str, ...], Tuple[str, ...]]]:
        nonlocal cursor
        taken = []
        while len(taken) < count and cursor < len(order):
            words = sentences[int(order[cursor])]
            cursor += 1
            syllables = sentence_pinyin(words)
            if syllables is None:
                dropped["unspeakable pinyin"] += 1
            else:
                taken.append((words, tuple(syllables)))
        return taken

    plans: List[UtterancePlan] = []
    for split in ("test", "dev", "train"):
        wanted = size.num_utts(split)
        chosen = take(wanted)
        if split != "train" and len(chosen) < wanted:
            raise CorpusError(f"only {len(chosen)} sentences left for {split}, need {wanted}")
        if split == "train" and not chosen:
            raise CorpusError("no sentences left for train")
        if len(chosen) < wanted:
            logger.info("train: %d sentences for %d utterances; reusing sentences across speakers",
                        len(chosen), wanted)
        per_speaker = size.utts_per_speaker[split]
        for s, voice in enumerate(speakers[split]):
            for i in range(per_speaker):
                words, syllables = chosen[(s * per_speaker + i) % len(chosen)]
                index = i + 1
                plans.append(UtterancePlan(utterance_id(voice.speaker_id, index), voice.speaker_id, split,
                                           index, words, syllables))
    return plans


@dataclasses.dataclass
class UtteranceResult:
    utt_id: str
    split: str
    words: Tuple[str, ...]
    char_times: List[Tuple[str, int, int]]
    num_samples: int
    written: bool


def _generate_speaker(task) -> Tuple[List[UtteranceResult], List[Tuple[str, str]]]:
    """Worker: synthesise one speaker's syllables, then render and write its utterances.

    Returns the results and ``(utt_id, reason)`` for each utterance dropped.
    """
    root, voice, plans, seed = task
    syllable_audio = synthesize_syllables(voice, (s for p in plans for s in p.syllables))
    results = []
    dropped = []
    for plan in plans:
        missing = sorted(set(plan.syllables) - set(syllable_audio))
        if missing:
            dropped.append((plan.utt_id, f"voice {voice.espeak_voice} cannot say {' '.join(missing)}"))
            if os.path.exists(wav_path(root, plan)):
                os.unlink(wav_path(root, plan))
            continue
        rendered = render_utterance(plan, syllable_audio, utterance_rng(seed, plan))
        path = wav_path(root, plan)
        written = False
        if not _wav_is_complete(path, rendered.audio.size):
            write_wav_atomic(path, rendered.audio)
            written = True
        results.append(UtteranceResult(plan.utt_id, plan.split, plan.words, rendered.char_times,
                                       rendered.audio.size, written))
    return results, dropped


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)


def wav_path(root: str, plan: UtterancePlan) -> str:
    return os.path.join(root, "wav", plan.split, plan.speaker_id, plan.utt_id + ".wav")


def _file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def generate_corpus(out_dir: str, size: str = "tiny", seed: int = 1, nj: int = 1,
                    text_path: Optional[str] = None, corpus_size: Optional[CorpusSize] = None) -> dict:
    """Write ``<out_dir>/data_aishell`` (see the module docstring); returns the ``.done`` record.

    A finished corpus with the same parameters is left alone; an unfinished one resumes (wavs
    already complete are kept); a corpus made with other parameters is an error.
    ``corpus_size`` overrides the speaker/utterance counts of ``size`` (tests use it).
    """
    if size not in SIZES and corpus_size is None:
        raise CorpusError(f"unknown size {size!r}; choose from {sorted(SIZES)}")
    layout = corpus_size or SIZES[size]
    text_path = text_path or default_text_path()
    if not os.path.isfile(text_path):
        raise CorpusError(f"text source {text_path} not found: run tools/setup.sh or pass --text")
    root = os.path.join(out_dir, "data_aishell")
    params = {
        "format_version": FORMAT_VERSION, "size": size, "seed": seed, "text_sha256": _file_sha256(text_path),
        "speakers": layout.speakers, "utts_per_speaker": layout.utts_per_speaker,
    }
    done_path = os.path.join(root, ".done")
    params_path = os.path.join(root, ".params")
    for path in (done_path, params_path):
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                try:
                    previous = json.load(f)
                except json.JSONDecodeError:
                    raise CorpusError(f"{path} is not valid JSON; remove {root} and rerun") from None
            previous_params = previous.get("params", previous)
            if previous_params != params:
                raise CorpusError(f"{root} was generated with other parameters ({previous_params}); "
                                  f"remove it or choose another --out")
            if path == done_path:
                logger.info("%s is complete (%s); nothing to do", root, done_path)
                return previous
    check_espeak()
    start_time = time.time()
    os.makedirs(root, exist_ok=True)
    with atomic_open(params_path) as f:
        json.dump(params, f, ensure_ascii=False, indent=1)

    text_dropped: collections.Counter = collections.Counter()
    sentences = extract_sentences(text_path, dropped=text_dropped)
    logger.info("%d distinct sentences of %d-%d characters in %s; runs left out: %s", len(sentences),
                MIN_CHARS, MAX_CHARS, text_path, dict(text_dropped) or "none")
    speakers = make_speakers(layout, seed)
    plan_dropped: collections.Counter = collections.Counter()
    plans = plan_corpus(sentences, layout, speakers, seed, dropped=plan_dropped)
    if plan_dropped:
        logger.info("sentences skipped while choosing: %s", dict(plan_dropped))
    by_speaker: Dict[str, List[UtterancePlan]] = {}
    for plan in plans:
        by_speaker.setdefault(plan.speaker_id, []).append(plan)
    voices = {v.speaker_id: v for split in SPLITS for v in speakers[split]}
    tasks = [(root, voices[spk], spk_plans, seed) for spk, spk_plans in by_speaker.items()]
    # Longest jobs first keeps the workers busy until the end.
    tasks.sort(key=lambda t: -len(t[2]))

    results: List[UtteranceResult] = []
    dropped_utts: List[Tuple[str, str]] = []
    bar = progress(total=len(plans), unit="utt", desc="synthesising")
    if nj <= 1:
        _init_worker()
        outputs: Iterable = map(_generate_speaker, tasks)
        pool = None
    else:
        # spawn, not fork: a forked child inherits the parent's torch/OpenMP thread state.
        pool = multiprocessing.get_context("spawn").Pool(min(nj, len(tasks)), initializer=_init_worker)
        outputs = pool.imap_unordered(_generate_speaker, tasks)
    try:
        for speaker_results, speaker_dropped in outputs:
            results.extend(speaker_results)
            dropped_utts.extend(speaker_dropped)
            bar.update(len(speaker_results) + len(speaker_dropped))
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()
        bar.close()
    results.sort(key=lambda r: r.utt_id)
    dropped_utts.sort()
    for utt, reason in dropped_utts:
        logger.warning("dropped %s: %s", utt, reason)
    if dropped_utts:
        logger.warning("dropped %d of %d utterances (see above)", len(dropped_utts), len(plans))
    if not results:
        raise CorpusError("every utterance was dropped; is espeak-ng's cmn-latn-pinyin voice working?")

    transcript_dir = os.path.join(root, "transcript")
    with atomic_open(os.path.join(transcript_dir, TRANSCRIPT_NAME)) as f:
        for r in results:
            f.write(f"{r.utt_id} {' '.join(r.words)}\n")
    write_char_timestamps(os.path.join(transcript_dir, TIMESTAMPS_NAME), {r.utt_id: r.char_times for r in results})

    counts = {}
    for split in SPLITS:
        split_results = [r for r in results if r.split == split]
        counts[split] = {
            "speakers": len(speakers[split]),
            "utterances": len(split_results),
            "distinct_sentences": len({"".join(r.words) for r in split_results}),
            "hours": round(sum(r.num_samples for r in split_results) / SAMPLE_RATE / 3600, 4),
        }
    record = {
        "params": params,
        "counts": counts,
        "speakers": {v.speaker_id: dataclasses.asdict(v) for split in SPLITS for v in speakers[split]},
        "sample_rate": SAMPLE_RATE,
        "espeak_voice": ESPEAK_VOICE,
        "dropped": {"text_runs": dict(text_dropped), "sentences": dict(plan_dropped),
                    "utterances": dict(dropped_utts)},
    }
    written = sum(r.written for r in results)
    for split in SPLITS:
        logger.info("%s: %d speakers, %d utterances, %.2f h", split, counts[split]["speakers"],
                    counts[split]["utterances"], counts[split]["hours"])
    logger.info("wrote %d wavs (%d already complete) in %.1f s", written, len(results) - written,
                time.time() - start_time)
    with atomic_open(done_path) as f:
        json.dump(record, f, ensure_ascii=False, indent=1)
    return record
