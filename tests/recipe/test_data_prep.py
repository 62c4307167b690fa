"""AISHELL-1 data prep (funasr_lite/data/aishell.py + egs/aishell1/local/aishell_data_prep.sh)."""

import logging
import os
import shutil
import subprocess

import numpy as np
import pytest
import soundfile

from funasr_lite.data.aishell import prepare_aishell
from funasr_lite.data.datadir import read_kv

SCRIPT = os.path.join("egs", "aishell1", "local", "aishell_data_prep.sh")

# split -> speaker -> utterances that have a wav
WAVS = {
    "train": {
        "S0002": ["BAC009S0002W0001", "BAC009S0002W0002", "BAC009S0002W0003",
                  "BAC009S0002W0006", "BAC009S0002W0007"],
        "S0003": ["BAC009S0003W0001", "BAC009S0003W0002", "BAC009S0003W0003"],
    },
    "dev": {"S0724": ["BAC009S0724W0001", "BAC009S0724W0002",
                      "BAC009S0002W0003"]},  # the last one is also in train: dropped from dev
    "test": {"S0764": ["BAC009S0764W0001", "BAC009S0764W0002"]},
}

TRANSCRIPT_LINES = [
    "BAC009S0002W0001 而 对 楼市 成交 抑制 作用 最 大 的 限 购".encode(),
    "BAC009S0002W0002 也 成为 地方 政府 的 眼中 钉".encode(),
    "BAC009S0002W0003 自 六月 底 呼和浩特 市 率先 宣布 取消 限 购 后".encode(),
    # W0006 has no transcript line at all
    "BAC009S0002W0007   ".encode(),  # empty transcript
    "BAC009S0002W0099 这 句 没有 音频".encode(),  # transcript without wav, train speaker
    "BAC009S0003W0001 ".encode() + "坏".encode("gbk"),  # not UTF-8
    "BAC009S0003W0002 各地 政府 便 纷纷 跟进".encode(),
    "BAC009S0003W0003 仅 一 个 多 月 的 时间 里".encode(),
    "BAC009S0002W0001 重复 的 行".encode(),  # duplicate id: ignored, first line wins
    "BAC009S0724W0001 广州 深圳 甚至 出现 了 多 个 日 光 盘".encode(),
    "BAC009S0724W0002 零 三 年 到 去年".encode(),
    "BAC009S0764W0001 市场 化 的 手段".encode(),
    "BAC009S0764W0002 调控 房价".encode(),
    "BAC009S0999W0001 不 属于 任何 集合".encode(),  # no wav, unknown speaker: not in any split
]


def _make_tree(root, with_char_timestamps=True):
    audio_dir = os.path.join(root, "data_aishell", "wav")
    transcript_dir = os.path.join(root, "data_aishell", "transcript")
    os.makedirs(transcript_dir)
    rng = np.random.default_rng(0)
    for split, speakers in WAVS.items():
        for speaker, utts in speakers.items():
            os.makedirs(os.path.join(audio_dir, split, speaker))
            for utt in utts:
                soundfile.write(os.path.join(audio_dir, split, speaker, utt + ".wav"),
                                rng.uniform(-0.1, 0.1, 800).astype(np.float32), 16000, subtype="PCM_16")
    with open(os.path.join(transcript_dir, "aishell_transcript_v0.8.txt"), "wb") as f:
        f.write(b"\n".join(TRANSCRIPT_LINES) + b"\n")
    if with_char_timestamps:
        with open(os.path.join(transcript_dir, "aishell_char_timestamps.txt"), "w", encoding="utf-8") as f:
            f.write("BAC009S0764W0002 调 0.10 0.30 控 0.30 0.52 房 0.60 0.80 价 0.80 1.00\n")
            f.write("BAC009S0002W0002 也 0.00 0.20\n")
            f.write("BAC009S0764W0001 市 0.05 0.25\n")
    return audio_dir, transcript_dir


def test_prepare_aishell_library(tmp_path, caplog):
    audio_dir, transcript_dir = _make_tree(str(tmp_path))
    out = tmp_path / "data"
    with caplog.at_level(logging.INFO, logger="funasr_lite.data.aishell"):
        report = prepare_aishell(audio_dir, transcript_dir, str(out))
    assert report.written_splits == ["train", "dev", "test"]
    log = caplog.text
    transcript_path = os.path.join(transcript_dir, "aishell_transcript_v0.8.txt")

    train = report.splits["train"]
    assert train.num_wavs == 8
    assert train.kept == ["BAC009S0002W0001", "BAC009S0002W0002", "BAC009S0002W0003",
                          "BAC009S0003W0002", "BAC009S0003W0003"]
    assert train.without_transcript == ["BAC009S0002W0006", "BAC009S0003W0001"]
    assert train.empty_transcript == ["BAC009S0002W0007"]
    assert train.transcript_without_wav == ["BAC009S0002W0099"]
    assert train.summary() == (
        "train: 8 wavs, 5 kept, 2 without transcript (BAC009S0002W0006, BAC009S0003W0001), "
        "1 empty transcript (BAC009S0002W0007), 1 transcript without wav (BAC009S0002W0099), "
        "1 char_timestamps lines")
    assert report.splits["dev"].duplicate_wavs == ["BAC009S0002W0003"]
    assert report.splits["dev"].kept == ["BAC009S0724W0001", "BAC009S0724W0002"]
    assert report.splits["test"].transcript_without_wav == []
    assert report.not_in_any_split == ["BAC009S0999W0001"]
    assert report.transcript.duplicates == ["BAC009S0002W0001"]

    # every problem is named where it is
    assert f"{transcript_path}:6: not valid UTF-8" in log
    assert f"{transcript_path}:9: duplicate id BAC009S0002W0001 (first at line 1)" in log
    assert f"{transcript_path}:4: train: BAC009S0002W0007 has an empty transcript" in log
    assert "train: BAC009S0002W0006" in log and "has no transcript" in log
    assert f"{transcript_path}:5: train: BAC009S0002W0099 has a transcript but no wav" in log
    assert "dev: BAC009S0002W0003 is also in an earlier split" in log
    assert "1 not in any split" in log
    assert train.summary() in log

    text = read_kv(out / "train" / "text")
    assert text["BAC009S0002W0002"] == "也 成为 地方 政府 的 眼中 钉"  # segmentation kept
    assert text["BAC009S0002W0001"] == "而 对 楼市 成交 抑制 作用 最 大 的 限 购"  # first line won
    assert list(read_kv(out / "test" / "text")) == ["BAC009S0764W0001", "BAC009S0764W0002"]
    # transcripts are filtered per split: no dev/test text leaks into train
    train_text = (out / "train" / "text").read_text(encoding="utf-8")
    for line in TRANSCRIPT_LINES[9:]:
        assert line.decode().split(maxsplit=1)[1] not in train_text
    assert "BAC009S0724" not in (out / "test" / "text").read_text(encoding="utf-8")

    wav_scp = read_kv(out / "train" / "wav.scp")
    assert list(wav_scp) == train.kept
    for utt, path in wav_scp.items():
        assert os.path.isabs(path) and os.path.isfile(path) and path.endswith(f"/{utt}.wav")
    utt2spk = read_kv(out / "train" / "utt2spk")
    assert utt2spk["BAC009S0002W0003"] == "S0002" and utt2spk["BAC009S0003W0002"] == "S0003"
    assert read_kv(out / "train" / "spk2utt") == {
        "S0002": "BAC009S0002W0001 BAC009S0002W0002 BAC009S0002W0003",
        "S0003": "BAC009S0003W0002 BAC009S0003W0003",
    }
    assert (out / "test" / "char_timestamps").read_text(encoding="utf-8") == (
        "BAC009S0764W0001 市 0.05 0.25\n"
        "BAC009S0764W0002 调 0.10 0.30 控 0.30 0.52 房 0.60 0.80 价 0.80 1.00\n")
    assert read_kv(out / "train" / "char_timestamps") == {"BAC009S0002W0002": "也 0.00 0.20"}
    assert not (out / "dev" / "char_timestamps").exists()  # none of dev's utterances has a line


def test_many_problems_are_logged_first_few_then_counted(tmp_path, caplog):
    audio_dir = tmp_path / "wav"
    transcript_dir = tmp_path / "transcript"
    (audio_dir / "train" / "S0100").mkdir(parents=True)
    transcript_dir.mkdir()
    utts = [f"BAC009S0100W{i:04d}" for i in range(12)]
    for utt in utts:
        (audio_dir / "train" / "S0100" / f"{utt}.wav").write_bytes(b"")
    (transcript_dir / "aishell_transcript_v0.8.txt").write_text(f"{utts[0]} 你 好\n", encoding="utf-8")
    with caplog.at_level(logging.INFO, logger="funasr_lite.data.aishell"):
        report = prepare_aishell(str(audio_dir), str(transcript_dir), str(tmp_path / "data"))
    assert report.written_splits == ["train"]
    assert caplog.text.count("has no transcript") == 5
    assert "... and 6 more: train: wavs without transcript (11 in all)" in caplog.text
    assert report.splits["train"].summary().startswith(
        "train: 12 wavs, 1 kept, 11 without transcript (BAC009S0100W0001, BAC009S0100W0002, "
        "BAC009S0100W0003, ...)")
    assert "no such directory" in caplog.text  # dev and test are missing: reported, skipped
    assert not (tmp_path / "data" / "dev").exists()
    assert not (tmp_path / "data" / "train" / "char_timestamps").exists()


def test_missing_transcript_file_is_an_error(tmp_path):
    audio_dir, transcript_dir = _make_tree(str(tmp_path))
    os.remove(os.path.join(transcript_dir, "aishell_transcript_v0.8.txt"))
    with pytest.raises(FileNotFoundError, match="aishell_transcript_v0.8.txt"):
        prepare_aishell(audio_dir, transcript_dir, str(tmp_path / "data"))


def test_data_prep_script(tmp_path, repo_root):
    if not shutil.which("fix_data_dir.sh", path=os.path.join(repo_root, "utils")):
        pytest.fail("utils/fix_data_dir.sh is missing: the script under test needs it")
    audio_dir, transcript_dir = _make_tree(str(tmp_path), with_char_timestamps=False)
    out = tmp_path / "data"
    result = subprocess.run(["bash", SCRIPT, audio_dir, transcript_dir, str(out)],
                            cwd=repo_root, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert ("train: 8 wavs, 5 kept, 2 without transcript (BAC009S0002W0006, BAC009S0003W0001), "
            "1 empty transcript (BAC009S0002W0007)") in result.stderr
    assert "aishell_transcript_v0.8.txt:6: not valid UTF-8" in result.stderr
    for split, count in (("train", 5), ("dev", 2), ("test", 2)):
        for name in ("wav.scp", "text", "utt2spk", "spk2utt"):
            assert (out / split / name).is_file(), f"{split}/{name}"
        assert len(read_kv(out / split / "wav.scp")) == count
        lines = (out / split / "text").read_text(encoding="utf-8").splitlines()
        assert lines == sorted(lines, key=lambda s: s.encode())
        assert not (out / split / "char_timestamps").exists()


def test_data_prep_script_usage_and_missing_dirs(tmp_path, repo_root):
    result = subprocess.run(["bash", SCRIPT, "a", "b"], cwd=repo_root, capture_output=True, text=True)
    assert result.returncode != 0 and "Usage" in result.stderr
    result = subprocess.run(["bash", SCRIPT, str(tmp_path / "nope"), str(tmp_path), str(tmp_path / "d")],
                            cwd=repo_root, capture_output=True, text=True)
    assert result.returncode != 0 and f"no such directory: {tmp_path / 'nope'}" in result.stderr
