"""ONNX export tests: the tiny random model dir and audio of tests/inference/test_infer.py."""

import os
import sys

import pytest
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "inference"))


@pytest.fixture(autouse=True)
def one_thread():
    torch.set_num_threads(1)
