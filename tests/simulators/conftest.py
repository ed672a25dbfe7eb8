"""Simulated hosts shared by the processes of one machine: each test gets its own state directory
(``VOM_SIMULATOR_STATE_DIR``, inherited by the processes it starts) and forgets its hosts after."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from inventory.drivers.libvirt import forget_test_connections
from vom.simulators.hyperv_replay import forget_replay_hosts

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A private simulator state directory for this test and the processes it starts."""
    path = tmp_path / "simulator-state"
    monkeypatch.setenv("VOM_SIMULATOR_STATE_DIR", str(path))
    yield path
    forget_test_connections()
    forget_replay_hosts()


def run_python(code: str, *, timeout: float = 60) -> Any:
    """Run ``code`` in a new Python process (Django not set up, the environment inherited) and
    return what it printed last, read as JSON."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    return json.loads(lines[-1]) if lines else None


def start_python(code: str) -> subprocess.Popen[str]:
    """Start ``code`` in a new Python process (see :func:`run_python`) with pipes to talk to it; the
    caller waits for it."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=REPO,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
