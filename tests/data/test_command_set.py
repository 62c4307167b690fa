"""The command-word set of the synthetic corpus (funasr_lite/data/synthetic/command_set.py): each
split's own voices say the commands, near misses and ordinary sentences none of which holds a command."""

import json
import os

import pytest
import soundfile as sf

from funasr_lite.data.char_timestamps import read_char_timestamps
from funasr_lite.data.datadir import read_kv
from funasr_lite.data.synthetic.command_set import COMMANDS, NEAR_MISSES, build_command_set, command_strings
from funasr_lite.data.synthetic.corpus import CorpusError
from funasr_lite.data.synthetic.voices import make_speakers
from test_synthetic_corpus import MICRO, small_text  # noqa: F401 (fixture)


def test_the_lists_are_distinct_and_no_near_miss_is_a_command():
    commands = command_strings()
    assert len(commands) == len(set(commands)) == 36
    assert not {"".join(w) for w in NEAR_MISSES} & set(commands)
    assert all(1 <= len(words) <= 3 for words in COMMANDS)


@pytest.fixture(scope="module")
def command_set(tmp_path_factory, small_text):
    root = tmp_path_factory.mktemp("cmd")
    (root / "corpus" / "data_aishell").mkdir(parents=True)
    summary = build_command_set(str(root / "corpus"), str(root / "set"), small_text, seed=1, nj=1,
                                repeats={"train": 2, "dev": 1, "test": 1}, others={"train": 4, "dev": 1, "test": 2},
                                corpus_size=MICRO, commands=COMMANDS[:3], near_misses=NEAR_MISSES[:2])
    return root, summary


def test_each_split_is_said_by_its_own_voices_with_the_kinds_named(command_set):
    root, summary = command_set
    voices = make_speakers(MICRO.speakers, 1)
    commands = set(command_strings()[:3])
    others_seen = {}
    for split, repeats, others in (("train", 2, 4), ("dev", 1, 1), ("test", 1, 2)):
        out = root / "set" / f"cmd_{split}"
        texts, kinds = read_kv(out / "text"), read_kv(out / "utt2kind")
        assert set(texts) == set(kinds) == set(read_kv(out / "wav.scp")) == set(read_kv(out / "utt2spk"))
        n_voices = MICRO.speakers[split]
        assert summary["splits"][split]["command"] == 3 * repeats * n_voices
        assert summary["splits"][split]["near_miss"] == 2 * n_voices
        assert summary["splits"][split]["other"] == others == len(texts) - 3 * repeats * n_voices - 2 * n_voices
        own = {v.speaker_id for v in voices[split]}
        times = read_char_timestamps(str(out / "char_timestamps"))
        for utt, text in texts.items():
            chars = text.replace(" ", "")
            assert read_kv(out / "utt2spk")[utt] in own and int(utt[-4:]) >= 5001
            assert (kinds[utt] == "command") == (chars in commands)
            if kinds[utt] == "other":
                assert not any(c in chars for c in command_strings())
            assert "".join(c for c, _, _ in times[utt]) == chars
            path = read_kv(out / "wav.scp")[utt]
            assert os.path.isfile(path) and sf.info(path).samplerate == 16000 and f"/cmd_{split}/" in path
        others_seen[split] = {t for u, t in texts.items() if kinds[u] == "other"}
    assert not others_seen["train"] & others_seen["test"] and not others_seen["dev"] & others_seen["test"]
    assert (root / "set" / "commands.txt").read_text(encoding="utf-8").split() == command_strings()[:3]
    assert json.loads((root / "set" / "command_set.json").read_text(encoding="utf-8")) == summary


def test_a_missing_corpus_and_too_few_sentences_are_named(tmp_path, small_text):
    with pytest.raises(CorpusError, match="make the corpus first"):
        build_command_set(str(tmp_path / "none"), str(tmp_path / "set"), small_text, corpus_size=MICRO)
    (tmp_path / "corpus" / "data_aishell").mkdir(parents=True)
    with pytest.raises(CorpusError, match="negatives, need 10000000"):
        build_command_set(str(tmp_path / "corpus"), str(tmp_path / "set"), small_text, corpus_size=MICRO,
                          others={"test": 10_000_000})
