"""local/run_speaker.sh stages 0..3 end to end on a toy data layout (stored features only: a few
speakers whose frames differ in mean), in a copy of egs/aishell1: sets and trials, training,
model dirs, EER of the trained and the untrained model; a rerun does nothing again."""

import json
import os
import subprocess

import pytest
import yaml

from funasr_lite import SpeakerVerifier
from funasr_lite.data.datadir import read_kv
from funasr_lite.data.speaker_trials import read_trials
from recipe_copy import copy_recipe  # tests/recipe_copy.py
from speaker_data import TINY_MODEL_OVERRIDES, write_speaker_data_dir  # tests/speaker_data.py

TRAIN_ARGS = " ".join([*TINY_MODEL_OVERRIDES, "++train_conf.crop_frames=16", "++train_conf.batch_size=8",
                       "++train_conf.max_epoch=3", "++optim_conf.lr=0.01", "++train_conf.log_interval=2"])
ARGS = ["--heldout_per_speaker", "2", "--num_trials", "60", "--nj", "1", "--device", "cpu",
        "--train_args", TRAIN_ARGS]


@pytest.fixture(scope="module")
def recipe(tmp_path_factory, repo_root):
    work = tmp_path_factory.mktemp("aishell1_speaker")
    copy_recipe(work, repo_root)
    write_speaker_data_dir(work / "data" / "train", speakers=5, per_speaker=8, seed=1, first_speaker=2)
    write_speaker_data_dir(work / "data" / "dev", speakers=2, per_speaker=6, seed=2, first_speaker=724)
    write_speaker_data_dir(work / "data" / "test", speakers=2, per_speaker=6, seed=3, first_speaker=764)
    env = dict(os.environ, FUNASR_LITE_ROOT=repo_root, FUNASR_LITE_NO_PROGRESS="1", OMP_NUM_THREADS="1")
    proc = subprocess.run(["bash", "local/run_speaker.sh", *ARGS], cwd=work, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return work, env, proc


def test_sets_and_trials_hold_out_the_right_utterances(recipe):
    work, _, _ = recipe
    sv = work / "data" / "sv_xvector"
    train, valid = read_kv(sv / "train" / "utt2spk"), read_kv(sv / "valid" / "utt2spk")
    assert len(valid) == 10 and len(train) == 30 and not set(train) & set(valid)
    assert set(train.values()) == set(valid.values()) and len(set(train.values())) == 5
    evaluation = read_kv(sv / "eval" / "utt2spk")
    assert set(evaluation.values()) == {"S0724", "S0725", "S0764", "S0765"}  # dev + test voices only
    for name in ("train", "valid", "eval"):
        assert (sv / name / "fbank.json").read_text() == (work / "data" / "train" / "fbank.json").read_text()
        assert set(read_kv(sv / name / "feats.scp")) == set(read_kv(sv / name / "utt2spk"))
    trials = read_trials(sv / "eval" / "trials")
    assert len(trials) == 60 and sum(label for label, _, _ in trials) == 30
    assert all(label == int(evaluation[e] == evaluation[t]) for label, e, t in trials)


def test_training_model_dirs_and_eer_of_both_models(recipe):
    work, _, proc = recipe
    exp = work / "exp" / "xvector"
    assert (exp / "train.done").is_file() and len(json.loads((exp / "best.json").read_text())["history"]) == 3
    for name, kind in (("model_dir", "trained"), ("model_dir_untrained", "untrained")):
        assert sorted(os.listdir(exp / name)) == [".done", "config.yaml", "model.pt"]
        verifier = SpeakerVerifier(str(exp / name))
        assert verifier.loaded.speakers == [f"S{i:04d}" for i in range(2, 7)]
        config = yaml.safe_load((exp / name / "config.yaml").read_text(encoding="utf-8"))
        assert config["encoder"] == "resnet34" and config["token_list"] == verifier.loaded.speakers
        assert not {"train_conf", "optim", "train_data", "loss"} & set(config)  # the model, not the training
        result = json.loads((exp / f"score_{kind}" / "eer.json").read_text())
        assert 0.0 <= result["eer"] <= 1.0 and result["trials"] == 60 and result["target_trials"] == 30
        assert result["p_target"] == 0.01 and 0.0 <= result["min_dcf"] <= 1.0
        text = (exp / f"score_{kind}" / "eer.txt").read_text()
        assert "EER " in text and "minDCF(p_target=0.01) " in text
        assert len((exp / f"score_{kind}" / "scores").read_text().splitlines()) == 60
        assert f"{kind}: EER " in proc.stderr
    trained = SpeakerVerifier(str(exp / "model_dir")).embed(str(work / "data" / "sv_xvector" / "eval"))
    untrained = SpeakerVerifier(str(exp / "model_dir_untrained")).embed(str(work / "data" / "sv_xvector" / "eval"))
    assert trained[0].shape == (6,) and not (trained[0] == untrained[0]).all()


def test_rerun_does_nothing_again(recipe):
    work, env, _ = recipe
    exp = work / "exp" / "xvector"
    before = {p: os.stat(p).st_mtime_ns for p in (exp / "model.pt", exp / "score_trained" / "eer.txt",
                                                   work / "data" / "sv_xvector" / "eval" / "trials")}
    proc = subprocess.run(["bash", "local/run_speaker.sh", *ARGS], cwd=work, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "stage 0: data/sv_xvector exists" in proc.stderr and "model_dir exists" in proc.stderr
    assert "score data/sv_xvector/eval/trials" not in proc.stderr and "trained: EER " in proc.stderr
    assert {p: os.stat(p).st_mtime_ns for p in before} == before


def test_help_lists_every_option(repo_root):
    proc = subprocess.run(["bash", "local/run_speaker.sh", "--help"], cwd=os.path.join(repo_root, "egs", "aishell1"),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    for option in ("--stage 0", "--heldout_per_speaker 8", "--num_trials 4000", "--sv_data data/sv_xvector",
                   "--train_config conf/xvector_demo.yaml", "--device auto"):
        assert option in proc.stdout
