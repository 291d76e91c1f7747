"""Study 5, quick: on noisy labels the training loss keeps falling while the validation loss rises."""

import json

import pandas as pd
import pytest

from studies import common, epochs


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    output = tmp_path_factory.mktemp("epochs")
    assert epochs.main(["--quick", "--output", str(output)]) == 0
    return output


def test_writes_the_four_files_with_a_verdict(quick_run):
    assert sorted(p.name for p in quick_run.iterdir()) == sorted(common.FILES)
    record = json.loads((quick_run / "results.json").read_text())
    assert record["verdict"] in common.VERDICTS
    settings = record["settings"]
    assert settings["l2"] == 0 and settings["dropout"] == 0 and settings["optimizer"] == "adam"


def test_training_loss_falls_while_validation_loss_rises_late(quick_run):
    run = pd.read_csv(quick_run / "results.csv").iloc[0]
    assert run.best_val_epoch < run.epochs
    assert run.final_val_loss > run.min_val_loss
    assert run.final_train_loss < run.train_loss_at_best


def test_early_stopping_rule_matches_a_real_early_stopping_run(quick_run):
    check = json.loads((quick_run / "results.json").read_text())["settings"]["early_stopping_check"]
    assert check["real_last_epoch"] == check["simulated_last_epoch"]
    assert check["real_restored_epoch"] == check["simulated_restored_epoch"]
    assert check["real_test_loss"] == pytest.approx(check["simulated_test_loss"], rel=1e-4)


@pytest.mark.parametrize("losses, patience, expected", [
    ([1.0, 0.9, 0.8], 1, (2, 2)),            # never stops: the last epoch is the best
    ([1.0, 0.5, 0.6, 0.7, 0.4], 2, (3, 1)),  # stops two epochs after the best
    ([1.0, 1.0, 1.0], 1, (1, 0)),            # an equal loss is no improvement
])
def test_early_stopping_epochs_follows_keras_rule(losses, patience, expected):
    assert epochs.early_stopping_epochs(losses, patience) == expected
