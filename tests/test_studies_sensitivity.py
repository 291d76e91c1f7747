"""Study 9, quick: the regression template, one hyperparameter changed at a time."""

import json

import pandas as pd
import pytest

from conftest import run_study_on_users_table
from studies import common, sensitivity
from tuning.space import Hyperparameter


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    output = tmp_path_factory.mktemp("sensitivity")
    assert sensitivity.main(["--quick", "--output", str(output)]) == 0
    return output


def test_writes_the_four_files_with_a_verdict(quick_run):
    assert sorted(p.name for p in quick_run.iterdir()) == sorted(common.FILES)
    record = json.loads((quick_run / "results.json").read_text())
    assert record["verdict"] in common.VERDICTS
    assert record["settings"]["defaults"]["optimizer"] == "adam"


def test_each_change_is_trained_beside_the_defaults(quick_run):
    table = pd.read_csv(quick_run / "results.csv")
    assert set(table.setting) == {"default", "dropout"}
    assert table.query("setting == 'dropout'").value.astype(float).tolist() == [0.5]


def test_variants_change_one_setting_to_each_other_choice_and_range_end():
    space = {
        "optimizer": Hyperparameter("optimizer", str, bool, "", values=("sgd", "adam"),
                                    default="adam"),
        "dropout": Hyperparameter("dropout", float, bool, "", low=0.0, high=0.5, default=0.0),
    }
    assert sensitivity.variants(space) == [("optimizer", "sgd"), ("dropout", 0.5)]


def test_runs_the_users_task_template_on_a_users_table(tmp_path):
    output = tmp_path / "out"
    csv, record = run_study_on_users_table(sensitivity, "binary", output)
    assert record["data"] == csv
    assert record["settings"]["task"] == "binary"
    assert record["settings"]["template"] == "templates/binary.py"
    assert f"the user CSV {csv} (binary)" in (output / "summary.md").read_text()
