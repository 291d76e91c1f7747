"""The picture both monitors draw: layers by step, beside a summary curve."""

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

_MAX_STEP_TICKS = 16


def plot_layers_by_step(
    path,
    *,
    title,
    layers,
    steps,
    matrix,
    colorbar_label,
    curves,
    curve_label,
    log_curve,
    value_range=None,
):
    """Writes a PNG: a layers-by-step heatmap beside curves over the steps.

    The figure is drawn on its own Agg canvas, so it neither needs nor changes
    pyplot's global backend.

    Args:
        path: str or path-like, where the PNG is written.
        title: str, the figure's title.
        layers: list of str, one row label per layer, first layer on top.
        steps: list of int, the training step of each measurement (column).
        matrix: array of shape `(len(layers), len(steps))`; non-finite
            entries are left blank.
        colorbar_label: str, what the heatmap's colours mean.
        curves: list of `(label, values, threshold)`: each curve is drawn
            against `steps`, and `threshold` (or None) as a dashed line.
        curve_label: str, the y-axis label of the curves.
        log_curve: bool, whether the curves' y axis is logarithmic.
        value_range: optional `(low, high)` shared by the colours and the
            curves' y axis, e.g. `(0, 1)` for fractions. Defaults to the
            range of the data.

    Example:

    >>> plot_layers_by_step(
    ...     "/tmp/example.png", title="Example", layers=["a", "b"],
    ...     steps=[0, 10], matrix=[[1.0, 2.0], [3.0, 4.0]],
    ...     colorbar_label="value", curves=[("a/b", [1 / 3, 1 / 2], 0.1)],
    ...     curve_label="ratio", log_curve=True)
    """
    matrix = np.ma.masked_invalid(np.asarray(matrix, dtype="float64"))
    figure = Figure(figsize=(12, 1.5 + 0.35 * max(len(layers), 6)))
    FigureCanvasAgg(figure)
    heatmap_axes, curve_axes = figure.subplots(
        1, 2, gridspec_kw={"width_ratios": [3, 2]}
    )

    low, high = value_range or (None, None)
    image = heatmap_axes.imshow(
        matrix,
        aspect="auto",
        interpolation="nearest",
        cmap="viridis",
        vmin=low,
        vmax=high,
    )
    figure.colorbar(image, ax=heatmap_axes, label=colorbar_label)
    heatmap_axes.set_yticks(range(len(layers)), labels=layers)
    columns = np.unique(
        np.linspace(0, len(steps) - 1, min(len(steps), _MAX_STEP_TICKS))
        .round()
        .astype(int)
    )
    heatmap_axes.set_xticks(columns, labels=[steps[c] for c in columns])
    heatmap_axes.set_xlabel("training step")
    heatmap_axes.set_ylabel("layer (input at top)")

    for label, values, threshold in curves:
        (line,) = curve_axes.plot(steps, values, marker=".", label=label)
        if threshold is not None:
            curve_axes.axhline(
                threshold,
                color=line.get_color(),
                linestyle="--",
                label=f"threshold {threshold:g}",
            )
    if log_curve:
        curve_axes.set_yscale("log")
    if value_range:
        curve_axes.set_ylim(low, high)
    curve_axes.set_xlabel("training step")
    curve_axes.set_ylabel(curve_label)
    curve_axes.grid(True, alpha=0.3)
    curve_axes.legend(fontsize="small")

    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=80)
