"""egs/aishell1/local/run_data2vec_study.sh end to end on the tiny synthetic corpus (a copy of
egs/aishell1 after run.sh stages -1..2), with options that shrink the models to seconds: the 10%
subset, pretraining on all train audio, both fine-tunings, decoding, the table, and a rerun that
redoes nothing."""

import os
import subprocess

import pytest
import torch

from funasr_lite.data.datadir import read_kv
from recipe_copy import copy_recipe  # tests/recipe_copy.py

ENCODER = " ".join([
    "++encoder_conf.conv_feature_layers='[(16,2,2)]+[(16,2,2)]'", "++encoder_conf.encoder_layers=2",
    "++encoder_conf.encoder_embed_dim=16", "++encoder_conf.encoder_ffn_embed_dim=32",
    "++encoder_conf.encoder_attention_heads=2", "++encoder_conf.pos_conv_depth=2", "++encoder_conf.conv_pos=6",
    "++encoder_conf.conv_pos_groups=2", "++encoder_conf.average_top_k_layers=2", "++dataset_conf.batch_bins=3000",
    "++dataset_conf.num_workers=0", "++train_conf.log_interval=2",
])
PRETRAIN = f"{ENCODER} ++train_conf.max_steps=6 ++encoder_conf.ema_anneal_end_step=4"
FINETUNE = " ".join([ENCODER, "++decoder_conf.linear_units=32", "++decoder_conf.num_blocks=1",
                     "++decoder_conf.attention_heads=2", "++predictor_conf.idim=16", "++train_conf.max_epoch=2",
                     "++scheduler_conf.warmup_steps=10"])
ARGS = ["--pretrain_args", PRETRAIN, "--ft_args", FINETUNE, "--num_avg", "2"]


@pytest.fixture(scope="module")
def study(tmp_path_factory, repo_root):
    work = tmp_path_factory.mktemp("aishell1")
    copy_recipe(work, repo_root)
    env = dict(os.environ, FUNASR_LITE_ROOT=repo_root, FUNASR_LITE_NO_PROGRESS="1", OMP_NUM_THREADS="1")
    proc = subprocess.run(["bash", "run.sh", "--stage", "-1", "--stop_stage", "2", "--corpus_size", "tiny",
                           "--nj", "2"], cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    proc = subprocess.run(["bash", "local/run_data2vec_study.sh", *ARGS], cwd=work, env=env, capture_output=True,
                          text=True, timeout=600)
    return work, env, proc


def test_the_study_runs_and_writes_its_table(study):
    work, _, proc = study
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    exp = work / "exp" / "data2vec_study"
    # A seeded 10% of train's utterances (7 of the tiny corpus's 72), with train's features.
    train, subset = read_kv(work / "data" / "train" / "text"), read_kv(work / "data" / "train_10pct" / "text")
    assert len(subset) == round(len(train) / 10) and set(subset) < set(train)
    assert set(read_kv(work / "data" / "train_10pct" / "feats.scp")) == set(subset)
    # Pretraining read all of train's audio and no transcript: no token list in its config.
    config = (exp / "pretrain" / "config.yaml").read_text(encoding="utf-8")
    assert "model: data2vec" in config and "token_list" not in config
    assert (exp / "pretrain" / "train.done").read_text().split()[3] == "6"
    assert f"{len(train)} utterances kept" in (exp / "pretrain" / "train.log").read_text(encoding="utf-8")
    # The pretrained run started from the pretraining's encoder, the scratch run did not.
    assert "init_encoder" in (exp / "ft_pretrained" / "config.yaml").read_text(encoding="utf-8")
    assert "init_encoder" not in (exp / "ft_scratch" / "config.yaml").read_text(encoding="utf-8")
    assert "skipped 3 pretraining-only tensors" in (exp / "ft_pretrained" / "train.log").read_text(encoding="utf-8")
    scratch = torch.load(exp / "ft_scratch" / "epoch_1.pt", weights_only=True)["model"]
    assert "encoder.encoder.layers.0.fc1.weight" in scratch
    # The same budget: the same number of updates in both fine-tunings.
    steps = {run: (exp / run / "train.done").read_text().split()[3] for run in ("ft_pretrained", "ft_scratch")}
    assert steps["ft_pretrained"] == steps["ft_scratch"]
    for run in ("ft_pretrained", "ft_scratch"):
        for x in ("dev", "test"):
            assert set(read_kv(exp / run / f"decode_{x}_greedy" / "1best_recog" / "text", allow_empty_value=True)) \
                == set(read_kv(work / "data" / x / "text"))
    rows = dict(line.split("\t", 1) for line in (exp / "table.tsv").read_text().splitlines())
    assert rows["run"] == "dev_cer\ttest_cer"
    for run in ("ft_pretrained", "ft_scratch"):
        dev, test = (float(v) for v in rows[run].split("\t"))
        assert dev >= 0 and test >= 0
    assert rows["pretrain_updates"] == "6" and int(rows["pretrain_wall_seconds"]) >= 0


def test_a_rerun_redoes_nothing(study):
    work, env, first = study
    assert first.returncode == 0
    exp = work / "exp" / "data2vec_study"
    before = (exp / "ft_scratch" / "model.avg2.pt").stat().st_mtime_ns
    proc = subprocess.run(["bash", "local/run_data2vec_study.sh", *ARGS], cwd=work, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "ft_scratch: trained" in proc.stderr and "decoding" not in proc.stderr
    assert (exp / "ft_scratch" / "model.avg2.pt").stat().st_mtime_ns == before
    assert len((exp / "pretrain" / "wall_seconds").read_text().split()) == 1
