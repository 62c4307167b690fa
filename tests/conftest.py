import os
import sys

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)
TESTS_DIR = os.path.join(REPO_ROOT, "tests")  # shared test kits at the top of tests/ (funasr_configs.py)
if TESTS_DIR not in sys.path:
    sys.path.insert(0, TESTS_DIR)
os.environ.setdefault("FUNASR_LITE_NO_PROGRESS", "1")


def pytest_configure(config):
    config.addinivalue_line("markers", "drill: reliability drills (bad input through the real entry points); "
                                       "run alone with -m drill")


@pytest.fixture(scope="session")
def repo_root():
    return REPO_ROOT
