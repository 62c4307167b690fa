import os
import random
import subprocess
import sys
from collections import OrderedDict

import numpy as np
import pytest
import torch

from funasr_lite.train.average import average_best_checkpoints, average_checkpoint_files, average_state_dicts, write_best
from funasr_lite.train.checkpoint import (
    CheckpointError,
    capture_rng_state,
    extract_model_state,
    load_checkpoint,
    load_matching_weights,
    remove_stale_checkpoint_temps,
    restore_rng_state,
    save_checkpoint,
)
from train_testkit import REPO_ROOT, subprocess_env


def test_corrupt_checkpoint_error_names_the_file(tmp_path):
    path = tmp_path / "epoch_3.pt"
    save_checkpoint({"model": {"w": torch.ones(100)}}, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # truncated, as after a crash without atomic writes
    with pytest.raises(CheckpointError, match=r"epoch_3\.pt: cannot load checkpoint"):
        load_checkpoint(path)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a torch file at all")
    with pytest.raises(CheckpointError, match=r"garbage\.pt"):
        load_checkpoint(garbage)
    with pytest.raises(CheckpointError, match=r"missing\.pt: no such checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")


def test_save_is_atomic_and_weights_only_loadable(tmp_path):
    path = tmp_path / "ckpt.pt"
    state = {"model": OrderedDict(w=torch.arange(3.0)), "step": 5, "rng": [capture_rng_state()], "history": [{"epoch": 1, "cer": 3.5}]}
    save_checkpoint(state, path)
    assert os.listdir(tmp_path) == ["ckpt.pt"]  # no temp files left behind
    loaded = torch.load(path, weights_only=True)  # the contract: safe loading works
    assert loaded["step"] == 5 and torch.equal(loaded["model"]["w"], torch.arange(3.0))


def test_rng_state_round_trip_through_a_file(tmp_path):
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    random.random(), np.random.rand(), torch.rand(1), np.random.randn()  # advance, incl. numpy's gaussian cache
    save_checkpoint({"rng": capture_rng_state()}, tmp_path / "rng.pt")
    expected = (random.random(), float(np.random.randn()), float(np.random.rand()), torch.rand(3))
    random.seed(99)
    np.random.seed(99)
    torch.manual_seed(99)
    restore_rng_state(load_checkpoint(tmp_path / "rng.pt")["rng"])
    got = (random.random(), float(np.random.randn()), float(np.random.rand()), torch.rand(3))
    assert got[:3] == expected[:3]
    assert torch.equal(got[3], expected[3])


def test_extract_model_state_unwraps_funasr_layouts():
    weights = {"encoder.w": torch.ones(2), "decoder.b": torch.zeros(1)}
    for wrapped in (
        weights,
        {"state_dict": weights},
        {"model": weights, "optimizer": {"state": {}}},
        {"state_dict": {f"module.{k}": v for k, v in weights.items()}},
    ):
        state = extract_model_state(wrapped)
        assert set(state) == set(weights)
    with pytest.raises(CheckpointError, match="not a tensor"):
        extract_model_state({"model": {"a": 1}}, "x.pt")


def test_init_param_loads_matching_weights(tmp_path, caplog):
    torch.manual_seed(0)
    source = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 5))
    save_checkpoint({"state_dict": {f"module.{k}": v for k, v in source.state_dict().items()}}, tmp_path / "model.pt")
    target = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 6))  # last layer differs
    report = load_matching_weights(target, tmp_path / "model.pt")
    assert sorted(report["loaded"]) == ["0.bias", "0.weight"]
    assert len(report["mismatched"]) == 2
    assert torch.equal(target[0].weight, source[0].weight)
    assert "mismatched" in caplog.text
    with pytest.raises(CheckpointError, match="do not match the model"):
        load_matching_weights(target, tmp_path / "model.pt", strict=True)


def _write_models(tmp_path, count):
    paths, states = [], []
    for index in range(count):
        torch.manual_seed(index)
        state = OrderedDict(
            weight=torch.randn(3, 4),
            half=torch.randn(5).half(),
            num_batches_tracked=torch.tensor(10 * (index + 1)),
        )
        path = tmp_path / f"epoch_{index + 1}.pt"
        save_checkpoint({"model": state, "optimizer": {}, "step": index}, path)
        paths.append(str(path))
        states.append(state)
    return paths, states


def test_average_is_elementwise_mean(tmp_path):
    paths, states = _write_models(tmp_path, 3)
    averaged = average_state_dicts(paths)
    by_hand = (states[0]["weight"] + states[1]["weight"] + states[2]["weight"]) / 3
    torch.testing.assert_close(averaged["weight"], by_hand)
    assert averaged["half"].dtype == torch.float16
    torch.testing.assert_close(averaged["half"].float(), sum(s["half"].double() for s in states).float() / 3, atol=1e-3, rtol=1e-3)
    assert int(averaged["num_batches_tracked"]) == 20  # floor((10 + 20 + 30) / 3)


def test_average_best_from_best_json_and_cli(tmp_path):
    paths, states = _write_models(tmp_path, 3)
    write_best(
        tmp_path,
        {
            "metric": "cer",
            "ranking": [
                {"epoch": 3, "cer": 4.0, "checkpoint": "epoch_3.pt"},
                {"epoch": 1, "cer": 5.0, "checkpoint": "epoch_1.pt"},
                {"epoch": 2, "cer": 6.0, "checkpoint": "epoch_2.pt"},
            ],
        },
    )
    out = average_best_checkpoints(tmp_path, 2)
    assert out.endswith("model.avg2.pt")
    plain = torch.load(out, weights_only=True)
    assert set(plain) == {"weight", "half", "num_batches_tracked"}  # a plain state dict
    torch.testing.assert_close(plain["weight"], (states[2]["weight"] + states[0]["weight"]) / 2)

    result = subprocess.run(
        [sys.executable, "-m", "funasr_lite.bin.average_checkpoints", "--out", str(tmp_path / "two.pt"), paths[0], paths[1]],
        cwd=REPO_ROOT,
        env=subprocess_env(),
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    torch.testing.assert_close(torch.load(tmp_path / "two.pt", weights_only=True)["weight"], (states[0]["weight"] + states[1]["weight"]) / 2)


def test_average_rejects_mismatched_models(tmp_path):
    save_checkpoint({"model": {"a": torch.ones(2)}}, tmp_path / "a.pt")
    save_checkpoint({"model": {"a": torch.ones(3)}}, tmp_path / "b.pt")
    with pytest.raises(CheckpointError, match=r"b\.pt: a has shape"):
        average_checkpoint_files([tmp_path / "a.pt", tmp_path / "b.pt"], tmp_path / "out.pt")
    assert not (tmp_path / "out.pt").exists()


def test_stale_checkpoint_temps_are_removed_and_nothing_else(tmp_path):
    """What a killed atomic write of a checkpoint leaves (.<name>.pt.<random>.tmp) goes; real
    checkpoints and other files' temps stay."""
    stale = [tmp_path / ".epoch_2.pt.k3j_x.tmp", tmp_path / ".checkpoint_latest.pt.a1.tmp"]
    kept = [tmp_path / "epoch_1.pt", tmp_path / ".epochs.jsonl.zz.tmp", tmp_path / "notes.pt.tmp"]
    for path in stale + kept:
        path.write_bytes(b"x")
    removed = remove_stale_checkpoint_temps(str(tmp_path))
    assert removed == sorted(str(p) for p in stale)
    assert all(not p.exists() for p in stale) and all(p.exists() for p in kept)
    assert remove_stale_checkpoint_temps(str(tmp_path)) == []
