"""Writing a run's results: model, metrics, history and learning curves.

Files are written to a temporary name and then renamed, so an interrupted run
never leaves a half-written `model.keras` or `metrics.json`, and an existing
folder is only written into when the caller says so.

Example:

>>> check_output_dir("runs/new-folder", overwrite=False)  # a new folder is fine
"""

import datetime
import json
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from templates.errors import TemplateError  # noqa: E402

MODEL_FILE = "model.keras"
METRICS_FILE = "metrics.json"
HISTORY_FILE = "history.csv"
CURVES_FILE = "curves.png"


def default_output_dir(name, root="runs"):
    """Returns a new folder name under `root`, e.g. `runs/binary-20261125-101500`."""
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    path, suffix = os.path.join(root, f"{name}-{stamp}"), 1
    while os.path.exists(path):
        suffix += 1
        path = os.path.join(root, f"{name}-{stamp}-{suffix}")
    return path


def check_output_dir(path, overwrite):
    """Refuses to write into an existing, non-empty folder unless `overwrite`.

    Raises:
        TemplateError: if `path` is a file, or a non-empty folder and
            `overwrite` is false.
    """
    if os.path.isfile(path):
        raise TemplateError(f"Output path '{path}' is a file; expected a folder.")
    if os.path.isdir(path) and os.listdir(path) and not overwrite:
        raise TemplateError(
            f"Output folder '{path}' already exists and is not empty; pass "
            "--overwrite to replace its files, or choose another --output."
        )


def replace_atomically(path, write):
    """Calls `write(temporary_path)`, then renames the result to `path`."""
    root, extension = os.path.splitext(path)
    temporary = f"{root}.partial{extension}"
    try:
        write(temporary)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def save_model(model, path):
    """Saves a Keras model so that `path` is either complete or absent/old."""
    replace_atomically(path, model.save)


def write_json(payload, path):
    """Writes `payload` as indented JSON, atomically."""

    def write(temporary):
        with open(temporary, "w") as file:
            json.dump(payload, file, indent=2, sort_keys=True)
            file.write("\n")

    replace_atomically(path, write)


def plot_curves(history, metric, path):
    """Draws training and validation loss and `metric` per epoch into a PNG."""
    epochs = range(1, len(history["loss"]) + 1)
    figure, axes = plt.subplots(1, 2, figsize=(10, 4))
    for axis, name in zip(axes, ("loss", metric)):
        axis.plot(epochs, history[name], label="training")
        axis.plot(epochs, history[f"val_{name}"], label="validation")
        axis.set_xlabel("epoch")
        axis.set_ylabel(name)
        axis.legend()
    figure.tight_layout()
    replace_atomically(path, figure.savefig)
    plt.close(figure)


def save_run(run, output_dir, curve_metric, overwrite=False):
    """Writes `model.keras`, `metrics.json`, `history.csv` and `curves.png`.

    Args:
        run: a `templates.recipe.TrainingRun`.
        output_dir: str, the folder to write into (created if needed).
        curve_metric: str, the metric drawn beside the loss.
        overwrite: bool, whether an existing non-empty folder may be written
            into.

    Returns:
        `output_dir`.
    """
    check_output_dir(output_dir, overwrite)
    os.makedirs(output_dir, exist_ok=True)
    history = pd.DataFrame(run.history)
    history.insert(0, "epoch", range(1, len(history) + 1))
    replace_atomically(
        os.path.join(output_dir, HISTORY_FILE), lambda p: history.to_csv(p, index=False)
    )
    plot_curves(run.history, curve_metric, os.path.join(output_dir, CURVES_FILE))
    write_json(run.metrics, os.path.join(output_dir, METRICS_FILE))
    save_model(run.model, os.path.join(output_dir, MODEL_FILE))
    return output_dir
