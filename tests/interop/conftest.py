"""Shared fixtures: the modelpress binary under test (MODELPRESS_BIN, set by CTest)."""
import os
import subprocess

import pytest


@pytest.fixture(scope="session")
def modelpress():
    binary = os.environ.get("MODELPRESS_BIN", "build/cli/modelpress")
    if not os.path.exists(binary):
        pytest.skip(f"modelpress binary not found at {binary}; build first")

    def run(*args):
        result = subprocess.run([binary, *map(str, args)], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        return result.stdout

    return run
