"""Shared fixtures: tiny mixed-type tabular data sets and fast settings."""

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from templates.training import TrainingConfig

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def make_frame(task, rows=120, seed=0):
    """Returns a frame of numeric, text and missing values with a learnable target."""
    rng = np.random.default_rng(seed)
    signal = rng.normal(size=rows)
    frame = pd.DataFrame({
        "signal": signal,
        "noise": rng.normal(size=rows),
        "colour": rng.choice(["red", "green", "blue"], size=rows),
    })
    frame.loc[::7, "noise"] = np.nan
    frame.loc[::11, "colour"] = None
    frame["target"] = {
        "regression": 3.0 * signal + 1.0,
        "binary": np.where(signal > 0, "yes", "no"),
        "multiclass": np.select([signal < -0.5, signal < 0.5], ["low", "mid"], "high"),
    }[task]
    return frame


@pytest.fixture
def tiny_config():
    return TrainingConfig(hidden=(8,), epochs=3, patience=2, seed=0)


@pytest.fixture
def csv_for(tmp_path):
    """Writes `make_frame(task)` (or a given frame) to a CSV and returns its path."""

    def write(task=None, frame=None, name="data.csv"):
        path = tmp_path / name
        (make_frame(task) if frame is None else frame).to_csv(path, index=False)
        return str(path)

    return write


def run_module(module, *args):
    """Runs `python -m module args` in a fresh process; returns the CompletedProcess."""
    return subprocess.run(
        [sys.executable, "-m", module, *map(str, args)],
        capture_output=True, text=True, cwd=REPO_ROOT, timeout=300,
    )


def run_study_on_users_table(study, task, output):
    """Runs `study.main` with `--quick` on `make_frame(task)` written as a user's CSV.

    Returns:
        `(csv path, results.json as a dict)`, after checking that the study
        exited 0 and wrote its four files into `output`.
    """
    import json

    from studies import common

    csv = str(output.parent / "users_table.csv")
    make_frame(task).to_csv(csv, index=False)
    argv = ["--quick", "--csv", csv, "--target", "target", "--task", task, "--output", str(output)]
    assert study.main(argv) == 0
    assert sorted(path.name for path in output.iterdir()) == sorted(common.FILES)
    return csv, json.loads((output / "results.json").read_text())
