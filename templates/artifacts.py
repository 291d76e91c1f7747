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
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib import ticker  # noqa: E402

from templates import data_loss  # noqa: E402
from templates.errors import TemplateError  # noqa: E402
from templates.numbers import format_number  # noqa: E402

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


def plot_curves(history, metric, path, best_epoch=None):
    """Writes `curves_figure(history, metric, best_epoch)` to the PNG file `path`.

    Example:

    >>> history = {"loss": [25.0, 3.0, 0.9], "val_loss": [24.0, 3.1, 1.0],
    ...            "data_loss": [0.7, 0.2, 0.05], "val_data_loss": [0.6, 0.2, 0.08],
    ...            "accuracy": [0.6, 0.9, 0.97], "val_accuracy": [0.6, 0.92, 0.95]}
    >>> plot_curves(history, "accuracy", "curves.png", best_epoch=3)
    >>> os.path.getsize("curves.png") > 0
    True
    """
    figure = curves_figure(history, metric, best_epoch)
    replace_atomically(path, figure.savefig)
    plt.close(figure)


def curves_figure(history, metric, best_epoch=None):
    """Draws the loss without the L2 penalty beside `metric`, training and validation, per epoch.

    The left panel shows `data_loss`, the kit's `DataLoss` metric: Keras'
    `loss` adds the L2 penalty, which dominates it early on (the default
    binary run starts at 25) and hides how well the model fits. Without
    `data_loss` in `history` (a model compiled without `DataLoss`), it shows
    `loss`. When the loss's largest value is more than `LOG_SCALE_SPAN`
    times its smallest, its panel uses a log scale; the metric's panel is
    always linear (accuracy from 0.2 to 1 reads badly on a log scale).

    Args:
        history: dict `{name: per-epoch values}`, Keras' `History.history`.
        metric: str, the metric drawn beside the loss, e.g. `"accuracy"`.
        best_epoch: optional int, the 1-based epoch whose weights the model
            keeps, marked on both panels.

    Returns:
        A matplotlib `Figure` with two axes.

    Example:

    >>> figure = curves_figure({"loss": [9.0, 1.0], "val_loss": [8.0, 1.5]}, "mae")
    >>> [axis.get_ylabel() for axis in figure.axes]
    ['loss (log scale)', 'mae']
    >>> plt.close(figure)
    """
    loss = data_loss.NAME if data_loss.NAME in history else "loss"
    titles = {loss: "loss without the L2 penalty" if loss == data_loss.NAME else "loss",
              metric: metric}
    figure, axes = plt.subplots(1, 2, figsize=(10, 4))
    for axis, name in zip(axes, (loss, metric)):
        curves = {label: np.asarray(history[key], dtype=float)
                  for label, key in (("training", name), ("validation", f"val_{name}"))
                  if key in history}
        for label, values in curves.items():
            axis.plot(range(1, len(values) + 1), values, label=label)
        if name == loss and curves and _spans_widely(np.concatenate(list(curves.values()))):
            axis.set_yscale("log")
            axis.yaxis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
            axis.yaxis.set_major_formatter(ticker.FuncFormatter(lambda y, _: format_number(y)))
            axis.yaxis.set_minor_formatter(ticker.NullFormatter())
        if best_epoch is not None:
            axis.axvline(best_epoch, color="grey", linestyle="--", linewidth=1,
                         label=f"best epoch ({best_epoch})")
        axis.set_title(titles[name])
        axis.set_xlabel("epoch")
        axis.set_ylabel(name + (" (log scale)" if axis.get_yscale() == "log" else ""))
        axis.grid(alpha=0.3)
        if axis.get_legend_handles_labels()[0]:
            axis.legend()
    figure.tight_layout()
    return figure


# The loss panel switches to a log scale when its largest value is more than
# this many times its smallest: the default binary run's loss without the L2
# penalty falls from 0.56 to 0.08, and on a linear scale looks flat after
# epoch 40 while it still falls by a quarter.
LOG_SCALE_SPAN = 3


def _spans_widely(values):
    """Whether positive `values` span more than `LOG_SCALE_SPAN` (NaN and inf ignored)."""
    finite = values[np.isfinite(values)]
    return finite.size > 0 and finite.min() > 0 and finite.max() > LOG_SCALE_SPAN * finite.min()


def save_run(run, output_dir, curve_metric=None, overwrite=False):
    """Writes `model.keras`, `metrics.json`, `history.csv` and `curves.png`.

    Args:
        run: a `templates.recipe.TrainingRun`.
        output_dir: str, the folder to write into (created if needed).
        curve_metric: str, the metric drawn beside the loss. Defaults to
            the task table's `curve_metric` of the run's task.
        overwrite: bool, whether an existing non-empty folder may be written
            into.

    Returns:
        `output_dir`.
    """
    check_output_dir(output_dir, overwrite)
    if curve_metric is None:
        from templates.tasks import get_task

        curve_metric = get_task(run.metrics["task"]).curve_metric
    os.makedirs(output_dir, exist_ok=True)
    history = pd.DataFrame(run.history)
    history.insert(0, "epoch", range(1, len(history) + 1))
    replace_atomically(
        os.path.join(output_dir, HISTORY_FILE), lambda p: history.to_csv(p, index=False)
    )
    plot_curves(run.history, curve_metric, os.path.join(output_dir, CURVES_FILE),
                best_epoch=run.metrics.get("best_epoch"))
    write_json(run.metrics, os.path.join(output_dir, METRICS_FILE))
    save_model(run.model, os.path.join(output_dir, MODEL_FILE))
    return output_dir
