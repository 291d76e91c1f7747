"""`curves.png`: the loss without the L2 penalty beside the task's metric."""

import matplotlib.pyplot as plt
import numpy as np
import pytest

from templates.artifacts import curves_figure, plot_curves

EPOCHS = 150
# Like the default binary run: the penalty dominates `loss` early on.
DATA_LOSS = 0.08 + 0.5 * np.exp(-np.arange(EPOCHS) / 15)
HISTORY = {
    "loss": list(25 * np.exp(-np.arange(EPOCHS) / 8) + DATA_LOSS),
    "val_loss": list(25 * np.exp(-np.arange(EPOCHS) / 8) + DATA_LOSS * 0.9),
    "data_loss": list(DATA_LOSS), "val_data_loss": list(DATA_LOSS * 0.9),
    "accuracy": list(np.linspace(0.77, 0.98, EPOCHS)),
    "val_accuracy": list(np.linspace(0.94, 0.97, EPOCHS)),
}


@pytest.fixture
def figure(request):
    history, best_epoch = request.param
    figure = curves_figure(history, "accuracy", best_epoch=best_epoch)
    yield figure
    plt.close(figure)


@pytest.mark.parametrize("figure", [(HISTORY, None)], indirect=True)
def test_the_loss_panel_shows_the_loss_without_the_l2_penalty(figure):
    loss_axis = figure.axes[0]
    assert loss_axis.get_title() == "loss without the L2 penalty"
    training, validation = loss_axis.get_lines()
    np.testing.assert_allclose(training.get_ydata(), HISTORY["data_loss"])
    np.testing.assert_allclose(validation.get_ydata(), HISTORY["val_data_loss"])


@pytest.mark.parametrize("figure", [(HISTORY, None)], indirect=True)
def test_a_loss_spanning_a_wide_range_is_drawn_on_a_log_scale_and_accuracy_is_not(figure):
    assert [axis.get_yscale() for axis in figure.axes] == ["log", "linear"]
    assert figure.axes[0].get_ylabel() == "data_loss (log scale)"


@pytest.mark.parametrize("figure", [
    ({name: values for name, values in HISTORY.items() if "data_loss" not in name}, None),
], indirect=True)
def test_without_data_loss_the_loss_is_drawn(figure):
    assert figure.axes[0].get_title() == "loss"
    np.testing.assert_allclose(figure.axes[0].get_lines()[0].get_ydata(), HISTORY["loss"])


@pytest.mark.parametrize("figure", [(HISTORY, 120)], indirect=True)
def test_the_best_epoch_is_marked_on_both_panels(figure):
    for axis in figure.axes:
        assert "best epoch (120)" in axis.get_legend_handles_labels()[1]


def test_the_metric_stays_on_a_linear_scale_even_when_it_spans_widely():
    history = {**HISTORY, "accuracy": list(np.linspace(0.2, 1.0, EPOCHS))}
    figure = curves_figure(history, "accuracy")
    assert figure.axes[1].get_yscale() == "linear"
    plt.close(figure)


def test_a_flat_loss_stays_on_a_linear_scale(tmp_path):
    history = {"loss": [0.5, 0.45, 0.44], "val_loss": [0.5, 0.47, 0.46], "mae": [1.0, 0.9, 0.8],
               "val_mae": [1.0, 0.95, 0.9]}
    figure = curves_figure(history, "mae")
    assert [axis.get_yscale() for axis in figure.axes] == ["linear", "linear"]
    plt.close(figure)
    plot_curves(history, "mae", str(tmp_path / "curves.png"))
    assert (tmp_path / "curves.png").read_bytes().startswith(b"\x89PNG")
