"""Speaker-verification trial lists (VoxCeleb's format) and held-out utterances of training speakers.

A trial list has one trial a line, ``label enroll_utt test_utt``: label 1 when both utterances are
of one speaker (a target trial), 0 when not (a nontarget trial), as VoxCeleb's ``veri_test.txt``
(``1 id10270/x6uYqmx31kE/00001.wav id10270/8jEAjG6SegY/00008.wav``); here the two fields are
utterance ids of a data dir.

:func:`make_trials` draws a balanced list from a data dir's ``utt2spk``: half target trials,
spread evenly over the speakers (round robin, each speaker's pairs drawn without replacement),
half nontarget, spread evenly over the speaker pairs. Everything is drawn from
``random.Random(seed)`` after sorting speakers and utterances (C locale), so the list depends on
the seed and the data only. No utterance pair appears twice; the order is shuffled.

:func:`heldout_utterances` picks ``per_speaker`` utterances of every speaker (seeded): the
training recipe holds them out of training to validate on (egs/aishell1/local/run_speaker.sh).
"""

from __future__ import annotations

import itertools
import os
import random
from typing import Dict, List, Sequence, Tuple

from funasr_lite.data.datadir import utt2spk_to_spk2utt
from funasr_lite.utils.fileio import atomic_open
from funasr_lite.utils.kaldi_kv import DataDirError, c_locale_key

Trial = Tuple[int, str, str]  # (label: 1 target / 0 nontarget, enroll utt, test utt)
TARGET, NONTARGET = 1, 0


def _round_robin_quotas(capacities: Sequence[int], total: int) -> List[int]:
    """Split ``total`` over groups one at a time, in order, skipping full groups: as even as the
    capacities allow. ValueError when they hold fewer than ``total``."""
    if sum(capacities) < total:
        raise ValueError(f"only {sum(capacities)} distinct pairs available, {total} asked for")
    quotas = [0] * len(capacities)
    left = total
    while left:
        for index, capacity in enumerate(capacities):
            if left and quotas[index] < capacity:
                quotas[index] += 1
                left -= 1
    return quotas


def make_trials(utt2spk: Dict[str, str], num_trials: int, seed: int) -> List[Trial]:
    """A balanced trial list (module docstring): ``num_trials // 2`` target trials and the rest
    nontarget. ValueError when there are fewer than 2 speakers or not enough distinct pairs."""
    if num_trials < 2:
        raise ValueError(f"num_trials must be at least 2, got {num_trials}")
    spk2utt = utt2spk_to_spk2utt(utt2spk)
    speakers = list(spk2utt)
    if len(speakers) < 2:
        raise ValueError(f"a trial list needs at least 2 speakers, got {len(speakers)}")
    rng = random.Random(seed)
    num_target = num_trials // 2
    num_nontarget = num_trials - num_target
    trials: List[Trial] = []

    pair_counts = [len(spk2utt[s]) * (len(spk2utt[s]) - 1) // 2 for s in speakers]
    try:
        quotas = _round_robin_quotas(pair_counts, num_target)
    except ValueError as e:
        raise ValueError(f"target trials: {e} (same-speaker pairs of {len(speakers)} speakers)") from None
    for speaker, quota in zip(speakers, quotas):
        utts = spk2utt[speaker]
        pairs = list(itertools.combinations(range(len(utts)), 2))
        trials += [(TARGET, utts[i], utts[j]) for i, j in rng.sample(pairs, quota)]

    speaker_pairs = list(itertools.combinations(speakers, 2))
    try:
        quotas = _round_robin_quotas([len(spk2utt[a]) * len(spk2utt[b]) for a, b in speaker_pairs], num_nontarget)
    except ValueError as e:
        raise ValueError(f"nontarget trials: {e} (pairs of utterances of different speakers)") from None
    for (a, b), quota in zip(speaker_pairs, quotas):
        utts_a, utts_b = spk2utt[a], spk2utt[b]
        for index in rng.sample(range(len(utts_a) * len(utts_b)), quota):
            trials.append((NONTARGET, utts_a[index // len(utts_b)], utts_b[index % len(utts_b)]))
    rng.shuffle(trials)
    return trials


def heldout_utterances(utt2spk: Dict[str, str], per_speaker: int, seed: int) -> List[str]:
    """``per_speaker`` utterances of every speaker drawn with ``random.Random(seed)``, sorted (C
    locale). ValueError when a speaker would have none left to train on."""
    if per_speaker < 1:
        raise ValueError(f"per_speaker must be at least 1, got {per_speaker}")
    rng = random.Random(seed)
    held: List[str] = []
    for speaker, utts in utt2spk_to_spk2utt(utt2spk).items():
        if len(utts) <= per_speaker:
            raise ValueError(f"speaker {speaker} has {len(utts)} utterance(s): holding out {per_speaker} leaves "
                             "none to train on")
        held += rng.sample(utts, per_speaker)
    return sorted(held, key=c_locale_key)


def write_trials(path, trials: Sequence[Trial]) -> None:
    """``label enroll test`` lines, atomically."""
    with atomic_open(path) as f:
        f.writelines(f"{label} {enroll} {test}\n" for label, enroll, test in trials)


def read_trials(path) -> List[Trial]:
    """A trial list (module docstring); DataDirError naming ``path:line`` on a malformed line."""
    path = os.fspath(path)
    trials: List[Trial] = []
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 3 or fields[0] not in ("0", "1"):
                raise DataDirError(f"{path}:{line_no}: expected 'label enroll_utt test_utt' with label 0 or 1, "
                                   f"got {line.strip()!r}")
            trials.append((int(fields[0]), fields[1], fields[2]))
    if not trials:
        raise DataDirError(f"{path}: no trials")
    return trials


__all__ = ["NONTARGET", "TARGET", "Trial", "heldout_utterances", "make_trials", "read_trials", "write_trials"]
