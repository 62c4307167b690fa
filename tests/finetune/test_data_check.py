"""funasr_lite.data.check: every kind of bad fine-tuning data is named (file:line or audio file),
counted and left out; the rest is kept."""

import os

import numpy as np
import pytest

from funasr_lite.data.check import check_split, summary_counts, write_checked_dir
from funasr_lite.data.datadir import read_kv
from funasr_lite.data.tokenizer import CharTokenizer
from funasr_lite.frontend.wav_frontend import WavFrontend
from finetune_data import TOKENS, synth_wave, write_wav

FRONTEND_CONF = {"fs": 16000, "n_mels": 80, "lfr_m": 7, "lfr_n": 6}


@pytest.fixture
def bad_split(tmp_path):
    wav_dir = tmp_path / "wavs"
    wav_dir.mkdir()
    split = tmp_path / "train"
    split.mkdir()
    good = {f"good{i}": write_wav(wav_dir / f"good{i}.wav", synth_wave(1.5, i)) for i in range(3)}
    low_rate = write_wav(wav_dir / "rate8k.wav", synth_wave(1.5, 7, 8000)[: 12000], 8000)
    corrupt = wav_dir / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x00\x00\x00\x00not a wave file at all")
    long_wav = write_wav(wav_dir / "long.wav", synth_wave(8.0, 9))
    short_wav = write_wav(wav_dir / "short.wav", synth_wave(0.02, 10))
    wav_lines = [f"{k} {v}" for k, v in good.items()] + [
        f"oov {good['good0']}", f"rate8k {low_rate}", f"corrupt {corrupt}", f"missing {wav_dir / 'nope.wav'}",
        f"long {long_wav}", f"short {short_wav}", f"audio_only {good['good1']}", f"dup {good['good2']}",
        f"badutf {good['good2']}",
    ]
    (split / "wav.scp").write_text("\n".join(wav_lines) + "\n", encoding="utf-8")
    text = ("good0 的一是\ngood1 我不人\ngood2 在他有\noov 猫的狗猫\nrate8k 这个上\ncorrupt 们来\nmissing 到时\n"
            "long 大地\nshort 为子\ntext_only 中你\ndup 说的\ndup 说一\n").encode("utf-8")
    text += b"badutf \xff\xfe\n"
    (split / "text").write_bytes(text)
    return split


def test_each_problem_named_counted_and_the_rest_kept(bad_split, tmp_path):
    report = check_split(bad_split, CharTokenizer(TOKENS), WavFrontend(FRONTEND_CONF), max_frames=100)
    assert sorted(report.kept) == ["good0", "good1", "good2", "oov", "rate8k"]
    lines = "\n".join(report.lines())
    text_path, wav_path = str(bad_split / "text"), str(bad_split / "wav.scp")
    assert f"{text_path}:12: duplicate key (1): dup (line 12)" in lines
    assert f"{text_path}:13: line not valid UTF-8 (1): badutf (line 13)" in lines
    dropped = {reason: [utt for utt, _ in items] for reason, items in report.dropped.items()}
    assert dropped["key given twice in text"] == ["dup"]
    assert dropped["non-UTF-8 line in text"] == ["badutf"]
    assert dropped["in text but not in wav.scp"] == ["text_only"]
    assert dropped["in wav.scp but not in text"] == ["audio_only"]
    assert dropped["audio missing"] == ["missing"]
    assert dropped["audio corrupt"] == ["corrupt"]
    assert dropped["longer than max_frames=100 model-input frames"] == ["long"]
    assert dropped["shorter than min_frames=1 model-input frames"] == ["short"]
    missing_detail = dict(report.dropped["audio missing"])["missing"]
    assert missing_detail.startswith(f"{wav_path}:7: ") and "nope.wav" in missing_detail
    assert report.resampled == [("rate8k", "8000 Hz")]
    assert report.unknown_chars == {"猫": 2, "狗": 1}
    assert "'猫' x2, '狗' x1" in lines
    assert summary_counts(report) == {
        "utterances": 13, "kept": 5, "dropped": 8, "dropped_for_length": 2, "resampled": 1, "unknown_chars": 3,
        "utterances_with_unknown_chars": 1,
    }
    # The 8 kHz file is resampled: its duration is the file's (1.5 s), measured at 16 kHz.
    assert report.durations["rate8k"] == pytest.approx(1.5, abs=1e-3)

    out = write_checked_dir(report, tmp_path / "checked")
    assert list(read_kv(os.path.join(out, "text"))) == sorted(report.kept)
    assert read_kv(os.path.join(out, "wav.scp"))["oov"] == read_kv(wav_path)["oov"]
    assert "dropped, audio corrupt: 1: corrupt" in (tmp_path / "checked" / "data_check.txt").read_text()


def test_refusing_other_rates_when_resampling_is_off(bad_split):
    report = check_split(bad_split, CharTokenizer(TOKENS), WavFrontend(FRONTEND_CONF), resample=False)
    detail = dict(report.dropped["audio wrong sample rate"])["rate8k"]
    assert "8000 Hz, expected 16000" in detail


def test_empty_and_missing_split_dirs_are_named(tmp_path):
    empty = tmp_path / "validation"
    empty.mkdir()
    report = check_split(empty, CharTokenizer(TOKENS), WavFrontend(FRONTEND_CONF))
    assert report.kept == [] and report.problems == [f"{empty}/text: missing", f"{empty}/wav.scp: missing"]
    (empty / "text").write_text("")
    (empty / "wav.scp").write_text("")
    report = check_split(empty, CharTokenizer(TOKENS), WavFrontend(FRONTEND_CONF))
    assert report.kept == [] and report.total == 0
    assert check_split(tmp_path / "nope", CharTokenizer(TOKENS), WavFrontend(FRONTEND_CONF)).problems == [
        f"{tmp_path / 'nope'}: no such directory"]


def test_too_many_tokens_for_the_frames(tmp_path):
    split = tmp_path / "train"
    split.mkdir()
    wav = write_wav(tmp_path / "a.wav", synth_wave(0.4, 1))  # 40 fbank frames -> 7 LFR frames
    (split / "wav.scp").write_text(f"a {wav}\n")
    (split / "text").write_text("a " + "的" * 12 + "\n")
    report = check_split(split, CharTokenizer(TOKENS), WavFrontend(FRONTEND_CONF))
    assert [utt for utt, _ in report.dropped["more tokens than model-input frames"]] == ["a"]
    assert np.isclose(summary_counts(report)["dropped_for_length"], 1)
