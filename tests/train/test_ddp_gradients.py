"""DDP over gloo on CPU: gradients, and a 2-process torchrun training run."""

import os
import socket
import subprocess
import sys

import numpy as np
import torch
import torch.multiprocessing as mp
import yaml

from ddp_worker import ddp_gradient_worker
from funasr_lite.data.batch_sampler import FrameBatchSampler
from funasr_lite.models import build_model
from train_testkit import REPO_ROOT, cli_args, make_experiment, subprocess_env, tiny_config_text

torch.set_num_threads(1)


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _deterministic_model_config():
    config = yaml.safe_load(tiny_config_text())
    config.update(input_size=12, vocab_size=10, specaug=None)
    config["model_conf"]["sampling_ratio"] = 0.0  # the glancing sampler draws random positions
    for part in ("encoder_conf", "decoder_conf"):
        config[part]["dropout_rate"] = 0.0
    config["encoder_conf"]["positional_dropout_rate"] = 0.0
    config["predictor_conf"]["dropout"] = 0.0
    return config


def test_two_process_ddp_gradients_equal_single_process_on_concatenated_batch(tmp_path):
    config = _deterministic_model_config()
    generator = torch.Generator().manual_seed(1)
    # Equal lengths: the two halves and the whole batch have no padding differences.
    batch = {
        "speech": torch.randn(4, 10, 12, generator=generator),
        "speech_lengths": torch.full((4,), 10),
        "text": torch.randint(3, 9, (4, 3), generator=generator),
        "text_lengths": torch.full((4,), 3),
    }
    torch.save(batch, tmp_path / "batch.pt")
    out = str(tmp_path / "grads")
    mp.spawn(ddp_gradient_worker, args=(2, _free_port(), config, str(tmp_path / "batch.pt"), out), nprocs=2, join=True)

    torch.manual_seed(0)
    model = build_model(config)
    loss, _, _ = model(batch["speech"], batch["speech_lengths"], batch["text"], batch["text_lengths"])
    loss.backward()
    rank_results = [torch.load(f"{out}.rank{r}", weights_only=True) for r in range(2)]
    # The loss is a per-utterance mean: the whole batch's loss is the mean of the halves'.
    torch.testing.assert_close(loss.detach(), (rank_results[0]["loss"] + rank_results[1]["loss"]) / 2, rtol=1e-5, atol=1e-5)
    compared = 0
    for name, param in model.named_parameters():
        if param.grad is None:
            continue
        for result in rank_results:  # every rank holds the same all-reduced (averaged) gradient
            torch.testing.assert_close(result["grads"][name], param.grad, rtol=1e-4, atol=1e-6)
        compared += 1
    assert compared > 10


def test_torchrun_two_processes_train_to_completion(tmp_path):
    paths = make_experiment(tmp_path, num_train=12)
    with open(os.path.join(paths["train_data"], "utt2num_frames")) as f:
        lfr_lengths = [-(-int(line.split()[1]) // 2) for line in f]
    single = FrameBatchSampler(lfr_lengths, 60, bucket_size=8, seed=3)
    per_epoch = []
    for epoch in (1, 2):
        single.set_epoch(epoch)
        per_epoch.append(len(single))
    assert per_epoch[0] % 2 == 1, "precondition: an odd batch count, so the ranks need padding"

    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes", "1", "--nproc_per_node", "2",
        "-m", "funasr_lite.bin.train", *cli_args(paths), "--device", "cpu",
        "++train_conf.max_epoch=2", "++train_conf.validate_cer=true",
        "++model_conf.sampling_ratio=0.0",  # leaves decoder.embed unused: DDP must be told
    ]
    result = subprocess.run(command, cwd=REPO_ROOT, env=subprocess_env(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
    exp = paths["output_dir"]
    assert os.path.exists(os.path.join(exp, "train.done"))
    with open(os.path.join(exp, "train.log")) as f:
        log = f.read()
    assert "on 2 process(es)" in log and f"{(per_epoch[0] + 1) // 2} batches per epoch per process" in log
    assert "find_unused_parameters=True" in log
    assert "[rank 1]" not in log  # only rank 0 writes the log
    state = torch.load(os.path.join(exp, "checkpoint_latest.pt"), weights_only=True)
    assert state["world_size"] == 2 and len(state["rng"]) == 2
    assert state["step"] == sum((n + 1) // 2 for n in per_epoch)  # equal step counts, padded batches
    assert not any(k.startswith("module.") for k in state["model"])
