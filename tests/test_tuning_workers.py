"""Specification of `tuning.workers`: how a spawned local worker stays tied to its chief."""

import os
import subprocess
import sys

import pytest

from tuning.workers import CHIEF_PID_VARIABLE

from conftest import REPO_ROOT

FOLLOW_THEN_PRINT = "from tuning.workers import follow_chief; follow_chief(); print('running')"


def run_worker_start(chief_pid):
    return subprocess.run([sys.executable, "-c", FOLLOW_THEN_PRINT], cwd=REPO_ROOT,
                          env={**os.environ, CHIEF_PID_VARIABLE: str(chief_pid)},
                          capture_output=True, text=True, timeout=60)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal is Linux's")
def test_a_spawned_worker_whose_chief_is_already_gone_exits_at_once():
    # Its parent (this test) is not the chief it was started for: as if the
    # chief had died between starting it and its first line.
    finished = run_worker_start(chief_pid=os.getpid() + 1_000_000)
    assert finished.returncode == 1 and "running" not in finished.stdout


def test_a_spawned_worker_of_a_live_chief_runs():
    finished = run_worker_start(chief_pid=os.getpid())
    assert finished.returncode == 0 and finished.stdout.strip() == "running"
