"""Shared fixtures: the modelpress binary under test (MODELPRESS_BIN, set by CTest).

And the skip policy (docs/TESTING.md). CTest runs each module as its own entry; a module
whose tests all skipped exits 77, which CTest reports as skipped rather than passed. With
MODELPRESS_INTEROP_STRICT=1 (CI), any skip whose reason no line of allowed_skips.txt
matches fails the module: a claim the docs make must not go unchecked because a package
was missing."""
import os
import pathlib
import re
import subprocess

import pytest

SKIPPED_EXIT = 77
ALLOWED_SKIPS = pathlib.Path(__file__).with_name("allowed_skips.txt")


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


def allowed_skip_patterns():
    lines = ALLOWED_SKIPS.read_text().splitlines() if ALLOWED_SKIPS.exists() else []
    return [re.compile(line) for line in (l.strip() for l in lines) if line and not line.startswith("#")]


def skip_reason(report):
    # A skip's longrepr is (file, line, "Skipped: reason") for tests and collections alike.
    longrepr = report.longrepr
    return longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)


def pytest_sessionfinish(session, exitstatus):
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    # A module skipped whole at import (importorskip) collects nothing: exit 5, not a failure.
    if reporter is None or exitstatus not in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
        return
    skipped = reporter.stats.get("skipped", [])
    ran = reporter.stats.get("passed", []) + reporter.stats.get("xfailed", [])
    if os.environ.get("MODELPRESS_INTEROP_STRICT") == "1":
        patterns = allowed_skip_patterns()
        refused = [r for r in skipped if not any(p.search(skip_reason(r)) for p in patterns)]
        if refused:
            for r in refused:
                reporter.write_line(f"strict interop: skip not allowed: {r.nodeid}: {skip_reason(r)}", red=True)
            reporter.write_line(f"({ALLOWED_SKIPS.name} lists the skips CI tolerates)")
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
            return
    if skipped and not ran:
        session.exitstatus = SKIPPED_EXIT
    elif exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED  # a module with no tests is a mistake
