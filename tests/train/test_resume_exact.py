"""Kill-and-resume: a NEW process continues from checkpoint_latest.pt exactly."""

import json
import os
import subprocess
import sys

import pytest
import torch

from train_testkit import REPO_ROOT, TESTKIT_DIR, make_experiment, random_utterances, subprocess_env, write_data_dir

DRIVER = os.path.join(TESTKIT_DIR, "train_driver.py")
# accum_grad 2 and a DataLoader worker make the resume bookkeeping non-trivial; dropout and
# SpecAugLFR make it depend on the restored RNG state.
OVERRIDES = [
    "++train_conf.accum_grad=2",
    "++train_conf.save_every_steps=2",
    "++train_conf.max_epoch=2",
    "++train_conf.validate_cer=false",
    "++dataset_conf.num_workers=1",
    "++dataset_conf.batch_bins=50",
]


def _run(paths, out_jsonl, kill_at_step=0):
    with open(out_jsonl + ".paths.json", "w") as f:
        json.dump(paths, f)
    command = [sys.executable, DRIVER, out_jsonl + ".paths.json", out_jsonl, *OVERRIDES]
    if kill_at_step:
        command += ["--kill_at_step", str(kill_at_step)]
    return subprocess.run(command, cwd=REPO_ROOT, env=subprocess_env(), capture_output=True, text=True, timeout=300)


def _read(out_jsonl):
    with open(out_jsonl) as f:
        return [json.loads(line) for line in f]


# BiCifParaformer: the same engine and task; its extra head (BLSTM on packed sequences, loss_pre2)
# must resume as exactly as the rest.
BICIF = """
model: BiCifParaformer
predictor: CifPredictorV3
predictor_conf: {l_order: 1, r_order: 1, threshold: 1.0, tail_threshold: 0.45, smooth_factor2: 0.25,
                 noise_threshold2: 0.01, upsample_times: 3, upsample_type: cnn_blstm, use_cif1_cnn: false}
"""


# SeacoParaformer from the same tiny model: hotwords sampled from each batch (Python's global
# generator, which checkpoints keep), the backbone frozen as the recipe trains it.
SEACO = BICIF.replace("model: BiCifParaformer", "model: SeacoParaformer") + """
model_conf: {ctc_weight: 0.3, lsm_weight: 0.1, predictor_weight: 1.0, sampling_ratio: 0.4, predictor_bias: 1,
             inner_dim: 8, NO_BIAS: 0, train_decoder: false, seaco_lsm_weight: 0.1}
seaco_decoder: ParaformerSANMDecoder
seaco_decoder_conf: {attention_heads: 2, linear_units: 16, num_blocks: 2, att_layer_num: 6, kernel_size: 3,
                     use_output_layer: false, wo_input_layer: true}
freeze_param: encoder,predictor,decoder
"""
EXTRA = {"paraformer": "", "bicif": BICIF, "seaco": SEACO}


@pytest.mark.parametrize("model", sorted(EXTRA))
def test_resumed_run_reproduces_the_uninterrupted_losses(tmp_path, model):
    paths = make_experiment(tmp_path, extra=EXTRA[model])
    write_data_dir(paths["train_data"], random_utterances(16, 11, "tr"), n_mels=4, seed=5)

    full_paths = dict(paths, output_dir=str(tmp_path / "exp_full"))
    result = _run(full_paths, str(tmp_path / "full.jsonl"))
    assert result.returncode == 0, result.stderr[-3000:]
    full = _read(str(tmp_path / "full.jsonl"))
    assert len(full) >= 6 and full[-1]["epoch"] == 2

    killed_paths = dict(paths, output_dir=str(tmp_path / "exp_killed"))
    killed_log = str(tmp_path / "killed.jsonl")
    result = _run(killed_paths, killed_log, kill_at_step=3)
    assert result.returncode == 3, result.stderr[-3000:]
    latest = torch.load(tmp_path / "exp_killed" / "checkpoint_latest.pt", weights_only=True)
    assert latest["step"] == 2 and latest["epoch"] == 1 and latest["sampler"]["position"] == 4  # mid-epoch
    assert not (tmp_path / "exp_killed" / "train.done").exists()

    result = _run(killed_paths, killed_log)  # a new process; resume is the default
    assert result.returncode == 0, result.stderr[-3000:]
    assert "resumed from" in result.stderr
    records = _read(killed_log)
    before_kill, resumed = records[:3], records[3:]
    assert [r["step"] for r in before_kill] == [1, 2, 3]
    assert [r["step"] for r in resumed] == [r["step"] for r in full[2:]]  # continues at step k + 1 = 3
    # The loss at step k+1 (and every later one) equals the uninterrupted run's, bit for bit.
    assert resumed[0]["loss"] == full[2]["loss"]
    assert [r["loss"] for r in resumed] == [r["loss"] for r in full[2:]]
    assert [r["lr"] for r in resumed] == [r["lr"] for r in full[2:]]
    # And so do the final weights.
    final_full = torch.load(tmp_path / "exp_full" / "epoch_2.pt", weights_only=True)["model"]
    final_resumed = torch.load(tmp_path / "exp_killed" / "epoch_2.pt", weights_only=True)["model"]
    assert final_full.keys() == final_resumed.keys()
    assert all(torch.equal(final_full[k], final_resumed[k]) for k in final_full)
    if model != "paraformer":
        assert "predictor.blstm.weight_ih_l0" in final_full
    if model == "seaco":  # the frozen backbone did not move; the hotword modules did
        start = torch.load(tmp_path / "exp_full" / "epoch_1.pt", weights_only=True)["model"]
        assert torch.equal(start["encoder.encoders0.0.self_attn.linear_q_k_v.weight"],
                           final_full["encoder.encoders0.0.self_attn.linear_q_k_v.weight"])
        assert not torch.equal(start["hotword_output_layer.weight"], final_full["hotword_output_layer.weight"])
