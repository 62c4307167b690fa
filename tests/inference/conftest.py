"""Shared set-up for inference tests: torch on one thread (stable timings, no oversubscription)."""

import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    torch.set_num_threads(1)
