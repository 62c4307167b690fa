import os
import sys

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)
os.environ.setdefault("FUNASR_LITE_NO_PROGRESS", "1")


@pytest.fixture(scope="session")
def repo_root():
    return REPO_ROOT
