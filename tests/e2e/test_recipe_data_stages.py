"""The recipe's data stages (-1..2) end to end on the tiny synthetic corpus, in a copy of egs/aishell1."""

import os
import shutil
import subprocess

import pytest

from funasr_lite.data.datadir import read_kv
from funasr_lite.frontend.cmvn import read_am_mvn


@pytest.fixture(scope="module")
def recipe(tmp_path_factory, repo_root):
    work = tmp_path_factory.mktemp("aishell1")
    src = os.path.join(repo_root, "egs", "aishell1")
    for name in ("run.sh", "cmd.sh", "path.sh"):
        shutil.copy(os.path.join(src, name), work / name)
    for name in ("local", "conf"):
        shutil.copytree(os.path.join(src, name), work / name)
    os.symlink(os.path.join(repo_root, "utils"), work / "utils")
    env = dict(os.environ, FUNASR_LITE_ROOT=repo_root, FUNASR_LITE_NO_PROGRESS="1")
    proc = subprocess.run(
        ["bash", "run.sh", "--stage", "-1", "--stop_stage", "2", "--corpus_size", "tiny", "--nj", "2"],
        cwd=work, env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return work, env


def test_data_dirs_are_complete_and_consistent(recipe):
    work, _ = recipe
    seen_text = {}
    for split in ("train", "dev", "test"):
        d = work / "data" / split
        wav = read_kv(d / "wav.scp")
        text = read_kv(d / "text")
        feats = read_kv(d / "feats.scp")
        frames = read_kv(d / "utt2num_frames")
        assert len(wav) > 0
        assert set(wav) == set(text) == set(feats) == set(frames)
        assert list(text) == sorted(text)
        seen_text[split] = {t.replace(" ", "") for t in text.values()}
    # no sentence leaks from dev/test into train (transcript filtered per split)
    assert not (seen_text["train"] & seen_text["dev"])
    assert not (seen_text["train"] & seen_text["test"])


def test_cmvn_and_tokens(recipe):
    work, _ = recipe
    shift, scale = read_am_mvn(work / "data" / "train" / "am.mvn")
    assert shift.shape == (560,) and scale.shape == (560,)
    tokens = (work / "data" / "lang_char" / "tokens.txt").read_text(encoding="utf-8").split("\n")
    tokens = [t for t in tokens if t]
    assert tokens[:3] == ["<blank>", "<s>", "</s>"] and tokens[-1] == "<unk>"
    train_chars = set()
    for t in read_kv(work / "data" / "train" / "text").values():
        train_chars.update(t.replace(" ", ""))
    assert set(tokens[3:-1]) == train_chars


def test_rerun_of_feature_stage_is_a_noop(recipe):
    work, env = recipe
    before = (work / "data" / "test" / "feats.scp").stat().st_mtime_ns
    proc = subprocess.run(["bash", "run.sh", "--stage", "1", "--stop_stage", "1", "--corpus_size", "tiny"],
                          cwd=work, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "features exist" in proc.stderr
    assert (work / "data" / "test" / "feats.scp").stat().st_mtime_ns == before
