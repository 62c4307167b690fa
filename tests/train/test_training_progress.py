"""Training progress: [progress] lines (epoch/step, ETA, last validation CER) and epochs.jsonl."""
import json
import os
import re

import pytest
import torch

from funasr_lite.train.train_log import RunProgress, append_epoch_record, read_epoch_records
from funasr_lite.train.tasks.asr import run_training
from funasr_lite.train.config import resolve_training_config
from funasr_lite.utils.progress import last_progress_message
from train_testkit import make_experiment

torch.set_num_threads(1)


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_run_progress_eta_from_the_pace_so_far():
    clock = FakeClock()
    progress = RunProgress(clock=clock)
    assert progress.message(1, 3, batches_left=30, position=0, epoch_batches=10, step=0) == (
        "[progress] epoch 1/3 batch 0/10 step 0, elapsed 0:00, ETA ?")
    for _ in range(4):
        progress.batch_done()
    clock.now += 20  # 4 batches in 20 s: 26 left take 130 s
    line = progress.message(1, 3, batches_left=26, position=4, epoch_batches=10, step=2,
                            last_valid={"epoch": 1, "cer": 41.23456, "loss": 2.0}, metric="cer")
    assert line == "[progress] epoch 1/3 batch 4/10 step 2, elapsed 0:20, ETA 2:10, last valid cer 41.23 (epoch 1)"
    assert not progress.due(60.0)
    clock.now += 60
    assert progress.due(60.0)


def test_epoch_records_last_one_per_epoch_wins_and_bad_lines_are_named(tmp_path):
    append_epoch_record(str(tmp_path), {"epoch": 1, "train": {"loss": 3.0}, "valid": {"cer": float("inf")}})
    append_epoch_record(str(tmp_path), {"epoch": 2, "train": {"loss": 2.0}, "valid": {}})
    append_epoch_record(str(tmp_path), {"epoch": 1, "train": {"loss": 2.5}, "valid": {"cer": 50.0}})  # a rerun
    records = read_epoch_records(str(tmp_path / "epochs.jsonl"))
    assert [(r["epoch"], r["train"]["loss"]) for r in records] == [(1, 2.5), (2, 2.0)]
    append_epoch_record(str(tmp_path), {"epoch": 3, "valid": {"cer": float("nan")}})
    assert read_epoch_records(str(tmp_path / "epochs.jsonl"))[-1]["valid"]["cer"] is None  # JSON null
    with open(tmp_path / "epochs.jsonl", "a") as f:
        f.write("{not json\n")
    with pytest.raises(ValueError, match=r"epochs.jsonl:5: not an epoch record"):
        read_epoch_records(str(tmp_path / "epochs.jsonl"))


def test_training_writes_progress_lines_and_one_epoch_record_per_epoch(tmp_path):
    paths = make_experiment(tmp_path)
    config = resolve_training_config(
        paths["config"], ["++train_conf.max_epoch=2", "++train_conf.log_interval=1"],
        token_list=paths["token_list"], cmvn_file=paths["cmvn_file"], train_data=paths["train_data"],
        valid_data=paths["valid_data"], output_dir=paths["output_dir"])
    steps = []
    assert run_training(config, device="cpu", step_callback=steps.append)
    exp = paths["output_dir"]
    with open(os.path.join(exp, "best.json")) as f:
        history = json.load(f)["history"]
    records = read_epoch_records(os.path.join(exp, "epochs.jsonl"))
    assert [r["epoch"] for r in records] == [1, 2]
    for record, entry in zip(records, history):
        assert record["valid"] == {key: value for key, value in entry.items() if key not in ("epoch", "step")}
        assert record["step"] == entry["step"]
        assert set(record["train"]) >= {"loss", "acc"} and record["seconds"] > 0 and record["lr"] > 0
    # Epoch 2's train loss is the weighted mean of its batches' losses; here: finite and positive.
    assert records[1]["train"]["loss"] > 0
    with open(os.path.join(exp, "train.log"), encoding="utf-8") as f:
        lines = [line for line in f if "[progress] " in line]
    first_step = [line for line in lines if re.search(r"epoch 1/2 batch \d+/\d+ step 1,", line)]
    assert first_step and "ETA " in first_step[0] and "last valid" not in first_step[0]
    cer_1 = history[0]["cer"]
    in_epoch_2 = [line for line in lines if "epoch 2/2 batch" in line]
    assert in_epoch_2 and all(f"last valid cer {cer_1:.4g} (epoch 1)" in line for line in in_epoch_2)
    # The last line (end of training): nothing left, so ETA 0:00, and epoch 2's CER.
    last = last_progress_message(os.path.join(exp, "train.log"))
    assert last.startswith(f"epoch 2/2 step {steps[-1]['step']}, elapsed ")
    assert "ETA 0:00" in last and f"last valid cer {history[1]['cer']:.4g} (epoch 2)" in last


def test_a_run_bounded_by_max_steps_ends_with_eta_zero(tmp_path):
    """The end-of-epoch [progress] line counts what max_steps leaves, not max_epoch's epochs (a data2vec
    pretraining of max_epoch 100 and max_steps 3000 said "ETA 10:37:46" after its 6th epoch)."""
    paths = make_experiment(tmp_path)
    config = resolve_training_config(
        paths["config"], ["++train_conf.max_epoch=50", "++train_conf.max_steps=2", "++train_conf.log_interval=1"],
        token_list=paths["token_list"], cmvn_file=paths["cmvn_file"], train_data=paths["train_data"],
        valid_data=paths["valid_data"], output_dir=paths["output_dir"])
    steps = []
    assert run_training(config, device="cpu", step_callback=steps.append)
    assert steps[-1]["step"] == 2
    last = last_progress_message(os.path.join(paths["output_dir"], "train.log"))
    assert last.startswith("epoch 1/50 step 2, elapsed ") and "ETA 0:00" in last, last
