"""Fixtures for the utils/ tools: run them through bash the way a recipe does (after path.sh)."""
import subprocess

import pytest

from utils_testkit import tool_env


@pytest.fixture
def run_tool(tmp_path):
    """``run_tool("bash command line", extra_path=[dir], env={...})`` in tmp_path; returns the
    CompletedProcess (text stdout/stderr)."""

    def run(command, extra_path=(), env=None, cwd=None):
        full_env = tool_env(extra_path)
        full_env.update(env or {})
        return subprocess.run(["bash", "-c", command], cwd=cwd or tmp_path, env=full_env,
                              capture_output=True, text=True, timeout=120)

    return run
