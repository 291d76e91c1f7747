"""`ProgressLine`: one line in place in a terminal, a line every few epochs in a log."""

import copy
import io
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from templates import progress
from templates.progress import ProgressLine
from tests.conftest import REPO_ROOT


class Terminal(io.StringIO):
    def isatty(self):
        return True


def drive(callback, scores, epochs):
    """Runs `callback` through a fake `fit` of `epochs` epochs that ends after `scores`."""
    callback.set_params({"epochs": epochs, "steps": 1, "verbose": 0})
    callback.on_train_begin()
    for epoch, score in enumerate(scores):
        callback.on_epoch_end(epoch, {"loss": 1.0, "val_loss": score})
    callback.on_train_end()


def test_a_log_gets_a_line_every_few_epochs_not_one_per_epoch():
    log = io.StringIO()
    drive(ProgressLine(every_epochs=10, every_seconds=None, stream=log),
          np.linspace(1.0, 0.1, 300), epochs=300)
    lines = log.getvalue().splitlines()
    assert len(lines) == 32  # epochs 1, 10, 20, ..., 300, and the summary
    assert "\r" not in log.getvalue()
    assert [line.split()[1] for line in lines[:3]] == ["1/300", "10/300", "20/300"]
    assert lines[1].startswith("epoch 10/300  val_loss 0.9729  best 0.9729 at epoch 10  0:00 spent")
    assert lines[-1].startswith("ran all 300 epochs; best val_loss 0.1 at epoch 300")


def test_a_terminal_gets_one_line_rewritten_in_place(monkeypatch):
    monkeypatch.setattr(progress, "_columns", lambda stream: 200)
    terminal = Terminal()
    drive(ProgressLine(stream=terminal), np.linspace(1.0, 0.1, 300), epochs=300)
    text = terminal.getvalue()
    assert text.count("\r") == 300
    assert text.count("\n") == 2  # the last state stays on screen, then the summary
    assert "epoch 150/300" in text and "left" in text


def test_a_terminal_line_is_cut_to_the_terminal_width(monkeypatch):
    monkeypatch.setattr(progress, "_columns", lambda stream: 40)
    terminal = Terminal()
    drive(ProgressLine(stream=terminal), [0.5, 0.4, 0.3], epochs=300)
    in_place = terminal.getvalue().split("\n")[0].split("\r")[1:]
    assert [len(line) for line in in_place] == [39, 39, 39]


def test_the_last_line_says_where_training_stopped_and_the_best_epoch():
    log = io.StringIO()
    drive(ProgressLine(stream=log), [0.5, 0.3, 0.4, 0.45, 0.6], epochs=300)
    lines = log.getvalue().splitlines()
    assert lines[-2].startswith("epoch 5/300  val_loss 0.6  best 0.3 at epoch 2")
    assert lines[-1].startswith("stopped early at epoch 5 of 300; best val_loss 0.3 at epoch 2")


def test_a_log_also_gets_a_line_when_every_seconds_have_passed(monkeypatch):
    now = [0.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: now[0])
    log = io.StringIO()
    callback = ProgressLine(every_epochs=10, every_seconds=30, stream=log)
    callback.set_params({"epochs": 20})
    callback.on_train_begin()
    for epoch in range(20):
        now[0] += 4.0  # each epoch takes 4 s: 30 s have passed 8 epochs after a line
        callback.on_epoch_end(epoch, {"val_loss": 0.5})
    epochs = [line.split()[1] for line in log.getvalue().splitlines()]
    assert epochs == ["1/20", "9/20", "10/20", "18/20", "20/20"]


def test_without_the_monitored_value_the_line_shows_epochs_and_times():
    log = io.StringIO()
    callback = ProgressLine(stream=log)
    callback.set_params({"epochs": 2})
    callback.on_train_begin()
    for epoch in range(2):
        callback.on_epoch_end(epoch, {"loss": 0.3})
    callback.on_train_end()
    assert log.getvalue().splitlines()[-2].startswith("epoch 2/2  0:00 spent")
    assert log.getvalue().splitlines()[-1].startswith("ran all 2 epochs; 0:00 spent")


def test_mode_max_tracks_the_highest_score():
    log = io.StringIO()
    callback = ProgressLine(monitor="val_accuracy", mode="max", stream=log)
    callback.set_params({"epochs": 3})
    callback.on_train_begin()
    for epoch, score in enumerate([0.8, 0.9, 0.85]):
        callback.on_epoch_end(epoch, {"val_accuracy": score})
    callback.on_train_end()
    assert "best val_accuracy 0.9 at epoch 2" in log.getvalue().splitlines()[-1]


def test_state_is_reset_for_the_next_fit_and_copies_share_the_stream():
    log = io.StringIO()
    callback = ProgressLine(stream=log)
    drive(callback, [0.1, 0.2], epochs=2)
    clone = copy.deepcopy(callback)
    assert clone.stream is log
    drive(clone, [0.5, 0.4], epochs=2)
    assert log.getvalue().splitlines()[-1].startswith("ran all 2 epochs; best val_loss 0.4 at epoch 2")


def test_stops_early_with_early_stopping_in_a_real_fit():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(keras.optimizers.SGD(0.0), "mean_squared_error")
    log = io.StringIO()
    x, y = np.ones((8, 3)), np.ones(8)
    model.fit(x, y, validation_data=(x, y), epochs=300, verbose=0,
              callbacks=[keras.callbacks.EarlyStopping(patience=2), ProgressLine(stream=log)])
    assert log.getvalue().splitlines()[-1].startswith("stopped early at epoch 3 of 300")


@pytest.mark.parametrize("argument, value", [
    ("mode", "auto"), ("every_epochs", 0), ("every_epochs", 2.5), ("every_seconds", 0),
])
def test_bad_arguments_name_the_value(argument, value):
    with pytest.raises(ValueError, match=f"{argument}={value!r}"):
        ProgressLine(**{argument: value})


def test_works_on_another_backend_than_tensorflow():
    script = (
        "import io, keras, numpy as np\n"
        "from templates.progress import ProgressLine\n"
        "model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])\n"
        "model.compile('sgd', 'mean_squared_error')\n"
        "log = io.StringIO()\n"
        "x, y = np.ones((8, 3)), np.ones(8)\n"
        "model.fit(x, y, validation_data=(x, y), epochs=3, verbose=0,"
        " callbacks=[ProgressLine(stream=log)])\n"
        "print(keras.backend.backend(), log.getvalue().splitlines()[-1])\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], check=False, cwd=REPO_ROOT, capture_output=True,
        text=True, env={**os.environ, "KERAS_BACKEND": "jax"}, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("jax ran all 3 epochs; best val_loss"), result.stdout
