"""Shared test fixtures: where the shared data is, and skips with a reason when it is absent."""
import importlib.util
import os
import subprocess
import sys

import pytest

from edge.paths import REPO_ROOT, shared_dir


def shared_path(*parts):
    """A path in the shared data, or a skip naming what is missing."""
    path = os.path.join(shared_dir(), *parts)
    if not os.path.exists(path):
        pytest.skip(f"needs {path}: set MASKDET_SHARED to the shared data folder")
    return path


def requires_tensorflow():
    """Skip unless TensorFlow (the convert extra) is installed."""
    if importlib.util.find_spec("tensorflow") is None:
        pytest.skip("needs TensorFlow: pip install -e .[convert]")


def run_cli(*args, env=None, timeout=900):
    """Run a console entry point module in a fresh interpreter; returns CompletedProcess."""
    full_env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", **(env or {}))
    return subprocess.run([sys.executable, *args], capture_output=True, text=True,
                          timeout=timeout, env=full_env, cwd=REPO_ROOT)


@pytest.fixture
def shared():
    """The shared data folder (skips when absent)."""
    return shared_path()
