"""Study 4, quick: larger batches process more rows per second and need more memory per step."""

import itertools
import json

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


def test_a_large_batch_processes_more_samples_per_second_than_batch_8(quick_run):
    speed = pd.read_csv(quick_run / "results.csv").query("part == 'speed'")
    samples_per_s = speed.set_index("batch_size")["samples_per_s"]
    assert samples_per_s.index.min() == 8
    assert samples_per_s.iloc[-1] > samples_per_s.loc[8]


def test_a_batch_step_costs_more_than_a_small_batch_step(quick_run):
    speed = pd.read_csv(quick_run / "results.csv").query("part == 'speed'")
    ms_per_step = speed.set_index("batch_size")["ms_per_step"]
    assert ms_per_step.iloc[-1] > ms_per_step.loc[8]


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
