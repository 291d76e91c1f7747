"""Study 2, quick: the lowest learning rate is slow, the highest diverges."""

import json

import pandas as pd
import pytest

from studies import common, learning_rate
from tests.conftest import make_frame


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    output = tmp_path_factory.mktemp("learning_rate")
    assert learning_rate.main(["--quick", "--output", str(output)]) == 0
    return output


def test_writes_the_four_files_with_a_verdict(quick_run):
    assert sorted(p.name for p in quick_run.iterdir()) == sorted(common.FILES)
    record = json.loads((quick_run / "results.json").read_text())
    assert record["verdict"] in common.VERDICTS
    assert record["settings"]["optimizer"] == "SGD" and record["settings"]["momentum"] == 0.0
    assert record["settings"]["finder"]["suggestions"]


def test_highest_rate_diverges_and_lowest_misses_the_target(quick_run):
    table = pd.read_csv(quick_run / "results.csv").sort_values("learning_rate")
    assert table.diverged.iloc[-1]
    assert not table.diverged.iloc[0] and table.epochs_to_target.iloc[0] == -1


def test_oscillation_index_reads_the_share_of_upward_movement():
    assert learning_rate.oscillation_index([3.0, 2.0, 1.0]) == 0.0
    assert learning_rate.oscillation_index([1.0, 2.0, 1.0, 2.0]) == pytest.approx(2 / 3)


def test_runs_on_a_users_table(tmp_path):
    csv = tmp_path / "table.csv"
    make_frame("binary", rows=64).to_csv(csv, index=False)
    argv = ["--quick", "--csv", str(csv), "--target", "target", "--task", "binary",
            "--output", str(tmp_path / "out")]
    assert learning_rate.main(argv) == 0
    record = json.loads((tmp_path / "out" / "results.json").read_text())
    assert record["data"] == str(csv)
