"""Shared set-up for model tests: one thread, fixed seeds, a tiny Paraformer config."""

import copy
import logging

import pytest
import torch

# funasr (imported by parity tests as a numeric oracle) is chatty at INFO level.
logging.getLogger("funasr").setLevel(logging.WARNING)

TINY_CONFIG = {
    "model": "Paraformer",
    "model_conf": {
        "ctc_weight": 0.3,
        "lsm_weight": 0.1,
        "length_normalized_loss": False,
        "predictor_weight": 1.0,
        "predictor_bias": 1,
        "sampling_ratio": 0.0,
    },
    "input_size": 24,
    "vocab_size": 12,
    "encoder": "SANMEncoder",
    "encoder_conf": {
        "output_size": 32,
        "attention_heads": 4,
        "linear_units": 64,
        "num_blocks": 2,
        "dropout_rate": 0.1,
        "positional_dropout_rate": 0.1,
        "attention_dropout_rate": 0.1,
        "input_layer": "pe",
        "kernel_size": 5,
        "sanm_shfit": 0,
    },
    "decoder": "ParaformerSANMDecoder",
    "decoder_conf": {
        "attention_heads": 4,
        "linear_units": 64,
        "num_blocks": 2,
        "att_layer_num": 2,
        "dropout_rate": 0.1,
        "self_attention_dropout_rate": 0.1,
        "src_attention_dropout_rate": 0.1,
        "kernel_size": 5,
        "sanm_shfit": 0,
    },
    "predictor": "CifPredictorV2",
    "predictor_conf": {"idim": 32, "l_order": 1, "r_order": 1, "threshold": 1.0, "tail_threshold": 0.45},
}


@pytest.fixture(autouse=True)
def single_thread_fixed_seed():
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield


@pytest.fixture
def tiny_config():
    """A fresh copy of a tiny Paraformer config (FunASR config.yaml schema)."""
    return copy.deepcopy(TINY_CONFIG)
