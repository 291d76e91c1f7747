"""Specification of `python -m tuning.search`, on tiny budgets (2-3 trials, 2 epochs)."""

import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from templates.data import load_bundled
from templates.predict import load_model, predict_frame
from templates.tasks import get_task
from tuning.search import main

RESULT_FILES = ("best_hyperparameters.json", "leaderboard.csv", "best_model.keras",
                "metrics.json", "report.md", "sensitivity.png")
TINY = ["--max-epochs", "2", "--fix", "depth=1", "--fix", "width=8"]
SPACE_COLUMNS = ["learning_rate", "optimizer", "activation", "depth", "width", "dropout",
                 "l2", "batch_size"]
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def search(directory, *arguments, task="multiclass", trials=2):
    return main(["--task", task, "--max-trials", str(trials), "--directory", str(directory),
                 *TINY, *arguments])


def board(directory):
    return pd.read_csv(os.path.join(directory, "leaderboard.csv"))


# Each tuner on one task, so every tuner and every task is covered once.
@pytest.fixture(scope="module", params=[("random", "regression"), ("bayesian", "binary"),
                                        ("hyperband", "multiclass")], ids=lambda p: "-".join(p))
def finished(request, tmp_path_factory):
    tuner, task = request.param
    directory = tmp_path_factory.mktemp(f"{tuner}-{task}")
    status = search(directory, "--tuner", tuner, "--fix", "activation=relu,tanh", task=task)
    return status, directory, task


def test_search_writes_every_result_file(finished):
    status, directory, _ = finished
    assert status == 0
    assert all(os.path.isfile(os.path.join(directory, name)) for name in RESULT_FILES)


def test_leaderboard_has_one_row_per_trial_with_every_hyperparameter(finished):
    _, directory, _ = finished
    rows = board(directory)
    assert len(rows) == 2
    assert {"trial", "status", *SPACE_COLUMNS, "score", "best_epoch", "seconds"} <= set(rows.columns)


def test_fixed_hyperparameters_hold_in_every_trial(finished):
    _, directory, _ = finished
    rows = board(directory)
    assert (rows["depth"] == 1).all() and (rows["width"] == 8).all()
    assert set(rows["activation"]) <= {"relu", "tanh"}


def test_test_metrics_are_named_as_in_the_templates(finished):
    _, directory, task = finished
    with open(os.path.join(directory, "metrics.json")) as file:
        metrics = json.load(file)
    assert set(metrics["test"]) == set(get_task(task).test_metrics)
    assert set(metrics["baselines"]) == {"linear", "hist_gradient_boosting"}


def test_best_model_predicts_raw_rows_like_a_template_model(finished):
    _, directory, task = finished
    features, _ = load_bundled(get_task(task).default_dataset)
    predictions = predict_frame(load_model(os.path.join(directory, "best_model.keras")),
                                features.head(3))
    assert len(predictions) == 3


def test_diverging_trial_fails_and_the_search_goes_on(tmp_path):
    status = search(tmp_path, "--fix", "optimizer=sgd", "--fix", "learning_rate=1e12,0.01",
                    "--fix", "activation=tanh", "--fix", "dropout=0", "--fix", "l2=0",
                    "--fix", "batch_size=32", task="regression")
    rows = board(tmp_path).set_index("learning_rate")
    assert status == 0
    assert rows.loc[1e12, "status"] == "FAILED" and "became" in rows.loc[1e12, "reason"]
    assert rows.loc[0.01, "status"] == "COMPLETED"


def test_consecutive_failures_stop_the_search_with_a_message(tmp_path, capsys):
    status = search(tmp_path, "--fix", "optimizer=sgd", "--fix", "learning_rate=1e12",
                    "--fix", "activation=tanh", "--max-consecutive-failures", "1", task="regression")
    assert status == 1
    assert "consecutive failed trials" in capsys.readouterr().err


def test_same_seed_gives_the_same_hyperparameters(tmp_path):
    for name in ("first", "second"):
        search(tmp_path / name, "--fix", "learning_rate=1e-3", "--fix", "optimizer=adam")
    assert board(tmp_path / "first")[SPACE_COLUMNS].equals(board(tmp_path / "second")[SPACE_COLUMNS])


def _finished_trials(directory):
    trials = os.path.join(directory, "trials")
    names = os.listdir(trials) if os.path.isdir(trials) else []
    done = 0
    for name in names:
        path = os.path.join(trials, name, "trial.json")
        if os.path.isfile(path):
            with open(path) as file:
                done += json.load(file)["status"] == "COMPLETED"
    return done


def test_search_killed_after_a_trial_resumes_to_exactly_n_trials(tmp_path):
    arguments = ["--task", "multiclass", "--max-trials", "3", "--directory", str(tmp_path),
                 "--max-epochs", "2", "--fix", "depth=1", "--fix", "width=8"]
    process = subprocess.Popen([sys.executable, "-m", "tuning.search", *arguments], cwd=ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while _finished_trials(tmp_path) < 1 and time.monotonic() < deadline:
        time.sleep(0.1)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert main(arguments) == 0
    rows = board(tmp_path)
    assert len(rows) == 3 and (rows["status"] == "COMPLETED").all()


def test_two_workers_complete_the_search(tmp_path):
    assert search(tmp_path, "--workers", "2", trials=3) == 0
    rows = board(tmp_path)
    assert len(rows) == 3 and (rows["status"] == "COMPLETED").all()


@pytest.fixture
def other_task_directory(tmp_path):
    (tmp_path / "search.json").write_text(json.dumps({"task": "binary"}))
    return tmp_path


@pytest.mark.parametrize("arguments, message", [
    (["--tuner", "grid"], "Unknown tuner 'grid'"),
    (["--task", "ranking"], "Unknown task 'ranking'"),
    (["--fix", "optimizer"], "expected NAME=VALUE"),
    (["--fix", "depth=deep"], "depth=deep; expected an integer >= 1"),
    (["--fix", "colour=red"], "unknown hyperparameter 'colour'"),
    (["--max-trials", "0"], "--max-trials=0; expected an integer >= 1"),
    (["--csv", "no/such.csv", "--target", "y"], "does not exist"),
    (["--target", "y"], "need --csv"),
])
def test_bad_input_prints_one_error_line_and_exits_2(tmp_path, capsys, arguments, message):
    status = main(["--task", "binary", "--directory", str(tmp_path), *arguments])
    error = capsys.readouterr().err
    assert status == 2
    assert error.startswith("error: ") and message in error and error.count("\n") == 1


def test_directory_of_another_task_is_refused(other_task_directory, capsys):
    status = main(["--task", "regression", "--directory", str(other_task_directory)])
    assert status == 2
    assert "task='binary'" in capsys.readouterr().err


def test_the_first_trial_is_the_templates_default_configuration(tmp_path):
    from templates.training import TrainingConfig

    defaults = TrainingConfig()
    search(tmp_path, trials=1)
    first = board(tmp_path).iloc[0]
    assert (first["optimizer"], first["activation"]) == (defaults.optimizer, defaults.activation)
    assert first["learning_rate"] == pytest.approx(defaults.learning_rate)
    assert first["l2"] == pytest.approx(defaults.l2)
    assert (first["dropout"], first["batch_size"]) == (defaults.dropout, defaults.batch_size)
