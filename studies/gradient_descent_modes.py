"""Study 3: batch, stochastic and mini-batch gradient descent.

`python -m studies.gradient_descent_modes [--seeds 0,1,2] [--quick] [--output DIR]`

Trains the same MLP with plain SGD in three modes: batch (all training rows
per step), stochastic (one row per step) and mini-batch (32 rows), each with
its own learning rate tuned on a validation split. Measures what a step and
an epoch cost, how well a batch's gradient points along the full gradient
(cosine), how rough the loss on the whole training set is from one step to
the next, and the test loss at equal epochs, equal updates and equal time.

Example:

>>> cosine(np.array([1.0, 0.0]), np.array([1.0, 1.0])).round(3)
np.float64(0.707)
"""

import sys
import time
import warnings

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from studies.common import (
    StudyResult,
    make_regression_data,
    mlp,
    new_figure,
    repeated_dataset,
    require_tensorflow_backend,
    seed_everything,
    split,
    study_main,
)

NAME = "gradient_descent_modes"
HIDDEN = (64, 64)
MINI_BATCH = 32
MODES = ("batch", "minibatch", "stochastic")
FULL = {
    "train_rows": 1024,
    # Each mode's grid, around the rates that suit its batch size.
    "rates": {"batch": (0.01, 0.03, 0.1, 0.3), "minibatch": (0.01, 0.03, 0.1, 0.3),
              "stochastic": (0.003, 0.01, 0.03)},
    # Updates per mode: 200 epochs of batch descent, 15 epochs of mini-batches,
    # 1 epoch of single rows.
    "updates": {"batch": 200, "minibatch": 480, "stochastic": 1024},
    "cosine_batches": 64,
    "rough_window": 100,
}
QUICK = {
    "train_rows": 1024,
    "rates": {"batch": (0.01,), "minibatch": (0.01,), "stochastic": (0.01,)},
    "updates": {"batch": 12, "minibatch": 32, "stochastic": 64},
    "cosine_batches": 8,
    "rough_window": 10,
}
# Verdict thresholds. A batch step "costs more" when its typical time is at
# least this multiple of a mini-batch step's; "about as good" is within this
# factor of the best test loss.
STEP_COST_RATIO = 2.0
NO_COST_RATIO = 1.2
AS_GOOD = 1.05
# The loss is measured after each of the first updates too, where it moves most.
EARLY_UPDATES = 10


def cosine(a, b):
    """Cosine of the angle between two flat vectors."""
    return np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b))


def _flat_gradient(model, x, y):
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.square(model(x, training=False) - y))
    gradients = tape.gradient(loss, model.trainable_variables)
    return np.concatenate([g.numpy().ravel() for g in gradients])


def gradient_cosines(model, x, y, batch_size, count, seed):
    """Mean cosine between `count` random batches' gradients and the full gradient."""
    full = _flat_gradient(model, x, y)
    rng = np.random.default_rng(seed)
    values = [
        cosine(_flat_gradient(model, x[rows], y[rows]), full)
        for rows in (rng.choice(len(x), batch_size, replace=False) for _ in range(count))
    ]
    return float(np.mean(values))


class _Tracker(keras.callbacks.Callback):
    """Times every step and measures the whole-set losses at checkpoints.

    The clock counts only the training steps: measuring happens outside it.
    """

    def __init__(self, sets, every, dense_from):
        super().__init__()
        self.sets, self.every, self.dense_from = sets, every, dense_from
        self.step_seconds = []
        self.points = []

    def _losses(self):
        values = {}
        for name, (x, y) in self.sets.items():
            prediction = keras.ops.convert_to_numpy(self.model(x, training=False))
            value = float(np.mean((prediction - y) ** 2))
            values[name] = value if np.isfinite(value) else np.inf
        return values

    def on_train_begin(self, logs=None):
        self.points.append({"updates": 0, "seconds": 0.0, **self._losses()})

    def on_train_batch_begin(self, batch, logs=None):
        self._started = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.step_seconds.append(time.perf_counter() - self._started)
        step = batch + 1
        if step <= EARLY_UPDATES or step % self.every == 0 or step >= self.dense_from:
            self.points.append({"updates": step, "seconds": float(np.sum(self.step_seconds)),
                                **self._losses()})


def roughness(losses):
    """How much a loss curve moves per update: mean of |change| / previous value.

    Also returns the share of that movement that goes up (0: the loss falls
    at every update). Both are `nan` when a value is not finite.
    """
    losses = np.asarray(losses, dtype=float)
    if not np.isfinite(losses).all():
        return float("nan"), float("nan")
    changes = np.diff(losses)
    moved = np.abs(changes).sum()
    upward = float(changes[changes > 0].sum() / moved) if moved > 0 else 0.0
    return float(np.mean(np.abs(changes) / losses[:-1])), upward


def train_mode(model, start, data, mode, rate, size, seed):
    """Trains one mode at one rate from `start`; returns its record."""
    x_train, y_train = data["train"]
    batch_size = {"batch": len(x_train), "minibatch": MINI_BATCH, "stochastic": 1}[mode]
    updates = size["updates"][mode]
    dataset = repeated_dataset(x_train, y_train, batch_size, seed)
    # One step first, so that tracing the train step for this batch shape is
    # not timed; the weights are then reset.
    model.fit(dataset, epochs=1, steps_per_epoch=1, shuffle=False, verbose=0)
    model.set_weights(start)
    model.optimizer.iterations.assign(0)
    model.optimizer.learning_rate.assign(rate)
    tracker = _Tracker(data, every=max(1, updates // 50),
                       dense_from=updates - size["rough_window"] + 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # overflow at rates that diverge
        model.fit(dataset, epochs=1, steps_per_epoch=updates, callbacks=[tracker],
                  shuffle=False, verbose=0)
    curve = pd.DataFrame(tracker.points)
    curve["epochs"] = curve.updates * batch_size / len(x_train)
    window = curve[curve.updates >= updates - size["rough_window"]].train
    rough, upward = roughness(window)
    seconds = np.array(tracker.step_seconds)
    return {
        "mode": mode, "batch_size": batch_size, "learning_rate": rate, "updates": updates,
        "epochs": updates * batch_size / len(x_train),
        "ms_per_step_p25": 1000 * float(np.percentile(seconds, 25)),
        "ms_per_step_median": 1000 * float(np.median(seconds)),
        "train_seconds": float(seconds.sum()),
        "roughness": rough,
        "upward_share": upward,
        "final_validation_loss": float(curve.validation.iloc[-1]),
        "final_test_loss": float(curve.test.iloc[-1]),
        "curve": curve, "weights": model.get_weights(),
    }


def _at(curve, axis, value):
    """The test loss after the last checkpoint at or before `value` on `axis`.

    `nan` past the run's end. Checkpoints are dense enough (about 50 per
    run, one per update in batch mode) for this step function to be close.
    """
    if value > curve[axis].iloc[-1] + 1e-12:
        return float("nan")
    reached = curve[curve[axis] <= value + 1e-12]
    return float(reached.test.iloc[-1])


def run_seed(seed, size):
    rows = size["train_rows"]
    x, y = make_regression_data(seed, rows=rows * 3 // 2)
    x_train, x_rest, y_train, y_rest = split(x, y, seed, test_fraction=1 / 3)
    x_val, x_test, y_val, y_test = split(x_rest, y_rest, seed, test_fraction=0.5)
    data = {"train": (x_train, y_train), "validation": (x_val, y_val), "test": (x_test, y_test)}
    seed_everything(seed)
    model = mlp(x.shape[1], HIDDEN)
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.0), loss="mse")
    start = model.get_weights()
    runs = [train_mode(model, start, data, mode, rate, size, seed)
            for mode in MODES for rate in size["rates"][mode]]
    tuned = {}
    for mode in MODES:
        candidates = [r for r in runs if r["mode"] == mode]
        tuned[mode] = min(candidates, key=lambda r: (
            r["final_validation_loss"] if np.isfinite(r["final_validation_loss"]) else np.inf))
    equal = {
        "epochs": min(r["epochs"] for r in tuned.values()),
        "updates": min(r["updates"] for r in tuned.values()),
        "seconds": min(r["train_seconds"] for r in tuned.values()),
    }
    sizes = {"batch": len(x_train), "minibatch": MINI_BATCH, "stochastic": 1}
    table_rows = []
    for run in runs:
        row = {key: value for key, value in run.items() if key not in ("curve", "weights")}
        row["seed"] = seed
        row["tuned"] = run is tuned[run["mode"]]
        if row["tuned"]:
            for axis, value in equal.items():
                row[f"test_loss_equal_{axis}"] = _at(run["curve"], axis, value)
            row["equal_epochs"], row["equal_updates"] = equal["epochs"], equal["updates"]
            row["equal_seconds"] = equal["seconds"]
            model.set_weights(start)
            row["cosine_init"] = gradient_cosines(model, x_train, y_train, sizes[run["mode"]],
                                                  size["cosine_batches"], seed)
            model.set_weights(tuned["minibatch"]["weights"])
            row["cosine_trained"] = gradient_cosines(
                model, x_train, y_train, sizes[run["mode"]], size["cosine_batches"], seed)
        table_rows.append(row)
    curves = {mode: tuned[mode]["curve"] for mode in MODES}
    return table_rows, curves


def _figure(curves, summary):
    figure, axes = new_figure(1, 4, width=3.6, height=3.4)
    colors = {"batch": "C0", "minibatch": "C2", "stochastic": "C3"}
    for axis, (column, label) in zip(axes, (("epochs", "epochs"), ("updates", "updates"),
                                            ("seconds", "training seconds"))):
        for mode, curve in curves.items():
            shown = curve[curve[column] > 0]
            axis.plot(shown[column], shown.test, color=colors[mode], label=mode, lw=1)
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.set_xlabel(label)
        axis.set_title(f"test loss by {label}")
    axes[0].set_ylabel("test MSE (tuned rate)")
    axes[0].legend(fontsize=7)
    positions = np.arange(len(summary))
    axes[3].bar(positions - 0.2, summary.cosine_init, 0.4, label="at init", color="0.6")
    axes[3].bar(positions + 0.2, summary.cosine_trained, 0.4, label="trained", color="0.3")
    axes[3].set_xticks(positions, summary["mode"])
    axes[3].set_ylim(0, 1.05)
    axes[3].set_title("cosine(batch gradient, full)")
    axes[3].legend(fontsize=7)
    return figure


def run(options):
    require_tensorflow_backend(NAME)
    size = QUICK if options.quick else FULL
    rows, curves_by_seed = [], {}
    for seed in options.seeds:
        seed_rows, curves = run_seed(seed, size)
        rows += seed_rows
        curves_by_seed[seed] = curves
    table = pd.DataFrame(rows)
    tuned = table[table.tuned]
    columns = ["learning_rate", "ms_per_step_p25", "ms_per_step_median", "epochs",
               "cosine_init", "cosine_trained", "roughness", "upward_share",
               "test_loss_equal_epochs",
               "test_loss_equal_updates", "test_loss_equal_seconds"]
    summary = tuned.groupby("mode", sort=False, as_index=False)[columns].agg(
        {**{c: "mean" for c in columns}, "learning_rate": lambda r: float(np.exp(np.log(r).mean()))}
    )
    summary.insert(3, "ms_per_epoch", summary.ms_per_step_median * [
        1, size["train_rows"] / MINI_BATCH, size["train_rows"]])
    by_mode = summary.set_index("mode")
    cost_ratio = by_mode.ms_per_step_p25["batch"] / by_mode.ms_per_step_p25["minibatch"]
    cos = by_mode.cosine_init
    rough = by_mode.roughness
    equal_time = by_mode.test_loss_equal_seconds
    best_time = equal_time.min()
    checks = {
        f"a batch step costs {cost_ratio:.1f}x a mini-batch step (>= {STEP_COST_RATIO}x)":
            cost_ratio >= STEP_COST_RATIO,
        f"gradient cosine at init: stochastic {cos['stochastic']:.2f} < mini-batch "
        f"{cos['minibatch']:.2f} < batch {cos['batch']:.2f}":
            cos["stochastic"] < cos["minibatch"] < cos["batch"],
        f"roughness (mean relative change of the training loss per update, last "
        f"{size['rough_window']} updates): stochastic {rough['stochastic']:.2g} > "
        f"mini-batch {rough['minibatch']:.2g} > batch {rough['batch']:.2g}":
            rough["stochastic"] > rough["minibatch"] > rough["batch"],
        f"at equal time the mini-batch test loss {equal_time['minibatch']:.3g} is within "
        f"{AS_GOOD}x of the best ({best_time:.3g})":
            bool(equal_time["minibatch"] <= AS_GOOD * best_time),
    }
    if all(checks.values()):
        verdict = "SUPPORTED"
    elif cost_ratio < NO_COST_RATIO or not cos["stochastic"] < cos["minibatch"]:
        verdict = "CONTRADICTED"
    else:
        verdict = "INCONCLUSIVE"
    e = summary.set_index("mode")
    evidence = "\n".join([
        (f"A batch step costs {cost_ratio:.1f}x a mini-batch step; single-row gradients "
         f"point along the full gradient with cosine {cos['stochastic']:.2f} (mini-batch "
         f"{cos['minibatch']:.2f}); at equal time the test loss is batch "
         f"{equal_time['batch']:.3g}, mini-batch {equal_time['minibatch']:.3g}, stochastic "
         f"{equal_time['stochastic']:.3g}."),
        "",
        *[f"- {'met' if ok else 'NOT met'}: {text}" for text, ok in checks.items()],
        "",
        (f"At equal epochs ({tuned.equal_epochs.mean():.3g}) the test loss is batch "
         f"{e.test_loss_equal_epochs['batch']:.3g}, mini-batch "
         f"{e.test_loss_equal_epochs['minibatch']:.3g}, stochastic "
         f"{e.test_loss_equal_epochs['stochastic']:.3g}; at equal updates "
         f"({tuned.equal_updates.mean():.0f}) batch {e.test_loss_equal_updates['batch']:.3g}, "
         f"mini-batch {e.test_loss_equal_updates['minibatch']:.3g}, stochastic "
         f"{e.test_loss_equal_updates['stochastic']:.3g}."),
        "",
        (f"Rule: SUPPORTED when every check is met; CONTRADICTED when a batch step costs "
         f"less than {NO_COST_RATIO}x a mini-batch step or single rows' gradients are not "
         f"less aligned than mini-batches'; INCONCLUSIVE otherwise. Means over seeds "
         f"{list(options.seeds)}; step times are the 25th percentile of every step's "
         "time (robust to other processes on the machine), measured on a shared CPU."),
    ])
    protocol = (
        f"- Data: Friedman #1 regression, {size['train_rows']} training rows, "
        f"{size['train_rows'] // 4} validation and {size['train_rows'] // 4} test rows, "
        "10 standardised features, standardised target; new data per seed.\n"
        f"- Model: MLP {list(HIDDEN)} ReLU + He, linear output, MSE; no L2, no dropout; "
        "every run starts from the same weights (per seed).\n"
        f"- Modes: batch ({size['train_rows']} rows per step, "
        f"{size['updates']['batch']} updates), mini-batch ({MINI_BATCH} rows, "
        f"{size['updates']['minibatch']} updates), stochastic (1 row, "
        f"{size['updates']['stochastic']} updates); rows reshuffled every pass. "
        f"Plain SGD (no momentum, no schedule), no early stopping; each mode's "
        "learning rate picked by the final validation loss from its grid: "
        + "; ".join(f"{mode} {list(rates)}" for mode, rates in size["rates"].items())
        + ".\n"
        "- Measured: every step's time (the clock stops while measuring); the MSE on "
        f"the whole training, validation and test sets after each of the first "
        f"{EARLY_UPDATES} updates, at about 50 checkpoints and "
        f"after each of the last {size['rough_window']} updates; roughness = the mean "
        "relative change |L(t+1) - L(t)| / L(t) of the whole-training-set loss over "
        "those last updates (`upward_share`: the share of that movement that goes "
        "up); cosine between the gradient of a random batch of the mode's size and "
        f"the full-training-set gradient, mean over {size['cosine_batches']} batches, at "
        "the initial weights and at the tuned mini-batch run's final weights.\n"
        "- Equal epochs / updates / time: each tuned run's test loss at the smallest "
        "number of epochs, updates or training seconds all three modes reached "
        "(the loss at the last checkpoint by then)."
    )
    literature = (
        "Bottou, Curtis & Nocedal (2018, 'Optimization methods for large-scale machine "
        "learning') compare the three: a batch step costs the whole data set, a "
        "stochastic step one row, and under a fixed computing budget stochastic and "
        "mini-batch methods reach a given error sooner because their cheap steps make "
        "progress long before a batch method has finished its first few steps; the "
        "noise of a single row's gradient is what forces a smaller rate. The cosine "
        "between a batch's gradient and the full one grows with the batch size as the "
        "gradient noise averages out (variance falling as 1/B; McCandlish et al. 2018, "
        "'An empirical model of large-batch training'). On a CPU, the per-step cost of "
        "a small network is dominated by fixed overhead, so a mini-batch step costs "
        "about as much as a single-row one: the study measures that too. The tuned "
        "rates sit near the edge of stability: in every mode the first updates "
        "overshoot (the early spikes in the figure) before the loss settles, the "
        "'catapult' phase of Lewkowycz et al. (2020); and with each mode at its own "
        "tuned rate, a single-row step is smaller than a mini-batch step, so the "
        "per-update roughness compares noise at different step sizes."
    )
    return StudyResult(
        claim=(
            "Batch gradient descent uses the whole data per step (expensive per step); "
            "stochastic uses one row (noisy, rough loss); mini-batch is the compromise."
        ),
        protocol=protocol,
        table=table,
        summary_table=summary,
        verdict=verdict,
        evidence=evidence,
        literature=literature,
        settings={
            "hidden": list(HIDDEN), "optimizer": "SGD", "momentum": 0.0,
            "mini_batch": MINI_BATCH, "train_rows": size["train_rows"],
            "updates": size["updates"],
            "learning_rates": {m: list(r) for m, r in size["rates"].items()},
            "cosine_batches": size["cosine_batches"], "rough_window": size["rough_window"],
            "l2": 0.0, "dropout": 0.0, "early_stopping": False,
            "thresholds": {"step_cost_ratio": STEP_COST_RATIO,
                           "no_cost_ratio": NO_COST_RATIO, "as_good": AS_GOOD},
        },
        figure=_figure(curves_by_seed[min(curves_by_seed)], summary),
    )


def main(argv=None):
    return study_main(NAME, run, argv=argv)


if __name__ == "__main__":
    sys.exit(main())
