"""The engine against the trainers it replaced (commit b7efa15): the same tiny experiments trained by
both give equal checkpoints (tests/train/engine_parity.py; the old code is taken from git).

ASR: epoch_1.pt, epoch_2.pt and model.avg2.pt equal in every entry. LM and punctuation: model,
optimizer, scheduler and RNG states equal once the old trainers get the engine's one seeding rule
(re-seed after building the model); as they were, only that re-seed differs (see the script)."""

import os
import subprocess

import pytest

from engine_parity import REPO_ROOT, run_checks

OLD_COMMIT = "b7efa15"


@pytest.fixture(scope="module")
def old_root(tmp_path_factory):
    found = subprocess.run(["git", "cat-file", "-e", f"{OLD_COMMIT}^{{commit}}"], cwd=REPO_ROOT, capture_output=True)
    # a full clone has it (CI clones main whole); a shallow clone must fetch it: this check is not optional
    assert found.returncode == 0, f"commit {OLD_COMMIT} is not in this checkout's history (git fetch --unshallow)"
    root = tmp_path_factory.mktemp("old_code")
    archive = subprocess.run(["git", "archive", OLD_COMMIT, "funasr_lite"], cwd=REPO_ROOT, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(root)], input=archive.stdout, check=True)
    assert os.path.isfile(root / "funasr_lite" / "train" / "trainer.py")
    return str(root)


def test_engine_reproduces_the_old_trainers(old_root, tmp_path):
    report = run_checks(old_root, str(tmp_path), aligned_only=True)
    for name in ("epoch_1.pt", "epoch_2.pt", "model.avg2.pt"):
        assert report["asr"][name]["differences"] == [], (name, report["asr"][name])
    for task in ("lm", "punc"):
        for checkpoint, parts in report[task].items():
            assert parts == {"model": [], "optimizer": [], "scheduler": [], "rng": []}, (task, checkpoint)
