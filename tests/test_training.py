"""Gradient-descent modes, early stopping and repeatable runs."""

import json
import math

import pytest

from conftest import make_frame
from templates import binary, regression
from templates.cli import run_template


def run_one_epoch(gd, batch_size=16):
    frame = make_frame("binary", rows=100)
    config = binary.SETTINGS.replace(hidden=(4,), epochs=1, patience=1, gd=gd, batch_size=batch_size,
                                     seed=0)
    return binary.train(frame.drop(columns="target"), frame["target"], config=config, verbose=0)


@pytest.mark.parametrize("gd, batch_size, steps_per_epoch", [
    ("batch", None, lambda rows: 1),
    ("stochastic", 1, lambda rows: rows),
    ("minibatch", 16, lambda rows: math.ceil(rows / 16)),
])
def test_gradient_descent_modes_use_the_batch_size_they_promise(gd, batch_size, steps_per_epoch):
    run = run_one_epoch(gd)
    train_rows = run.metrics["rows"]["train"]
    assert run.metrics["batch_size"] == (batch_size or train_rows)
    assert int(run.model.optimizer.iterations) == steps_per_epoch(train_rows)


def test_epochs_is_an_upper_bound_and_the_best_epoch_is_recorded():
    frame = make_frame("regression")
    config = regression.SETTINGS.replace(hidden=(4,), epochs=40, patience=1, learning_rate=0.3, seed=0)
    run = regression.train(frame.drop(columns="target"), frame["target"], config=config, verbose=0)
    val_loss = run.history["val_loss"]
    assert run.metrics["epochs_run"] == len(val_loss) <= 40
    assert run.metrics["best_epoch"] == val_loss.index(min(val_loss)) + 1


def test_the_best_epochs_weights_are_restored():
    frame = make_frame("regression")
    config = regression.SETTINGS.replace(hidden=(4,), epochs=6, patience=2, learning_rate=0.3,
                                         l2=0.0, seed=1)
    run = regression.train(frame.drop(columns="target"), frame["target"], config=config, verbose=0)
    scale = run.model.get_layer("to_target_units").scale
    mse = run.metrics["validation"]["mse"]
    assert mse / scale**2 == pytest.approx(min(run.history["val_loss"]), rel=1e-3)


def test_the_same_seed_gives_the_same_metrics_json(tmp_path, csv_for):
    csv = csv_for("multiclass")
    args = ["--csv", csv, "--target", "target", "--hidden", "8", "--epochs", "4", "--seed", "7", "--quiet"]
    for name in ("first", "second"):
        assert run_template("multiclass", [*args, "--output", str(tmp_path / name)]) == 0
    first, second = ((tmp_path / name / "metrics.json").read_text() for name in ("first", "second"))
    assert json.loads(first)["config"]["seed"] == 7
    assert first == second
