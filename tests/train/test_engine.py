"""The engine's policies are the same for every task (funasr_lite.train.engine): the non-finite
policy, retention + the final model.avg{N}.pt, resume (mid-epoch too) and the train.done rule,
checked on the ASR, LM, punctuation, pretraining and speaker tasks alike (the pretraining task's own
resume test: tests/train/test_pretrain_task.py)."""

import json
import os
import random

import pytest
import torch

from funasr_lite.train.config import resolve_training_config
from funasr_lite.train.engine import NonFiniteLossError, run_task
from funasr_lite.train.tasks.asr import AsrTask
from funasr_lite.train.tasks.lm import LmTask, resolve_lm_config
from funasr_lite.train.tasks.pretrain import PretrainTask, resolve_pretraining_config
from funasr_lite.train.tasks.punc import PuncTask, resolve_punc_config
from funasr_lite.train.tasks.speaker import SpeakerTask, resolve_speaker_config
from funasr_lite.train.text_batches import EpochBatchSampler
from pretrain_testkit import make_audio_dirs, write_pretrain_config
from speaker_data import TINY_MODEL_OVERRIDES, write_speaker_data_dir  # tests/speaker_data.py
from train_testkit import make_experiment

LM_CORPUS = ["甲乙丙丁", "乙丙丁甲乙", "丙丁甲", "丁甲乙丙丁甲"]
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PUNC_CONFIG = os.path.join(REPO, "egs", "aishell1", "conf", "punc.yaml")
SPEAKER_CONFIG = os.path.join(REPO, "egs", "aishell1", "conf", "xvector_demo.yaml")


@pytest.fixture(autouse=True)
def one_thread():
    torch.set_num_threads(1)


def _asr(tmp_path, overrides):
    paths = make_experiment(tmp_path / "data")
    config = resolve_training_config(paths["config"], ["++train_conf.validate_cer=false", "++train_conf.best_metric=loss",
                                                       *overrides],
                                     token_list=paths["token_list"], cmvn_file=paths["cmvn_file"],
                                     train_data=paths["train_data"], valid_data=paths["valid_data"],
                                     output_dir=str(tmp_path / "exp"))
    return AsrTask(config), config


def _lm(tmp_path, overrides):
    root = tmp_path / "data"
    root.mkdir(parents=True, exist_ok=True)
    (root / "tokens.txt").write_text("\n".join(["<blank>", "<s>", "</s>", "丁", "丙", "乙", "甲", "<unk>"]) + "\n",
                                     encoding="utf-8")
    (root / "text").write_text("".join(f"u{i:03d} {LM_CORPUS[i % 4]}\n" for i in range(24)), encoding="utf-8")
    (root / "valid").write_text("v1 甲乙丙丁\nv2 丙丁甲\n", encoding="utf-8")
    base = ["++lm_conf={embed_unit: 8, att_unit: 16, head: 2, unit: 16, layer: 1, dropout_rate: 0.1}",
            "++optim_conf.lr=0.005", "++scheduler=constantlr", "++train_conf.batch_tokens=30", "++seed=3"]
    config = resolve_lm_config(None, [*base, *overrides], str(root / "tokens.txt"), str(root / "text"),
                               str(root / "valid"))
    return LmTask(config), config


def _punc(tmp_path, overrides):
    root = tmp_path / "data"
    root.mkdir(parents=True, exist_ok=True)
    rng = random.Random(0)
    words = ["我们", "今天", "工作", "人民", "发展"]
    lines = ["".join(rng.choice(words) + rng.choice(["，", "。", "？", ""]) for _ in range(6)) + "。" for _ in range(40)]
    (root / "train.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (root / "valid.txt").write_text("\n".join(lines[:5]) + "\n", encoding="utf-8")
    base = ["++encoder_conf.input_size=8", "++encoder_conf.output_size=8", "++model_conf.embed_unit=8",
            "++model_conf.att_unit=8", "++encoder_conf.linear_units=16", "++encoder_conf.num_blocks=1",
            "++encoder_conf.kernel_size=3", "++optim_conf.lr=0.01", "++train_conf.batch_tokens=100",
            "++train_conf.max_len=20", "++token_min_count=1", "++train_conf.max_epoch=2"]
    config = resolve_punc_config(PUNC_CONFIG, [*base, *overrides], str(root / "train.txt"), str(root / "valid.txt"))
    return PuncTask(config), config


def _pretrain(tmp_path, overrides):
    paths = make_audio_dirs(tmp_path / "data")
    config = resolve_training_config(write_pretrain_config(tmp_path), overrides, cmvn_file=paths["cmvn"],
                                     train_data=paths["train"], valid_data=paths["dev"],
                                     output_dir=str(tmp_path / "exp"))
    return PretrainTask(resolve_pretraining_config(config)), config


def _speaker(tmp_path, overrides):
    root = tmp_path / "data"
    write_speaker_data_dir(root / "train", speakers=4, per_speaker=4, seed=1)  # 16 crops: 4 batches of 4
    write_speaker_data_dir(root / "valid", speakers=4, per_speaker=2, seed=2)
    base = [*TINY_MODEL_OVERRIDES, "++train_conf.crop_frames=12", "++train_conf.batch_size=4",
            "++optim_conf.lr=0.01", "++scheduler=constantlr", "++scheduler_conf={}", "++train_conf.max_epoch=2",
            "++seed=5"]
    config = resolve_speaker_config(SPEAKER_CONFIG, [*base, *overrides], str(root / "train"), str(root / "valid"))
    return SpeakerTask(config, SPEAKER_CONFIG), config


TASKS = {"asr": _asr, "lm": _lm, "punc": _punc, "pretrain": _pretrain, "speaker": _speaker}
TASK_CLASSES = {"asr": AsrTask, "lm": LmTask, "punc": PuncTask, "pretrain": PretrainTask, "speaker": SpeakerTask}


def _run(kind, tmp_path, overrides=(), **kwargs):
    task, config = TASKS[kind](tmp_path, list(overrides))
    return run_task(task, config, str(tmp_path / "exp"), device="cpu", **kwargs), task


def _weights(path):
    state = torch.load(path, weights_only=True)
    return state.get("model", state)


def _equal(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("kind", sorted(TASKS))
def test_one_non_finite_policy_for_every_task(kind, tmp_path, monkeypatch, caplog):
    task_class = TASK_CLASSES[kind]
    real = task_class.compute_loss
    calls = {"train": 0}

    def loss_nan_on_second_training_batch(self, model, batch):
        loss, stats, weight = real(self, model, batch)
        if model.training:
            calls["train"] += 1
            if calls["train"] == 2:
                loss = loss * float("nan")
        return loss, stats, weight

    monkeypatch.setattr(task_class, "compute_loss", loss_nan_on_second_training_batch)
    overrides = ["++train_conf.max_epoch=1", "++train_conf.oom_check=false", "++train_conf.avg_nbest_model=1"]
    with caplog.at_level("WARNING"):
        result, task = _run(kind, tmp_path / "one", overrides)
    assert result.nonfinite_updates == 1 and result.epochs[0]["skipped_updates"] == 1
    warnings = [r.getMessage() for r in caplog.records if "non-finite loss at step 2 (epoch 1)" in r.getMessage()]
    assert len(warnings) == 1 and f"{task.ITEM_NAME}: " in warnings[0]
    exp = tmp_path / "one" / "exp"
    latest = torch.load(exp / "checkpoint_latest.pt", weights_only=True)
    assert latest["nonfinite_total"] == 1
    assert all(torch.isfinite(v).all() for v in _weights(exp / "model.avg1.pt").values() if v.is_floating_point())
    # Every loss non-finite: more than max_consecutive_nonfinite in a row stops the run.
    calls["train"] = 1
    monkeypatch.setattr(task_class, "compute_loss",
                        lambda self, model, batch: (lambda out: (out[0] * float("nan"), out[1], out[2]))(
                            real(self, model, batch)))
    with pytest.raises(NonFiniteLossError, match=r"3 consecutive updates had a non-finite loss"):
        _run(kind, tmp_path / "abort", [*overrides, "++train_conf.max_consecutive_nonfinite=2"])
    assert not (tmp_path / "abort" / "exp" / "train.done").exists()


@pytest.mark.parametrize("kind", ["lm", "punc", "speaker"])
def test_retention_and_final_model_apply_to_the_small_tasks(kind, tmp_path):
    result, _ = _run(kind, tmp_path, ["++train_conf.max_epoch=4", "++train_conf.keep_nbest_models=1",
                                      "++train_conf.oom_check=true"])
    exp = tmp_path / "exp"
    best = json.loads((exp / "best.json").read_text(encoding="utf-8"))
    metric = best["metric"]
    assert metric == {"lm": "ppl", "punc": "f1", "speaker": "eer"}[kind]
    values = {r["epoch"]: r["valid"][metric] for r in result.epochs}
    sign = 1 if best["lower_is_better"] else -1
    best_epoch = min(values, key=lambda e: (sign * values[e], -e))
    assert best["ranking"][0]["epoch"] == best_epoch == result.best_epoch
    kept = sorted(int(name[6:-3]) for name in os.listdir(exp) if name.startswith("epoch_"))
    assert kept == sorted({best_epoch, 4})
    final = _weights(exp / "model.avg1.pt")
    assert _equal(final, _weights(exp / f"epoch_{best_epoch}.pt"))
    if kind in ("punc", "speaker"):  # the model dir's weights are the final model
        assert _equal(_weights(exp / "model.pt"), final)
    if kind == "punc":
        assert (exp / "tokens.json").is_file()
    assert (exp / "train.done").read_text().startswith("epoch 4 step ")


@pytest.mark.parametrize("kind", ["lm", "punc", "speaker"])
def test_small_tasks_resume_mid_epoch_exactly(kind, tmp_path):
    """New with the engine: a text or speaker task killed between epoch ends resumes from checkpoint_latest.pt
    (save_every_steps) to the uninterrupted run's weights, bit for bit."""
    overrides = ["++train_conf.max_epoch=2", "++train_conf.save_every_steps=2"]
    straight, _ = _run(kind, tmp_path / "straight", overrides)

    class Killed(Exception):
        pass

    def kill_at_step_3(update):
        if update["step"] == 3:
            raise Killed

    with pytest.raises(Killed):
        _run(kind, tmp_path / "killed", overrides, step_callback=kill_at_step_3)
    latest = torch.load(tmp_path / "killed" / "exp" / "checkpoint_latest.pt", weights_only=True)
    assert latest["step"] == 2 and latest["sampler"]["position"] == 2 and latest["epoch"] == 1
    resumed, _ = _run(kind, tmp_path / "killed", overrides)
    assert resumed.trained
    for epoch in (1, 2):
        assert _equal(_weights(tmp_path / "straight" / "exp" / f"epoch_{epoch}.pt"),
                      _weights(tmp_path / "killed" / "exp" / f"epoch_{epoch}.pt"))
    assert [r["valid"] for r in resumed.epochs] == [r["valid"] for r in straight.epochs]


def test_train_done_stops_a_rerun_until_max_epoch_grows(tmp_path):
    first, _ = _run("lm", tmp_path, ["++train_conf.max_epoch=1"])
    assert first.trained and [r["epoch"] for r in first.epochs] == [1]
    again, _ = _run("lm", tmp_path, ["++train_conf.max_epoch=1"])
    assert not again.trained and [r["epoch"] for r in again.epochs] == [1]
    more, _ = _run("lm", tmp_path, ["++train_conf.max_epoch=2"])
    assert more.trained and [r["epoch"] for r in more.epochs] == [1, 2]
    assert (tmp_path / "exp" / "train.done").read_text().startswith("epoch 2 ")


def test_epoch_batch_sampler_resumes_the_same_batches():
    items = list(range(10))

    def plan(epoch, rng):
        return items, [[i] for i in range(10)]

    def collate(items, indices):
        return tuple(items[i] for i in indices)

    sampler = EpochBatchSampler(plan, collate, seed=5, rank=1, world_size=3)
    sampler.set_epoch(2)
    full = list(sampler)
    assert len(full) == 4  # 10 batches padded to 12, every 3rd from rank 1
    sampler.advance(3)
    resumed = EpochBatchSampler(plan, collate, seed=5, rank=1, world_size=3)
    resumed.load_state_dict(sampler.state_dict())
    assert list(resumed) == full[3:]
    other_epoch = EpochBatchSampler(plan, collate, seed=5, rank=1, world_size=3)
    other_epoch.set_epoch(3)
    assert list(other_epoch) != full
