"""Trial lists and held-out utterances (funasr_lite.data.speaker_trials)."""

import collections

import pytest

from funasr_lite.data.speaker_trials import heldout_utterances, make_trials, read_trials, write_trials
from funasr_lite.utils.kaldi_kv import DataDirError


def _utt2spk(speakers=4, per_speaker=6):
    return {f"s{s}_u{u:02d}": f"s{s}" for s in range(speakers) for u in range(per_speaker)}


def test_trials_are_balanced_distinct_and_labelled_right():
    utt2spk = _utt2spk()
    trials = make_trials(utt2spk, 101, seed=3)
    labels = collections.Counter(label for label, _, _ in trials)
    assert labels == {1: 50, 0: 51}
    for label, enroll, test in trials:
        assert enroll != test and label == int(utt2spk[enroll] == utt2spk[test])
    assert len({frozenset((e, t)) for _, e, t in trials}) == len(trials)
    # target trials spread evenly over the speakers (50 = 13 + 13 + 12 + 12), nontarget over the 6 speaker pairs
    per_speaker = collections.Counter(utt2spk[e] for label, e, _ in trials if label == 1)
    assert sorted(per_speaker.values()) == [12, 12, 13, 13]
    per_pair = collections.Counter(frozenset((utt2spk[e], utt2spk[t])) for label, e, t in trials if label == 0)
    assert len(per_pair) == 6 and max(per_pair.values()) - min(per_pair.values()) <= 1
    # both kinds mixed through the list, not in two blocks
    assert {label for label, _, _ in trials[:20]} == {0, 1}


def test_trials_depend_on_the_seed_and_the_data_only():
    utt2spk = _utt2spk()
    shuffled = dict(reversed(list(utt2spk.items())))
    assert make_trials(utt2spk, 40, seed=1) == make_trials(shuffled, 40, seed=1)
    assert make_trials(utt2spk, 40, seed=1) != make_trials(utt2spk, 40, seed=2)


def test_a_full_list_takes_every_pair_and_too_many_is_refused():
    utt2spk = _utt2spk(speakers=2, per_speaker=3)  # 2 x 3 same-speaker pairs, 9 cross pairs
    trials = make_trials(utt2spk, 12, seed=0)
    assert sum(label for label, _, _ in trials) == 6
    with pytest.raises(ValueError, match="target trials: only 6 distinct pairs"):
        make_trials(utt2spk, 14, seed=0)
    with pytest.raises(ValueError, match="at least 2 speakers"):
        make_trials({"a": "s", "b": "s"}, 2, seed=0)


def test_trial_file_round_trip_and_errors(tmp_path):
    trials = make_trials(_utt2spk(), 20, seed=0)
    write_trials(tmp_path / "trials", trials)
    assert (tmp_path / "trials").read_text().splitlines()[0] == "{} {} {}".format(*trials[0])
    assert read_trials(tmp_path / "trials") == trials
    (tmp_path / "bad").write_text("1 a b\n2 a c\n")
    with pytest.raises(DataDirError, match="bad:2: expected 'label enroll_utt test_utt'"):
        read_trials(tmp_path / "bad")


def test_heldout_utterances_per_speaker():
    utt2spk = _utt2spk(speakers=3, per_speaker=5)
    held = heldout_utterances(utt2spk, 2, seed=7)
    assert collections.Counter(utt2spk[u] for u in held) == {"s0": 2, "s1": 2, "s2": 2}
    assert held == sorted(held) and held == heldout_utterances(utt2spk, 2, seed=7)
    assert held != heldout_utterances(utt2spk, 2, seed=8)
    with pytest.raises(ValueError, match="leaves none to train on"):
        heldout_utterances(utt2spk, 5, seed=0)
