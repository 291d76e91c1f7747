"""Saved models reload in a fresh process and predict from raw CSV rows."""

import os
import pathlib
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from templates.cli import run_template
from templates.predict import load_model, predict_frame

from conftest import REPO_ROOT, make_frame, run_module

RESULT_FILES = {"model.keras", "metrics.json", "history.csv", "curves.png"}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Trains each template once on a CSV; returns `{task: (output_dir, rows_csv)}`."""
    root = tmp_path_factory.mktemp("runs")
    runs = {}
    for task in ("regression", "binary", "multiclass"):
        csv = root / f"{task}.csv"
        make_frame(task).to_csv(csv, index=False)
        output = root / task
        extra = ["--positive-class", "yes"] if task == "binary" else []
        assert run_template(task, ["--csv", str(csv), "--target", "target", "--hidden", "8",
                                   "--epochs", "20", "--learning-rate", "0.05", "--output", str(output),
                                   "--quiet", *extra]) == 0
        runs[task] = (output, csv)
    return runs


@pytest.mark.parametrize("task", ["regression", "binary", "multiclass"])
def test_a_run_writes_model_metrics_history_and_curves(trained, task):
    output, _ = trained[task]
    assert RESULT_FILES <= {path.name for path in output.iterdir()}
    assert not [path.name for path in output.iterdir() if ".partial" in path.name]
    history = pd.read_csv(output / "history.csv")
    assert {"epoch", "loss", "val_loss"} <= set(history.columns)


@pytest.mark.parametrize("task, expected", [
    ("regression", ["mse", "mae", "r2"]),
    ("binary", ["accuracy", "auc", "precision", "recall"]),
    ("multiclass", ["accuracy"]),
])
def test_metrics_json_names_the_task_labels_best_epoch_and_test_metrics(trained, task, expected):
    import json

    metrics = json.loads((trained[task][0] / "metrics.json").read_text())
    assert metrics["task"] == task
    assert sorted(metrics["test"]) == sorted(expected)
    assert 1 <= metrics["best_epoch"] <= 20
    assert metrics["class_names"] == {"regression": [], "binary": ["no", "yes"],
                                      "multiclass": ["high", "low", "mid"]}[task]


@pytest.mark.parametrize("task", ["regression", "binary", "multiclass"])
def test_predict_in_a_fresh_process_matches_the_trained_model(trained, task, tmp_path):
    output, csv = trained[task]
    predictions_csv = tmp_path / "predictions.csv"
    result = run_module("templates.predict", "--model", output / "model.keras", "--csv", csv,
                        "--output", predictions_csv)
    assert result.returncode == 0, result.stderr
    from_cli = pd.read_csv(predictions_csv, keep_default_na=False)
    in_memory = predict_frame(load_model(str(output / "model.keras")), pd.read_csv(csv))
    assert len(from_cli) == len(in_memory) == len(pd.read_csv(csv))
    if task == "regression":
        np.testing.assert_allclose(from_cli["prediction"], in_memory["prediction"], rtol=1e-5)
    else:
        assert from_cli["prediction"].astype(str).tolist() == in_memory["prediction"].tolist()
        np.testing.assert_allclose(from_cli["probability"], in_memory["probability"], rtol=1e-5)


@pytest.mark.parametrize("task, labels", [("binary", {"no", "yes"}), ("multiclass", {"low", "mid", "high"})])
def test_string_labels_round_trip_through_predict(trained, task, labels, tmp_path):
    output, csv = trained[task]
    rows = pd.read_csv(csv)
    predictions = predict_frame(load_model(str(output / "model.keras")), rows.drop(columns="target"))
    assert set(predictions["prediction"]) <= labels
    assert (predictions["prediction"] == rows["target"]).mean() > 0.8


def test_an_existing_output_folder_is_never_overwritten(trained):
    output, csv = trained["regression"]
    before = (output / "metrics.json").read_text()
    status = run_template("regression", ["--csv", str(csv), "--target", "target", "--epochs", "1",
                                         "--output", str(output), "--quiet"])
    assert status == 2
    assert (output / "metrics.json").read_text() == before


def test_overwrite_replaces_the_results(tmp_path, csv_for):
    output = tmp_path / "run"
    output.mkdir()
    (output / "old.txt").write_text("x")
    args = ["--csv", csv_for("regression"), "--target", "target", "--hidden", "4", "--epochs", "1",
            "--output", str(output), "--quiet", "--overwrite"]
    assert run_template("regression", args) == 0
    assert RESULT_FILES <= {path.name for path in output.iterdir()}


def test_a_template_copied_into_another_project_still_runs(tmp_path, csv_for):
    project = tmp_path / "my_project"
    project.mkdir()
    (project / "train_churn.py").write_text(pathlib.Path(REPO_ROOT, "templates", "binary.py").read_text())
    result = subprocess.run(
        [sys.executable, "train_churn.py", "--csv", csv_for("binary"), "--target", "target",
         "--hidden", "4", "--epochs", "2", "--output", str(project / "run"), "--quiet"],
        capture_output=True, text=True, cwd=project, timeout=300,
        env={**os.environ, "PYTHONPATH": ""},
    )
    assert result.returncode == 0, result.stderr
    assert (project / "run" / "model.keras").is_file()
