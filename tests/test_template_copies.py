"""A template copied out of the kit and edited still trains, predicts and tunes.

Each test copies a template into a folder outside the repository, edits the
copy by text substitution as a user would (another loss, an added layer, a
logits head, another optimizer, an added hyperparameter), runs it as a
script on a small CSV, and predicts with its saved model in a new process.
The copies run side by side.
"""

import json
import os
import pathlib
import subprocess
import sys

import pandas as pd
import pytest

from conftest import REPO_ROOT, make_frame

TEMPLATES = pathlib.Path(REPO_ROOT, "templates")
BATCH_NORM = (
    '        if dropout:\n',
    ('        x = keras.layers.BatchNormalization(name=f"batch_norm_{layer}")(x)\n'
     '        if dropout:\n'),
)
RESIDUAL_BLOCK = (
    '    # One linear unit',
    ('    x = keras.layers.Add(name="residual")([x, keras.layers.Dense(\n'
     '        width, activation=activation, kernel_initializer=initializer, name="block")(x)])\n'
     '    # One linear unit'),
)
# name: (template, [(old, new), ...]); every `old` must be in the template.
EDITS = {
    "binary_focal_loss_and_batch_norm": ("binary", [
        ("keras.losses.BinaryCrossentropy()", "keras.losses.BinaryFocalCrossentropy()"),
        BATCH_NORM,
    ]),
    "binary_logits_head": ("binary", [
        ('keras.layers.Dense(1, activation="sigmoid", name="output")',
         'keras.layers.Dense(1, name="output")'),
        ("keras.losses.BinaryCrossentropy()", "keras.losses.BinaryCrossentropy(from_logits=True)"),
    ]),
    "multiclass_activation_layer_and_adamw": ("multiclass", [
        ('outputs = keras.layers.Dense(data.num_classes, activation="softmax", name="output")(x)',
         ('x = keras.layers.Dense(data.num_classes, name="output")(x)\n'
          '    outputs = keras.layers.Activation("softmax", name="probabilities")(x)')),
        ('"adam": keras.optimizers.Adam(learning_rate)', '"adam": keras.optimizers.AdamW(learning_rate)'),
    ]),
    "multiclass_logits_head": ("multiclass", [
        ('keras.layers.Dense(data.num_classes, activation="softmax", name="output")',
         'keras.layers.Dense(data.num_classes, name="output")'),
        ("keras.losses.SparseCategoricalCrossentropy()",
         "keras.losses.SparseCategoricalCrossentropy(from_logits=True)"),
    ]),
    "regression_huber_loss_and_residual_block": ("regression", [
        ("keras.losses.MeanSquaredError()", "keras.losses.Huber()"),
        RESIDUAL_BLOCK,
    ]),
}
TASK_LABELS = {"binary": {"no", "yes"}, "multiclass": {"low", "mid", "high"}}


def edited_copy(folder, template, edits):
    text = (TEMPLATES / f"{template}.py").read_text()
    for old, new in edits:
        assert old in text, f"templates/{template}.py no longer holds {old!r}"
        text = text.replace(old, new)
    path = folder / f"my_{template}.py"
    path.write_text(text)
    return path


def start(folder, *command):
    """Starts `python *command` in `folder`, outside the repository, as a user would."""
    return subprocess.Popen(
        [sys.executable, *map(str, command)], cwd=folder, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": ""},
    )


def finish(process):
    out, err = process.communicate(timeout=600)
    assert process.returncode == 0, err[-3000:]
    return out, err


@pytest.fixture(scope="module")
def trained_copies(tmp_path_factory):
    """Trains every edited copy side by side; returns `{name: (folder, csv)}`."""
    runs = {}
    for name, (template, edits) in EDITS.items():
        folder = tmp_path_factory.mktemp(name)
        csv = folder / "data.csv"
        make_frame(template).to_csv(csv, index=False)
        script = edited_copy(folder, template, edits)
        runs[name] = (folder, csv, start(folder, script.name, "--csv", csv, "--target", "target",
                                         "--epochs", "3", "--hidden", "8", "--output", "run",
                                         "--quiet"))
    errors = {name: finish(process)[1] for name, (_, _, process) in runs.items()}
    return {name: (folder, csv, errors[name]) for name, (folder, csv, _) in runs.items()}


@pytest.fixture(scope="module")
def predictions(trained_copies):
    """Predicts the training CSV with each saved model, each in a new process."""
    processes = {
        name: start(folder, "-m", "templates.predict", "--model", folder / "run" / "model.keras",
                    "--csv", csv, "--output", "predictions.csv")
        for name, (folder, csv, _) in trained_copies.items()
    }
    for process in processes.values():
        finish(process)
    return {name: pd.read_csv(folder / "predictions.csv", keep_default_na=False)
            for name, (folder, _, _) in trained_copies.items()}


@pytest.mark.parametrize("name", list(EDITS))
def test_an_edited_copy_trains_and_writes_its_results(trained_copies, name):
    folder, _, _ = trained_copies[name]
    assert {"model.keras", "metrics.json", "history.csv", "curves.png"} <= {
        path.name for path in (folder / "run").iterdir()}
    metrics = json.loads((folder / "run" / "metrics.json").read_text())
    assert metrics["task"] == EDITS[name][0]


@pytest.mark.parametrize("name", list(EDITS))
def test_a_copy_run_as_a_script_prints_no_tensorflow_start_up_lines(trained_copies, name):
    _, _, stderr = trained_copies[name]
    for line in ("oneDNN", "cpu_feature_guard", "cuInit"):
        assert line not in stderr


@pytest.mark.parametrize("name", list(EDITS))
def test_its_saved_model_predicts_raw_rows_in_a_new_process(trained_copies, predictions, name):
    task = EDITS[name][0]
    rows = pd.read_csv(trained_copies[name][1])
    predicted = predictions[name]
    assert len(predicted) == len(rows)
    if task == "regression":
        assert predicted["prediction"].notna().all()
        return
    assert set(predicted["prediction"].astype(str)) <= TASK_LABELS[task]
    # Probabilities, also for a logits head: predict applies the task's activation.
    low = 0.5 if task == "binary" else 1 / 3
    assert predicted["probability"].between(low - 1e-6, 1.0).all()


def test_the_saved_model_records_its_logits_head(trained_copies):
    from templates.predict import load_model

    folder, _, _ = trained_copies["binary_logits_head"]
    info = load_model(str(folder / "run" / "model.keras")).get_layer("model_info")
    assert (info.task, info.class_names, info.from_logits) == ("binary", ["no", "yes"], True)


def test_a_copy_is_tuned_over_the_hyperparameter_it_adds(tmp_path):
    csv = tmp_path / "data.csv"
    make_frame("binary").to_csv(csv, index=False)
    script = edited_copy(tmp_path, "binary", [(BATCH_NORM[0], (
        '        if hp.Boolean("batch_norm", default=False):\n'
        '            x = keras.layers.BatchNormalization(name=f"batch_norm_{layer}")(x)\n'
        '        if dropout:\n'))])
    finish(start(tmp_path, "-m", "tuning.search", "--template", script.name, "--csv", csv,
                 "--target", "target", "--max-trials", "2", "--max-epochs", "2", "--folds", "1",
                 "--fix", "depth=1", "--fix", "width=8", "--ensemble", "1",
                 "--directory", "search"))
    board = pd.read_csv(tmp_path / "search" / "leaderboard.csv")
    assert len(board) == 2 and "batch_norm" in board.columns
    assert (board["status"] == "COMPLETED").all()
    best = json.loads((tmp_path / "search" / "best_hyperparameters.json").read_text())
    assert "batch_norm" in best["hyperparameters"]
