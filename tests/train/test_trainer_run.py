import glob
import json
import logging
import os

import kaldiio
import numpy as np
import pytest
import torch

from funasr_lite.train.engine import NonFiniteLossError
from funasr_lite.train.tasks.asr import char_errors, run_training
from funasr_lite.train.config import resolve_training_config
from train_testkit import make_experiment

torch.set_num_threads(1)


def _config(paths, overrides=()):
    return resolve_training_config(
        paths["config"],
        list(overrides),
        token_list=paths["token_list"],
        cmvn_file=paths["cmvn_file"],
        train_data=paths["train_data"],
        valid_data=paths["valid_data"],
        output_dir=paths["output_dir"],
    )


def _train(paths, overrides=()):
    updates = []
    done = run_training(_config(paths, overrides), device="cpu", step_callback=updates.append)
    return done, updates


def test_full_run_outputs_best_ranking_average_and_noop_rerun(tmp_path):
    paths = make_experiment(tmp_path)
    done, updates = _train(paths, ["++train_conf.max_epoch=3", "++train_conf.keep_nbest_models=2", "++train_conf.best_metric=cer"])
    assert done and updates
    exp = paths["output_dir"]
    for name in ("config.yaml", "train.log", "best.json", "checkpoint_latest.pt", "model.avg2.pt", "train.done"):
        assert os.path.exists(os.path.join(exp, name)), name
    assert glob.glob(os.path.join(exp, "tensorboard", "events.out.tfevents.*"))
    with open(os.path.join(exp, "train.log")) as f:
        log = f.read()
    assert "frames/s" in log and "memory check" in log and "validation" in log and "cer" in log

    with open(os.path.join(exp, "best.json")) as f:
        best = json.load(f)
    history = {entry["epoch"]: entry for entry in best["history"]}
    assert sorted(history) == [1, 2, 3]
    by_cer = sorted(history, key=lambda e: (history[e]["cer"], -e))
    assert [entry["epoch"] for entry in best["ranking"]] == by_cer[:2]
    # Kept: the 2 best and the latest; the others are deleted.
    kept = {int(os.path.basename(p)[6:-3]) for p in glob.glob(os.path.join(exp, "epoch_*.pt"))}
    assert kept == set(by_cer[:2]) | {3}
    # model.avg2.pt = elementwise mean of the two best epochs' weights.
    first, second = (torch.load(os.path.join(exp, f"epoch_{e}.pt"), weights_only=True)["model"] for e in by_cer[:2])
    averaged = torch.load(os.path.join(exp, "model.avg2.pt"), weights_only=True)
    for name, value in averaged.items():
        if value.is_floating_point():
            torch.testing.assert_close(value, (first[name] + second[name]) / 2)
    # Latest = the last epoch's full state.
    latest = torch.load(os.path.join(exp, "checkpoint_latest.pt"), weights_only=True)
    assert latest["epoch"] == 4 and latest["step"] == updates[-1]["step"]
    assert set(latest) >= {"model", "optimizer", "scheduler", "scaler", "sampler", "rng", "step", "epoch"}

    mtimes = {p: os.path.getmtime(p) for p in glob.glob(os.path.join(exp, "*.pt"))}
    done_again, updates_again = _train(paths, ["++train_conf.max_epoch=3"])
    assert done_again is False and updates_again == []
    assert mtimes == {p: os.path.getmtime(p) for p in glob.glob(os.path.join(exp, "*.pt"))}


def test_memory_check_does_not_change_training(tmp_path):
    runs = []
    for flag in ("true", "false"):
        paths = make_experiment(tmp_path / flag)
        # BatchNorm-free model, but dropout and SpecAug use the RNG the probe must restore.
        _, updates = _train(paths, [f"++train_conf.oom_check={flag}", "++train_conf.max_epoch=1", "++train_conf.validate_cer=false"])
        runs.append([u["loss"] for u in updates])
    assert runs[0] == runs[1]


def test_max_steps_stops_and_marks_done(tmp_path):
    paths = make_experiment(tmp_path)
    done, updates = _train(paths, ["++train_conf.max_steps=3", "++train_conf.max_epoch=5", "++train_conf.validate_cer=false"])
    assert done and [u["step"] for u in updates] == [1, 2, 3]
    assert os.path.exists(os.path.join(paths["output_dir"], "train.done"))


def _poison(train_dir, utt_id):
    """Rewrite one utterance's features with NaN (a corrupt feature file)."""
    scp = os.path.join(train_dir, "feats.scp")
    matrices = dict(kaldiio.load_scp(scp).items())
    matrices = {k: np.array(v) for k, v in matrices.items()}
    matrices[utt_id][:] = np.nan
    ark = os.path.join(train_dir, "feats2.ark")
    with kaldiio.WriteHelper(f"ark,scp:{ark},{scp}") as writer:
        for key in sorted(matrices):
            writer(key, matrices[key])


def test_non_finite_loss_skips_the_update_and_names_utterances(tmp_path, caplog):
    paths = make_experiment(tmp_path)
    _poison(paths["train_data"], "tr003")
    with caplog.at_level(logging.WARNING):
        done, updates = _train(paths, ["++train_conf.validate_cer=false", "++train_conf.oom_check=false"])
    assert done
    messages = [r.getMessage() for r in caplog.records if "non-finite loss at step" in r.getMessage()]
    assert len(messages) == 2 and all("tr003" in m for m in messages)  # once per epoch
    assert all("tr003" not in u["utt_ids"] for u in updates)  # never stepped on
    final = torch.load(os.path.join(paths["output_dir"], "checkpoint_latest.pt"), weights_only=True)
    assert final["nonfinite_total"] == 2
    assert all(torch.isfinite(v).all() for v in final["model"].values() if v.is_floating_point())


def test_too_many_consecutive_non_finite_losses_abort(tmp_path):
    paths = make_experiment(tmp_path)
    _poison(paths["train_data"], "tr003")
    with pytest.raises(NonFiniteLossError, match="tr003"):
        _train(paths, ["++train_conf.max_consecutive_nonfinite=0", "++train_conf.oom_check=false"])
    assert not os.path.exists(os.path.join(paths["output_dir"], "train.done"))


def test_char_errors_by_hand():
    assert char_errors("a b c", "abd") == (1, 3)
    assert char_errors("abc", "") == (3, 3)
    assert char_errors("甚至 出现", "甚至出现了") == (1, 4)
    assert char_errors("", "x") == (1, 0)


def test_init_param_starts_from_the_given_weights(tmp_path):
    source = make_experiment(tmp_path / "source")
    _train(source, ["++train_conf.max_epoch=2", "++train_conf.validate_cer=false"])
    averaged_path = os.path.join(source["output_dir"], "model.avg2.pt")
    averaged = torch.load(averaged_path, weights_only=True)

    target = make_experiment(tmp_path / "target")
    config = _config(target, ["++train_conf.max_epoch=1", "++optim_conf.lr=0.0", "++train_conf.validate_cer=false"])
    config["init_param"] = averaged_path
    run_training(config, device="cpu")
    # lr 0: the weights after one epoch are exactly the loaded ones (a fresh init would differ).
    trained = torch.load(os.path.join(target["output_dir"], "epoch_1.pt"), weights_only=True)["model"]
    assert trained.keys() == averaged.keys()
    assert all(torch.equal(trained[k], averaged[k]) for k in averaged)
