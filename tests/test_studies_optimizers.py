"""Study 6, quick: at the templates' learning rate, Adam is ahead of plain SGD after a few epochs."""

import json

import pandas as pd
import pytest

from conftest import run_study_on_users_table
from studies import common, optimizers


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    output = tmp_path_factory.mktemp("optimizers")
    assert optimizers.main(["--quick", "--output", str(output)]) == 0
    return output


def test_writes_the_four_files_with_a_verdict(quick_run):
    assert sorted(p.name for p in quick_run.iterdir()) == sorted(common.FILES)
    record = json.loads((quick_run / "results.json").read_text())
    assert record["verdict"] in common.VERDICTS
    settings = record["settings"]
    assert settings["l2"] == 0 and settings["early_stopping"] is False
    assert set(settings["tuned_learning_rates"]) == {"sgd", "momentum", "rmsprop", "adam"}


def test_adam_is_ahead_of_plain_sgd_at_the_shared_rate(quick_run):
    shared = pd.read_csv(quick_run / "results.csv").query("part == 'shared'")
    final = shared.set_index("optimizer")["final_val_loss"]
    assert final["adam"] < final["sgd"]


def test_every_tuned_rate_comes_from_the_grid(quick_run):
    table = pd.read_csv(quick_run / "results.csv")
    grid = set(table.query("part == 'grid'").learning_rate)
    assert set(table.query("part == 'tuned'").learning_rate) <= grid


def test_epochs_to_target_is_the_first_epoch_at_or_below_it():
    assert optimizers.epochs_to_target([0.9, 0.4, 0.3], target=0.4) == 2
    assert optimizers.epochs_to_target([float("nan"), 0.5], target=0.4) is None


def test_runs_on_a_users_table(tmp_path):
    output = tmp_path / "out"
    csv, record = run_study_on_users_table(optimizers, "multiclass", output)
    assert record["data"] == csv
    assert "the user CSV (multiclass)" in (output / "summary.md").read_text()
