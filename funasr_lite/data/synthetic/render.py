"""One utterance of the synthetic corpus: a sentence said by a speaker, in a room, with noise.

Steps (all random choices from the utterance's own generator):

1. espeak-ng says the whole sentence with the speaker's prosody varied for this utterance
   (:func:`~funasr_lite.data.synthetic.voices.utterance_prosody`), word by word (syllables of a
   word joined) or, on :data:`SYLLABLE_WORDS_SHARE` of the utterances, syllable by syllable (as
   espeak reads a plain pinyin string); syllable spans come from its phoneme events
   (:mod:`~funasr_lite.data.synthetic.espeak`).
2. Resampled 22,050 -> 16,000 Hz; 100-400 ms of silence added before and after.
3. Speech level (RMS over the syllable spans) set to -30..-18 dBFS.
4. On :data:`REVERB_SHARE` of the utterances, a synthetic room (RT60 0.2-0.8 s, direct-to-reverb
   ratio 0-12 dB, direct path at t=0 so times do not move).
5. Noise (white / pink / brown / babble made from the utterance's own speech reversed) at an SNR
   drawn from 15-35 dB; peaks limited to 0.95.

Character times are the syllable spans in milliseconds: one per character, in order, each
starting at its first phoneme and ending where the next syllable of the word starts (or at the
pause after the word).
"""

from __future__ import annotations

import dataclasses
import math
from typing import List, Tuple

import numpy as np

from funasr_lite.data.synthetic.acoustics import (NOISE_KINDS, make_noise, mix_at_snr, reverberate,
                                                  room_impulse_response, signal_power)
from funasr_lite.data.synthetic.espeak import Espeak, Prosody
from funasr_lite.data.synthetic.voices import SpeakerVoice, utterance_prosody
from funasr_lite.frontend.audio import resample_waveform

SAMPLE_RATE = 16000
SNR_RANGE_DB = (15.0, 35.0)
LEVEL_RANGE_DBFS = (-30.0, -18.0)
PAD_RANGE_S = (0.10, 0.40)
REVERB_SHARE = 0.3
SYLLABLE_WORDS_SHARE = 0.3  # utterances read syllable by syllable (a plain pinyin string), not word by word
RT60_RANGE_S = (0.2, 0.8)
DRR_RANGE_DB = (0.0, 12.0)


@dataclasses.dataclass(frozen=True)
class UtterancePlan:
    """What one utterance says (words, and their tone-numbered syllables) and who says it."""

    utt_id: str
    speaker_id: str
    split: str
    index: int
    words: Tuple[str, ...]
    syllables: Tuple[str, ...]

    def syllables_by_word(self) -> List[List[str]]:
        it = iter(self.syllables)
        return [[next(it) for _ in word] for word in self.words]


@dataclasses.dataclass
class RenderedUtterance:
    """Audio ``(T,)`` float32 in [-1, 1] and one ``(char, start_ms, end_ms)`` per character."""

    audio: np.ndarray
    char_times: List[Tuple[str, int, int]]
    prosody: Prosody
    snr_db: float
    noise_kind: str
    rt60_s: float  # 0: no reverberation
    syllable_words: bool  # read syllable by syllable


def utterance_rng(seed: int, plan: UtterancePlan) -> np.random.Generator:
    """The generator of every random choice in one utterance (independent of job layout)."""
    return np.random.default_rng([seed, 2, int(plan.speaker_id[1:]), plan.index])


def render_utterance(plan: UtterancePlan, voice: SpeakerVoice, rng: np.random.Generator,
                     espeak: Espeak, sample_rate: int = SAMPLE_RATE) -> RenderedUtterance:
    """Synthesise, place, level, reverberate and add noise (see the module docstring)."""
    prosody = utterance_prosody(voice, rng)
    syllable_words = bool(rng.uniform() < SYLLABLE_WORDS_SHARE)
    espeak.set_voice(voice.variant)
    espeak.set_prosody(prosody)
    sentence = espeak.speak_sentence(plan.syllables_by_word(), syllable_words=syllable_words)
    speech = resample_waveform(sentence.audio / 32768.0, espeak.sample_rate, sample_rate).astype(np.float64)
    scale = sample_rate / espeak.sample_rate
    lead = int(round(rng.uniform(*PAD_RANGE_S) * sample_rate))
    tail = int(round(rng.uniform(*PAD_RANGE_S) * sample_rate))
    clean = np.concatenate([np.zeros(lead), speech, np.zeros(tail)])
    spans = [(lead + int(round(a * scale)), lead + min(int(round(b * scale)), speech.size))
             for a, b in sentence.spans]

    voiced = np.concatenate([clean[a:b] for a, b in spans if b > a])
    clean *= 10 ** (rng.uniform(*LEVEL_RANGE_DBFS) / 20) / math.sqrt(max(signal_power(voiced), 1e-12))

    rt60 = 0.0
    if rng.uniform() < REVERB_SHARE:
        rt60 = float(rng.uniform(*RT60_RANGE_S))
        rir = room_impulse_response(rt60, float(rng.uniform(*DRR_RANGE_DB)), sample_rate, rng)
        clean = reverberate(clean, rir)

    noise_kind = NOISE_KINDS[int(rng.integers(len(NOISE_KINDS)))]
    noise = make_noise(noise_kind, clean.size, rng, speech)
    snr_db = float(rng.uniform(*SNR_RANGE_DB))
    noisy = mix_at_snr(clean, noise, snr_db)
    peak = float(np.max(np.abs(noisy)))
    if peak > 0.95:
        noisy *= 0.95 / peak

    chars = "".join(plan.words)
    times = [(ch, round(a * 1000 / sample_rate), round(b * 1000 / sample_rate)) for ch, (a, b) in zip(chars, spans)]
    return RenderedUtterance(noisy.astype(np.float32), times, prosody, snr_db, noise_kind, rt60, syllable_words)


def to_int16(audio: np.ndarray) -> np.ndarray:
    """Float in [-1, 1] -> int16 PCM (rounded, clipped)."""
    return np.clip(np.round(audio * 32768.0), -32768, 32767).astype(np.int16)

