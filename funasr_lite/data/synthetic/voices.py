"""Synthetic speakers: an espeak-ng variant each, with its own rate, pitch and pitch range.

A speaker's prosody is drawn once from a generator seeded by (seed, speaker number); each of its
utterances then varies rate and pitch around the speaker's own (:func:`utterance_prosody`).
Speakers of different splits never share a variant, so dev and test voices are unseen in train.
"""

from __future__ import annotations

import dataclasses
from typing import Dict, List, Tuple

import numpy as np

from funasr_lite.data.synthetic.espeak import VOICE, Prosody

SPLITS = ("train", "dev", "test")
# First speaker number of each split, as in AISHELL-1 (train S0002-, dev S0724-, test S0764-).
FIRST_SPEAKER_NUMBER = {"train": 2, "dev": 724, "test": 764}
# Speaker prosody ranges (espeak units) and the per-utterance variation around them.
RATE_WPM = (150, 215)
PITCH = (30, 70)
PITCH_RANGE = (35, 85)
UTT_RATE_JITTER = 0.10      # +-10 % of the speaker's rate
UTT_PITCH_JITTER = 6        # +-6 pitch units
UTT_RANGE_JITTER = 12       # +-12 range units

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



class SpeakerError(ValueError):
    """More speakers asked for than there are distinct voices."""


@dataclasses.dataclass(frozen=True)
class SpeakerVoice:
    """One synthetic speaker: an espeak-ng variant and its typical prosody."""

    speaker_id: str
    split: str
    variant: str
    rate_wpm: int
    pitch: int
    pitch_range: int

    @property
    def espeak_voice(self) -> str:
        return f"{VOICE}+{self.variant}"


def make_speakers(speakers_per_split: Dict[str, int], seed: int) -> Dict[str, List[SpeakerVoice]]:
    """Speakers of every split; each has a variant no other speaker uses.

    Dev takes the first variants of :data:`VARIANT_POOL`, test the next, train the rest, so the
    same variant never appears in two splits whatever the size.
    """
    needed = sum(speakers_per_split.values())
    if needed > len(VARIANT_POOL):
        raise SpeakerError(f"{needed} speakers asked for, only {len(VARIANT_POOL)} voices exist")
    offsets = {}
    start = 0
    for split in ("dev", "test", "train"):
        offsets[split] = start
        start += speakers_per_split[split]
    speakers: Dict[str, List[SpeakerVoice]] = {}
    for split in SPLITS:
        speakers[split] = []
        for i in range(speakers_per_split[split]):
            number = FIRST_SPEAKER_NUMBER[split] + i
            rng = np.random.default_rng([seed, 1, number])
            speakers[split].append(SpeakerVoice(
                speaker_id=f"S{number:04d}", split=split, variant=VARIANT_POOL[offsets[split] + i],
                rate_wpm=int(rng.integers(RATE_WPM[0], RATE_WPM[1] + 1)),
                pitch=int(rng.integers(PITCH[0], PITCH[1] + 1)),
                pitch_range=int(rng.integers(PITCH_RANGE[0], PITCH_RANGE[1] + 1))))
    return speakers


def utterance_prosody(voice: SpeakerVoice, rng: np.random.Generator) -> Prosody:
    """The speaker's prosody varied for one utterance (rate +-10 %, pitch +-6, range +-12)."""
    rate = voice.rate_wpm * (1.0 + rng.uniform(-UTT_RATE_JITTER, UTT_RATE_JITTER))
    pitch = voice.pitch + rng.integers(-UTT_PITCH_JITTER, UTT_PITCH_JITTER + 1)
    pitch_range = voice.pitch_range + rng.integers(-UTT_RANGE_JITTER, UTT_RANGE_JITTER + 1)
    return Prosody(rate_wpm=int(round(rate)), pitch=int(np.clip(pitch, 0, 99)),
                   pitch_range=int(np.clip(pitch_range, 0, 99)))
