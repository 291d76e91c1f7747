"""Study 4, quick: the speed of each batch size is measured, and a step's memory grows with the batch."""

import itertools
import json

import numpy as np
import pandas as pd
import pytest

from conftest import run_study_on_users_table
from studies import batch_size, common


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    output = tmp_path_factory.mktemp("batch_size")
    assert batch_size.main(["--quick", "--output", str(output)]) == 0
    return output


def test_writes_the_four_files_with_a_verdict(quick_run):
    assert sorted(p.name for p in quick_run.iterdir()) == sorted(common.FILES)
    record = json.loads((quick_run / "results.json").read_text())
    assert record["verdict"] in common.VERDICTS
    assert record["settings"]["l2"] == 0 and record["settings"]["early_stopping"] is False


def test_the_speed_of_every_batch_size_is_measured_from_batch_8_up(quick_run):
    # Which batch is faster is the study's finding (its verdict and report),
    # not this test's: times measured on a loaded machine can come out
    # either way, and a test must not depend on them.
    speed = pd.read_csv(quick_run / "results.csv").query("part == 'speed'")
    sizes = speed["batch_size"].tolist()
    assert sizes[0] == 8 and sizes == sorted(sizes) and len(sizes) >= 2
    for column in ("samples_per_s", "ms_per_step"):
        assert (speed[column] > 0).all() and np.isfinite(speed[column]).all(), column
    # Rows per second and time per step describe the same steps.
    np.testing.assert_allclose(speed["samples_per_s"] * speed["ms_per_step"] / 1000,
                               speed["batch_size"], rtol=1e-6)


def test_measured_step_memory_grows_with_the_batch(quick_run):
    memory = pd.read_csv(quick_run / "results.csv").query("part == 'memory'")
    peaks = memory.sort_values("batch_size")["peak_mb"].to_numpy()
    assert peaks[0] > 0 and all(later > earlier for earlier, later in itertools.pairwise(peaks))


def test_activation_bytes_grow_linearly_with_the_batch():
    one = batch_size.activation_bytes(1, inputs=10, hidden=(64, 64), outputs=1)
    assert batch_size.activation_bytes(2048, inputs=10, hidden=(64, 64), outputs=1) == 2048 * one


def test_runs_on_a_users_table(tmp_path):
    output = tmp_path / "out"
    csv, record = run_study_on_users_table(batch_size, "binary", output)
    assert record["data"] == csv
    assert "the user CSV (binary)" in (output / "summary.md").read_text()
    # The quality runs train on the CSV's 72 training rows, so only the batches that fit them run.
    quality = pd.read_csv(output / "results.csv").query("part == 'quality'")
    assert set(quality.batch_size) == {8}
