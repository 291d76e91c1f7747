"""Study 1: sigmoid gradients vanish layer after layer; ReLU's do not.

`python -m studies.vanishing_gradients [--seeds 0,1,2] [--quick] [--output DIR]`

Plain MLPs (32 units per hidden layer, no regularisation, no normalisation)
with sigmoid, tanh, ReLU and Leaky ReLU hidden layers, each with Glorot and
He initialisation, at several depths, measured at initialisation and after
training with plain SGD. The study fits the slope of log10(gradient norm)
against the distance of a hidden layer from the last one: a slope of -0.3
means the gradient halves at every layer it flows back through. Two norms:
per example (the chain rule alone, the claim's mechanism) and of the batch
gradient on a 256-row probe, measured by `GradientMonitor` (what training
applies; it also falls when the rows' gradients cancel, the "shattered
gradients" of Balduzzi et al. 2017). `ActivationMonitor` measures saturated
and dead units.

Example:

>>> round(slope_per_layer([1.0, 0.1, 0.01]), 6)  # ordered from the output back
-1.0
"""

import sys
import warnings

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from callbacks import ActivationMonitor, GradientMonitor
from studies.common import (
    StudyResult,
    make_regression_data,
    mlp,
    new_figure,
    repeated_dataset,
    require_tensorflow_backend,
    seed_everything,
    study_main,
)

NAME = "vanishing_gradients"
ACTIVATIONS = ("sigmoid", "tanh", "relu", "leaky_relu")
INITIALIZERS = ("glorot_uniform", "he_normal")
# Each activation with the initialisation it was designed for: the quick run
# measures only these.
MATCHED = (
    ("sigmoid", "glorot_uniform"),
    ("tanh", "glorot_uniform"),
    ("relu", "he_normal"),
    ("leaky_relu", "he_normal"),
)
WIDTH = 32
BATCH_SIZE = 32
LEARNING_RATE = 0.01
PROBE_ROWS = 256
FULL = {"depths": (2, 4, 6, 8, 10), "rows": 512, "epochs": 30}
# Quick: a few steps, run eagerly (tracing each train step would take longer).
QUICK = {"depths": (2, 6), "rows": 128, "epochs": 2, "eager": True}
# Verdict thresholds, in log10 of the gradient norm per layer (towards the
# input): -0.3 is a halving at every layer; +-0.1 is within 26% per layer.
VANISHING_SLOPE = -0.3
FLAT_SLOPE = 0.1
# "Barely learns": the first hidden layer's weights move less than this
# fraction of the last hidden layer's relative movement.
BARELY_MOVED = 0.1


def slope_per_layer(norms):
    """Least-squares slope of log10(norm) per layer, `norms` from the last layer back.

    Negative means the gradient shrinks as it flows back towards the input.
    Zero norms count as `1e-30`.
    """
    logs = np.log10(np.maximum(np.asarray(norms, dtype=float), 1e-30))
    return float(np.polyfit(np.arange(len(logs)), logs, 1)[0])


def _layer_names(depth):
    return [f"hidden_{i}" for i in range(1, depth + 1)] + ["output"]


def _mean_fraction(history, kind, index):
    values = [
        values[index]
        for key, values in history.items()
        if key.startswith(f"{kind}_fraction/hidden_")
    ]
    return float(np.mean(values)) if values else float("nan")


def per_example_norms(model, x, y):
    """Mean over rows of each Dense kernel's gradient norm for that row alone.

    For one row the gradient of a Dense kernel is the outer product of the
    layer's input `a` and the loss gradient `delta` at its pre-activation,
    so its norm is `|a| * |delta|`: the chain rule at work, free of the
    cancellation between rows that a batch gradient adds. The loss is the
    squared error; the order is the model's layers, first to output.
    """
    inputs, pre_activations = [], []
    with tf.GradientTape() as tape:
        a = tf.convert_to_tensor(x)
        for layer in model.layers:
            inputs.append(a)
            z = tf.matmul(a, layer.kernel) + layer.bias
            pre_activations.append(z)
            a = layer.activation(z)
        # A sum: each row's term depends on that row only.
        loss = tf.reduce_sum(tf.square(a - y))
    deltas = tape.gradient(loss, pre_activations)
    return np.array([
        float(tf.reduce_mean(tf.norm(a, axis=1) * tf.norm(d, axis=1)))
        for a, d in zip(inputs, deltas)
    ])


def _mse(model, x, y):
    prediction = keras.ops.convert_to_numpy(model(x, training=False))
    return float(np.mean((prediction - y) ** 2))


def measure(x, y, depth, activation, initializer, seed, steps, eager=False):
    """Builds one network, measures it at initialisation and after `steps` SGD steps.

    Returns:
        `(row, norms, moved)`: the table row, the per-example gradient norm
        of each layer at initialisation from the first layer to the output,
        and each layer's relative weight change.
    """
    seed_everything(seed)
    model = mlp(x.shape[1], (WIDTH,) * depth, activation=activation,
                initializer=initializer)
    model.compile(optimizer=keras.optimizers.SGD(LEARNING_RATE, momentum=0.0), loss="mse",
                  run_eagerly=eager)
    names = _layer_names(depth)
    before = [model.get_layer(name).kernel.numpy().copy() for name in names]
    gradients = GradientMonitor(probe=(x[:PROBE_ROWS], y[:PROBE_ROWS]))
    activations = ActivationMonitor(probe=x[:PROBE_ROWS])
    loss_start = _mse(model, x, y)
    probe = (x[:PROBE_ROWS], y[:PROBE_ROWS])
    example_init = per_example_norms(model, *probe)
    with warnings.catch_warnings():
        # The monitors warn about exactly what this study measures.
        warnings.simplefilter("ignore")
        if steps:
            model.fit(repeated_dataset(x, y, BATCH_SIZE, seed), epochs=1,
                      steps_per_epoch=steps, callbacks=[gradients, activations],
                      shuffle=False, verbose=0)
        else:
            model.fit(x[:PROBE_ROWS], y[:PROBE_ROWS], epochs=0,
                      callbacks=[gradients, activations], verbose=0)
    history = gradients.history
    # Layers x measurements (when training began, after the last step).
    batch_norms = np.array([history[f"grad_norm/{name}"] for name in names])
    example_end = per_example_norms(model, *probe)
    after = [model.get_layer(name).kernel.numpy() for name in names]
    moved = np.array([
        np.linalg.norm(a - b) / np.linalg.norm(b) for a, b in zip(after, before)
    ])
    trained = steps > 0
    row = {
        "activation": activation,
        "initializer": initializer,
        "depth": depth,
        "seed": seed,
        "trained": trained,
        "slope_init": slope_per_layer(example_init[-2::-1]),
        "slope_trained": slope_per_layer(example_end[-2::-1]) if trained else np.nan,
        "slope_init_batch": slope_per_layer(batch_norms[-2::-1, 0]),
        "slope_trained_batch": (
            slope_per_layer(batch_norms[-2::-1, -1]) if trained else np.nan
        ),
        "log10_first_over_output_init": float(
            np.log10(example_init[0] / example_init[-1])
        ),
        "moved_first": float(moved[0]) if trained else np.nan,
        "moved_last_hidden": float(moved[-2]) if trained else np.nan,
        "saturated_init": _mean_fraction(activations.history, "saturated", 0),
        "saturated_trained": (
            _mean_fraction(activations.history, "saturated", -1) if trained else np.nan
        ),
        "dead_init": _mean_fraction(activations.history, "dead", 0),
        "dead_trained": _mean_fraction(activations.history, "dead", -1) if trained else np.nan,
        "loss_start": loss_start,
        "loss_end": _mse(model, x, y) if trained else np.nan,
    }
    return row, example_init, moved


def get_mean(summary, activation, initializer, column):
    """The summary's value of `column` for one activation and initializer."""
    rows = summary[(summary.activation == activation)
                   & (summary.initializer == initializer)]
    return float(rows[column].iloc[0])


def _verdict(summary):
    def get(activation, initializer, column):
        return get_mean(summary, activation, initializer, column)

    sigmoid = get("sigmoid", "glorot_uniform", "slope_init")
    tanh = get("tanh", "glorot_uniform", "slope_init")
    relu = get("relu", "he_normal", "slope_init")
    leaky = get("leaky_relu", "he_normal", "slope_init")
    moved = get("sigmoid", "glorot_uniform", "moved_first_over_last")
    relu_moved = get("relu", "he_normal", "moved_first_over_last")
    checks = {
        f"sigmoid+Glorot slope {sigmoid:.2f} <= {VANISHING_SLOPE}": sigmoid <= VANISHING_SLOPE,
        f"tanh+Glorot slope {tanh:.2f} above sigmoid's": tanh > sigmoid,
        f"|ReLU+He slope| {abs(relu):.2f} <= {FLAT_SLOPE}": abs(relu) <= FLAT_SLOPE,
        f"|Leaky ReLU+He slope| {abs(leaky):.2f} <= {FLAT_SLOPE}": abs(leaky) <= FLAT_SLOPE,
        f"sigmoid+Glorot first layer moved {moved:.2g} of the last hidden layer's "
        f"(< {BARELY_MOVED}; ReLU+He: {relu_moved:.2g})": moved < BARELY_MOVED,
    }
    contradicted = sigmoid > -FLAT_SLOPE or relu <= VANISHING_SLOPE or leaky <= VANISHING_SLOPE
    if all(checks.values()):
        verdict = "SUPPORTED"
    elif contradicted:
        verdict = "CONTRADICTED"
    else:
        verdict = "INCONCLUSIVE"
    return verdict, checks, (sigmoid, tanh, relu, leaky)


def _figure(profiles, depth_rows, movements, depth):
    figure, axes = new_figure(1, 3, width=4.6, height=3.6)
    styles = {"glorot_uniform": "-", "he_normal": "--"}
    colors = {"sigmoid": "C3", "tanh": "C1", "relu": "C0", "leaky_relu": "C2"}
    positions = np.arange(1, depth + 2)
    for (activation, initializer), norms in profiles.items():
        label = f"{activation}+{initializer.split('_')[0]}"
        style = {"color": colors[activation], "linestyle": styles[initializer]}
        axes[0].plot(positions, np.log10(norms), marker=".", label=label, **style)
        movement = movements[(activation, initializer)]
        axes[2].plot(positions, np.log10(np.maximum(movement, 1e-12)), marker=".", **style)
        curve = depth_rows[(depth_rows.activation == activation)
                           & (depth_rows.initializer == initializer)]
        axes[1].plot(curve.depth, curve.slope_init, marker="o", **style)
    axes[0].set_title(f"Per-example gradient norm at init (depth {depth})")
    axes[0].set_xlabel("layer (1 = first hidden, last = output)")
    axes[0].set_ylabel("log10 gradient norm")
    axes[0].legend(fontsize=7)
    axes[1].axhspan(-FLAT_SLOPE, FLAT_SLOPE, color="0.9")
    axes[1].axhline(VANISHING_SLOPE, color="0.5", linestyle=":")
    axes[1].set_title("Slope at init against depth")
    axes[1].set_xlabel("hidden layers")
    axes[1].set_ylabel("log10 norm change per layer (to input)")
    axes[2].set_title(f"Weights moved by training (depth {depth})")
    axes[2].set_xlabel("layer (1 = first hidden, last = output)")
    axes[2].set_ylabel("log10 |W_end - W_0| / |W_0|")
    return figure


def run(options):
    require_tensorflow_backend(NAME)
    size = QUICK if options.quick else FULL
    configs = MATCHED if options.quick else [
        (a, i) for a in ACTIVATIONS for i in INITIALIZERS
    ]
    depth = max(size["depths"])
    steps = size["epochs"] * size["rows"] // BATCH_SIZE
    rows, profiles, movements = [], {}, {}
    for seed in options.seeds:
        x, y = make_regression_data(seed, rows=size["rows"], features=WIDTH)
        for config in configs:
            for d in size["depths"]:
                row, norms, moved = measure(x, y, d, *config, seed,
                                            steps if d == depth else 0,
                                            eager=size.get("eager", False))
                rows.append(row)
                if d == depth:
                    profiles.setdefault(config, []).append(norms)
                    movements.setdefault(config, []).append(moved)
    table = pd.DataFrame(rows)
    profiles = {c: np.exp(np.mean(np.log(np.maximum(v, 1e-30)), axis=0))
                for c, v in profiles.items()}
    movements = {c: np.mean(v, axis=0) for c, v in movements.items()}
    depth_rows = table.groupby(["activation", "initializer", "depth"], sort=False,
                               as_index=False)["slope_init"].mean()
    trained = table[table.trained].copy()
    trained["moved_first_over_last"] = trained.moved_first / trained.moved_last_hidden
    trained["loss_end_over_start"] = trained.loss_end / trained.loss_start
    columns = ["slope_init", "slope_init_batch", "slope_trained", "slope_trained_batch",
               "log10_first_over_output_init",
               "moved_first_over_last", "saturated_trained", "dead_trained",
               "loss_end_over_start"]
    summary = trained.groupby(["activation", "initializer"], sort=False,
                              as_index=False)[columns].mean()
    verdict, checks, (sigmoid, tanh, relu, leaky) = _verdict(summary)
    batch_relu = get_mean(summary, "relu", "he_normal", "slope_init_batch")
    batch_sigmoid = get_mean(summary, "sigmoid", "glorot_uniform", "slope_init_batch")
    lines = [
        (f"At initialisation, {depth} hidden layers: the per-example log10 gradient "
         f"norm changes by {sigmoid:.2f} per layer towards the input with "
         f"sigmoid+Glorot, {tanh:.2f} with tanh+Glorot, {relu:.2f} with ReLU+He and "
         f"{leaky:.2f} with Leaky ReLU+He."),
        "",
        *[f"- {'met' if ok else 'NOT met'}: {text}" for text, ok in checks.items()],
        "",
        (f"The batch gradient (`GradientMonitor`, {PROBE_ROWS} rows) falls faster: "
         f"{batch_sigmoid:.2f} per layer with sigmoid+Glorot, {batch_relu:.2f} with "
         "ReLU+He, because the rows' gradients agree less in lower layers and partly "
         "cancel; the verdict rests on the per-example slope, the chain rule's effect."),
        "",
        (f"Rule: SUPPORTED when every check is met; CONTRADICTED when sigmoid's slope "
         f"is above {-FLAT_SLOPE} (no vanishing) or a ReLU+He slope is at most "
         f"{VANISHING_SLOPE}; INCONCLUSIVE otherwise. Means over seeds "
         f"{list(options.seeds)}."),
    ]
    he_sigmoid = summary[(summary.activation == "sigmoid")
                         & (summary.initializer == "he_normal")]
    glorot_relu = summary[(summary.activation == "relu")
                          & (summary.initializer == "glorot_uniform")]
    measured_extra = ""
    if len(he_sigmoid) and len(glorot_relu):
        measured_extra = (
            f" Measured: sigmoid+He {he_sigmoid.slope_init.iloc[0]:.2f}, "
            f"ReLU+Glorot {glorot_relu.slope_init.iloc[0]:.2f}."
        )
    literature = (
        "Glorot & Bengio (2010) showed that with sigmoid units the back-propagated "
        "gradients shrink towards the lower layers of a deep MLP and proposed the "
        "normalised (Glorot) initialisation, which keeps their variance steady for "
        "units that are linear around zero (tanh). He et al. (2015) showed that ReLU "
        "halves that variance at every layer with Glorot's scale and derived the "
        "2/fan_in (He) initialisation that keeps it constant. For the kernel "
        "gradients measured here (layer input times back-propagated signal) this "
        "predicts, per layer of equal width: sigmoid's derivative is at most 0.25 "
        "while its outputs do not shrink, so with Glorot's unit gain about "
        "log10(0.25) = -0.60 (with He, about -0.45); tanh, ReLU and Leaky ReLU about "
        "0. ReLU with Glorot's scale is about 0 too: the back-propagated signal loses "
        "log10(sqrt 2) = 0.15 per layer towards the input, as He et al. predict, but "
        "the layer inputs lose the same per layer in the other direction, and the "
        "product stays level while both shrink with depth. "
        f"Measured here: sigmoid+Glorot {sigmoid:.2f}, tanh+Glorot {tanh:.2f}, "
        f"ReLU+He {relu:.2f}, Leaky ReLU+He {leaky:.2f}.{measured_extra} "
        "These predictions are per example. Balduzzi et al. (2017) showed that in "
        "deep ReLU networks the gradients of different inputs decorrelate with "
        "depth (shattered gradients), so the batch gradient shrinks towards the "
        f"input even with He initialisation: measured {batch_relu:.2f} per layer here."
    )
    protocol = (
        f"- Data: Friedman #1 regression, {size['rows']} rows, {WIDTH} standardised "
        "features (5 informative), standardised target, new data per seed; "
        f"{WIDTH} features so that every hidden layer has the same fan-in.\n"
        f"- Model: MLP, {WIDTH} units per hidden layer, depths {list(size['depths'])}, "
        f"linear output; activations x initialisations: "
        f"{', '.join(f'{a}+{i}' for a, i in configs)}. Biases start at zero. No "
        "L2, no dropout, no batch normalisation, no residual connections.\n"
        f"- Initialisation: every depth is measured before any step. Training: only "
        f"the deepest ({depth} hidden layers), plain SGD (learning rate "
        f"{LEARNING_RATE}, no momentum, no schedule), MSE loss, batch {BATCH_SIZE}, "
        f"{size['epochs']} epochs ({steps} steps), no early stopping; one shared "
        "learning rate for every network.\n"
        f"- Gradient norms on a probe of the first {PROBE_ROWS} rows, of each Dense "
        "kernel: per example (`slope_init`, `slope_trained`: mean over rows of "
        "|layer input| x |loss gradient at the pre-activation|, the norm of that "
        "row's kernel gradient) and of the batch gradient (`*_batch`: "
        "`GradientMonitor(probe=(x, y))`, inference mode); "
        "`ActivationMonitor(probe=x)` (saturated sigmoid/tanh outputs, dead ReLU "
        "units; Leaky ReLU is not measured), when training begins and after the "
        "last step.\n"
        "- Slope: least-squares slope of log10(norm) of the hidden layers' kernels "
        "against their distance from the last hidden layer (the output layer, one "
        "unit wide, is left out), so negative = shrinking towards the input. "
        "`log10_first_over_output_init`: first hidden layer's norm over the output "
        "layer's. Weights moved: |W_end - W_0| / |W_0| per layer; "
        "`moved_first_over_last` divides the first hidden layer's by the last "
        "hidden layer's.\n"
        "- The table shows the trained depth, mean over seeds; results.csv holds "
        "every depth and seed."
    )
    return StudyResult(
        claim=(
            "Sigmoid's slope is at most 0.25, so the chain rule shrinks the gradient "
            "layer after layer and the layers near the input barely learn; tanh less; "
            "ReLU and Leaky ReLU not."
        ),
        protocol=protocol,
        table=table,
        summary_table=summary,
        verdict=verdict,
        evidence="\n".join(lines),
        literature=literature,
        settings={
            "width": WIDTH, "depths": list(size["depths"]), "trained_depth": depth,
            "rows": size["rows"], "epochs": size["epochs"], "steps": steps,
            "batch_size": BATCH_SIZE, "optimizer": "SGD", "learning_rate": LEARNING_RATE,
            "momentum": 0.0, "l2": 0.0, "dropout": 0.0, "early_stopping": False,
            "probe_rows": PROBE_ROWS, "configs": [list(c) for c in configs],
            "thresholds": {"vanishing_slope": VANISHING_SLOPE, "flat_slope": FLAT_SLOPE,
                           "barely_moved": BARELY_MOVED},
        },
        figure=_figure(profiles, depth_rows, movements, depth),
    )


def main(argv=None):
    return study_main(NAME, run, argv=argv)


if __name__ == "__main__":
    sys.exit(main())
