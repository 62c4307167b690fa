"""Every egs/*/conf/*.yaml is a valid training config and builds a model (a broken recipe config fails CI)."""

import glob
import os

import pytest
import torch

from funasr_lite.models import build_model
from funasr_lite.utils.config import load_yaml, validate_config

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODEL_CONFIGS = sorted(
    p for p in glob.glob(os.path.join(REPO, "egs", "*", "conf", "*.yaml")) if "encoder" in load_yaml(p)
)


def _with_sizes(config, vocab_size):
    config = dict(config)
    frontend = config["frontend_conf"]
    config["input_size"] = frontend["n_mels"] * frontend["lfr_m"]
    config["vocab_size"] = vocab_size
    return config


def test_there_are_recipe_configs():
    names = {os.path.basename(p) for p in MODEL_CONFIGS}
    assert {"demo.yaml", "paraformer_sanm.yaml", "paraformer_conformer_12e_6d_2048_256.yaml"} <= names


@pytest.mark.parametrize("path", MODEL_CONFIGS, ids=os.path.basename)
def test_config_validates_and_builds(path):
    config = validate_config(load_yaml(path), source=path)
    with torch.device("meta"):  # shapes only: the large model would need ~1 GB
        model = build_model(_with_sizes(config, vocab_size=4234))
    assert sum(p.numel() for p in model.parameters()) > 1_000_000
    assert {name.split(".")[0] for name, _ in model.named_parameters()} >= {"encoder", "predictor", "decoder"}


def test_sanm_config_is_paraformer_large():
    config = validate_config(load_yaml(os.path.join(REPO, "egs", "aishell1", "conf", "paraformer_sanm.yaml")))
    with torch.device("meta"):
        model = build_model(_with_sizes(config, vocab_size=8404))
    assert sum(p.numel() for p in model.parameters()) == 220_084_533  # SPEC §10


def test_demo_config_trains_one_step():
    torch.manual_seed(0)
    config = validate_config(load_yaml(os.path.join(REPO, "egs", "aishell1", "conf", "demo.yaml")))
    model = build_model(_with_sizes(config, vocab_size=30))
    model.train()
    speech = torch.randn(2, 40, 560)
    text = torch.tensor([[5, 6, 7, 8], [9, 10, -1, -1]])
    loss, stats, _ = model(speech, torch.tensor([40, 31]), text, torch.tensor([4, 2]))
    assert torch.isfinite(loss)
    loss.backward()
    assert all(p.grad is not None for n, p in model.named_parameters() if n.startswith("encoder."))
