"""Shared set-up for search tests: torch on one thread (stable timings, no oversubscription); the tiny
model dir and corpus helpers of tests/inference/test_infer.py importable."""

import os
import sys

import pytest
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "inference"))


@pytest.fixture(autouse=True)
def one_thread():
    torch.set_num_threads(1)
