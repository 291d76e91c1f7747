"""Specification of `python -m tuning.search`, on tiny budgets (2-3 trials, 2 epochs)."""

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time

import pandas as pd
import pytest

from templates.data import load_bundled
from templates.ensemble import ensemble_members
from templates.predict import load_model, predict_frame
from templates.tasks import get_task
from tuning import workers
from tuning.search import main

from conftest import run_module

RESULT_FILES = ("best_hyperparameters.json", "leaderboard.csv", "best_model.keras",
                "metrics.json", "report.md", "sensitivity.png")
TINY_MODEL = ["--max-epochs", "2", "--fix", "depth=1", "--fix", "width=8"]
# One validation split: cross-validation has tests of its own.
TINY = [*TINY_MODEL, "--folds", "1"]
SPACE_COLUMNS = ["learning_rate", "optimizer", "activation", "depth", "width", "dropout",
                 "l2", "batch_size"]
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# How long a test waits for a search process to reach a state: generous,
# since other tests may be using every core. Waits end as soon as it is reached.
WAIT_SECONDS = 300
# The environment of a search whose output a test reads: without
# PYTHONUNBUFFERED, as in CI, so that its stdout is a block-buffered pipe.
BUFFERED_OUTPUT = {name: value for name, value in os.environ.items()
                   if name != "PYTHONUNBUFFERED"}


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
    assert rows["val_loss"].notna().all()  # the trials' other validation metrics


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


def test_the_final_model_averages_the_best_trials(tmp_path):
    assert search(tmp_path, "--ensemble", "2", trials=3) == 0
    best_two = board(tmp_path).nsmallest(2, "score")["trial"].tolist()
    with open(os.path.join(tmp_path, "metrics.json")) as file:
        metrics = json.load(file)
    with open(os.path.join(tmp_path, "best_hyperparameters.json")) as file:
        best = json.load(file)
    model = load_model(os.path.join(tmp_path, "best_model.keras"))
    assert [int(trial) for trial in metrics["ensemble_trials"]] == best_two
    assert [member["trial"] for member in best["ensemble"]] == metrics["ensemble_trials"]
    assert best["trial"] == metrics["best_trial"] == metrics["ensemble_trials"][0]
    assert len(ensemble_members(model)) == 2


def test_ensemble_1_keeps_the_best_trial_alone(tmp_path):
    assert search(tmp_path, "--ensemble", "1", trials=2) == 0
    model = load_model(os.path.join(tmp_path, "best_model.keras"))
    assert ensemble_members(model) == [model]
    with open(os.path.join(tmp_path, "report.md")) as file:
        assert "The best configuration, retrained on train+validation" in file.read()


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


def _finished_trials(directory, status="COMPLETED"):
    """The number of trials in `directory` whose `trial.json` has `status`."""
    trials = os.path.join(directory, "trials")
    names = os.listdir(trials) if os.path.isdir(trials) else []
    done = 0
    for name in names:
        path = os.path.join(trials, name, "trial.json")
        if os.path.isfile(path):
            with open(path) as file:
                done += json.load(file)["status"] == status
    return done


def wait_until(condition, what, process):
    """Returns `condition()` once it is true; fails if `process` ends first or after WAIT_SECONDS."""
    deadline = time.monotonic() + WAIT_SECONDS
    while not (value := condition()):
        assert process.poll() is None, f"the search ended (status {process.returncode}) before {what}"
        assert time.monotonic() < deadline, f"no {what} after {WAIT_SECONDS} s"
        time.sleep(0.05)
    return value


def output_lines(process):
    """A queue of `process`'s stdout lines, read in a thread; `None` once it is closed."""
    lines = queue.Queue()

    def read():
        for line in process.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    return lines


def wait_for_line(lines, prefix):
    """Returns the first line from `lines` that starts with `prefix`, waiting up to WAIT_SECONDS."""
    while True:
        try:
            line = lines.get(timeout=WAIT_SECONDS)
        except queue.Empty:
            pytest.fail(f"no line starting with {prefix!r} after {WAIT_SECONDS} s")
        assert line is not None, f"the search ended before a line starting with {prefix!r}"
        if line.startswith(prefix):
            return line


def test_search_killed_after_a_trial_resumes_to_exactly_n_trials(tmp_path):
    arguments = ["--task", "multiclass", "--max-trials", "3", "--directory", str(tmp_path), *TINY]
    process = subprocess.Popen([sys.executable, "-m", "tuning.search", *arguments], cwd=ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_until(lambda: _finished_trials(tmp_path) >= 1, "a finished trial", process)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert main(arguments) == 0
    rows = board(tmp_path)
    assert len(rows) == 3 and (rows["status"] == "COMPLETED").all()


def test_two_workers_run_the_same_trials_as_one_process(tmp_path):
    # As users run it: the workers start before the chief imports TensorFlow.
    finished = run_module("tuning.search", "--task", "multiclass", "--max-trials", 3,
                          "--directory", tmp_path / "two", *TINY, "--workers", 2)
    assert finished.returncode == 0, finished.stderr[-2000:]
    assert search(tmp_path / "one", trials=3) == 0
    two, one = (board(tmp_path / name).sort_values("trial").reset_index(drop=True)
                for name in ("two", "one"))
    assert len(two) == 3 and (two["status"] == "COMPLETED").all()
    assert two[SPACE_COLUMNS].equals(one[SPACE_COLUMNS])
    assert sorted(os.listdir(tmp_path / "two" / "workers")) == ["tuner0.log", "tuner1.log"]


def _children(pid):
    """The process IDs of `pid`'s children, whichever of its threads started them."""
    children = []
    try:
        threads = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:  # the process is gone
        return children
    for thread in threads:
        try:
            with open(f"/proc/{pid}/task/{thread}/children") as file:
                children += [int(child) for child in file.read().split()]
        except FileNotFoundError:  # the thread ended
            pass
    return children


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds the workers in /proc")
def test_a_worker_killed_mid_search_is_replaced_and_the_search_completes(tmp_path):
    process = subprocess.Popen(
        [sys.executable, "-m", "tuning.search", "--task", "multiclass", "--max-trials", "6",
         "--directory", str(tmp_path), *TINY, "--workers", "2"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        env=BUFFERED_OUTPUT,
    )
    lines = output_lines(process)
    wait_for_line(lines, "trial ")  # printed as the first trial ends, while the workers run
    worker = wait_until(lambda: _children(process.pid), "a worker process", process)[0]
    finished = _finished_trials(tmp_path)
    os.kill(worker, signal.SIGKILL)
    status = process.wait(timeout=WAIT_SECONDS)
    output = "".join(iter(lambda: lines.get(timeout=WAIT_SECONDS), None))
    assert status == 0, output
    assert finished < 6, "the worker was killed once every trial had finished"
    rows = board(tmp_path)
    assert len(rows) == 6 and (rows["status"] == "COMPLETED").all()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="forks trials only on Linux")
def test_a_trial_whose_process_dies_fails_and_the_search_goes_on(tmp_path):
    # A search's trials run in child processes of its own, so that memory
    # stays flat; the out-of-memory killer may pick one.
    process = subprocess.Popen(
        [sys.executable, "-m", "tuning.search", "--task", "multiclass", "--max-trials", "3",
         "--directory", str(tmp_path), *TINY], cwd=ROOT, stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL, text=True,
    )
    # Once the first trial is running, the search's only child is its process.
    wait_until(lambda: _finished_trials(tmp_path, "RUNNING"), "a running trial", process)
    trial = wait_until(lambda: _children(process.pid), "a trial process", process)[0]
    os.kill(trial, signal.SIGKILL)
    output, _ = process.communicate(timeout=WAIT_SECONDS)
    assert process.returncode == 0, output
    rows = board(tmp_path)
    assert list(rows["status"]) == ["FAILED", "COMPLETED", "COMPLETED"]
    assert rows["reason"][0] == ("the trial's process ended without a result "
                                 "(killed by signal SIGKILL (out of memory?)).")


@pytest.mark.parametrize("arguments", [
    ["--task", "binary"],
    ["--task", "binary", "--workers", "0"],
    ["--task", "binary", "--workers", "two"],
    ["--task", "binary", "--workers"],
    ["--task", "binary", "--workers", "2", "--help"],
])
def test_workers_are_planned_only_when_asked_for(tmp_path, arguments):
    assert workers.plan([*arguments, "--directory", str(tmp_path / "run")]) is None
    assert not (tmp_path / "run").exists()


def test_workers_do_not_start_in_a_folder_that_holds_something_else(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    assert workers.plan(["--workers", "2", "--directory", str(tmp_path)]) is None
    assert os.listdir(tmp_path) == ["notes.txt"]


@pytest.mark.parametrize("start", ["spawned", "forked"])
def test_bad_input_stops_the_early_workers_and_leaves_nothing_behind(tmp_path, capsys, start):
    # A process that runs TensorFlow already spawns its workers; a fresh
    # process forks them.
    directory = tmp_path / "run"
    arguments = ["--task", "ranking", "--workers", "2", "--directory", str(directory)]
    if start == "spawned":
        import tensorflow as tf

        tf.constant(1.0) + 1.0  # starts TensorFlow's runtime here
        assert main(arguments) == 2
        error = capsys.readouterr().err
    else:
        finished = run_module("tuning.search", *arguments)
        assert finished.returncode == 2
        error = finished.stderr
    assert error.startswith("error: Unknown task 'ranking'") and error.count("\n") == 1
    assert not directory.exists()


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
    (["--ensemble", "0"], "--ensemble=0; expected an integer >= 1"),
    (["--folds", "-1"], "--folds=-1; expected an integer >= 0"),
    (["--trials-ahead", "-1"], "--trials-ahead=-1; expected an integer >= 0"),
    (["--folds", "3", "--tuner", "hyperband"], "Expected --folds 1 (or 0) with hyperband"),
    (["--folds", "300"], "for 300 cross-validation folds; expected at least 600 rows"),
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


def test_small_data_is_cross_validated_by_default(tmp_path):
    assert main(["--task", "multiclass", "--max-trials", "1", "--directory", str(tmp_path),
                 *TINY_MODEL]) == 0
    with open(os.path.join(tmp_path, "metrics.json")) as file:
        assert json.load(file)["folds"] == 5
    with open(os.path.join(tmp_path, "report.md")) as file:
        assert "the mean over 5 cross-validation folds" in file.read()


def test_a_search_does_not_resume_with_other_folds(tmp_path, capsys):
    assert search(tmp_path, trials=1) == 0
    assert search(tmp_path, "--folds", "2", trials=1) == 2
    assert "folds=1, but this one has folds=2" in capsys.readouterr().err


def test_the_first_trial_is_the_templates_default_configuration(tmp_path):
    # The defaults declared in templates/multiclass.py.
    search(tmp_path, trials=1)
    first = board(tmp_path).iloc[0]
    assert (first["optimizer"], first["activation"]) == ("adam", "relu")
    assert first["learning_rate"] == pytest.approx(1e-3)
    assert first["l2"] == pytest.approx(0.1)
    assert (first["dropout"], first["batch_size"]) == (0.0, 32)
