"""Study 2: too low a learning rate is slow, too high oscillates or diverges.

`python -m studies.learning_rate [--seeds 0,1,2] [--quick] [--output DIR]
[--csv FILE --target COLUMN --task binary|multiclass|regression]`

Trains one MLP with plain SGD at learning rates over four decades, every
rate from the same initial weights and the same batch order, and measures
the epochs each needs to reach a target loss, how much its loss curve goes
up and down, and whether it diverges. `LearningRateFinder` sweeps the same
model, and the study compares its suggestions with the grid's best rate.

Example:

>>> oscillation_index([1.0, 0.5, 0.25])  # falls every epoch
0.0
>>> oscillation_index([1.0, 0.5, 1.0])  # down, then back up
0.5
"""

import dataclasses
import math
import sys
import warnings

import keras
import numpy as np
import pandas as pd
from matplotlib import colormaps

from callbacks import LearningRateFinder
from studies.common import (
    StudyResult,
    make_regression_data,
    mlp,
    new_figure,
    repeated_dataset,
    seed_everything,
    split,
    study_main,
)
from studies.user_splits import output_head, user_splits

NAME = "learning_rate"
HIDDEN = (32, 32)
BATCH_SIZE = 32
FULL = {"rates": tuple(10.0 ** np.arange(-4, 0.01, 0.5)), "epochs": 40, "rows": 1024,
        "finder_steps": 100}
QUICK = {"rates": (1e-4, 1e-2, 1.0), "epochs": 3, "rows": 256, "finder_steps": 30}
# A user's table is subsampled to this many rows so the study stays in minutes.
MAX_USER_ROWS = 4000
# The target: this fraction of the largest drop in training loss any rate
# achieved on the seed (initial loss minus the best final loss).
TARGET_FRACTION = 0.9
# Diverged: the training loss is not finite or exceeds this multiple of the
# initial loss at some epoch.
DIVERGENCE_FACTOR = 10.0
# Oscillating: at least this share of the loss's movement is upwards.
OSCILLATION = 0.3
# Slow: the lowest rate needs at least this many times the fastest rate's
# epochs (not reaching the target counts as slow).
SLOW_FACTOR = 3.0


def oscillation_index(losses):
    """Share of a loss curve's movement that goes up: 0 falls steadily, 0.5 zig-zags.

    The sum of the increases between consecutive values divided by the sum of
    all absolute changes; `nan` when the curve does not move.
    """
    changes = np.diff(np.asarray(losses, dtype=float))
    moved = np.abs(changes).sum()
    return float(changes[changes > 0].sum() / moved) if moved > 0 else float("nan")


class _EpochLosses(keras.callbacks.Callback):
    """Records the loss on the whole training and validation sets after each epoch."""

    def __init__(self, loss, train, validation):
        super().__init__()
        self.loss, self.train, self.validation = loss, train, validation
        self.history = {"train": [], "validation": []}

    def measure(self):
        for key, (x, y) in (("train", self.train), ("validation", self.validation)):
            prediction = self.model(x, training=False)
            value = float(np.mean(keras.ops.convert_to_numpy(self.loss(y, prediction))))
            self.history[key].append(value if math.isfinite(value) else float("inf"))

    def on_epoch_end(self, epoch, logs=None):
        self.measure()


def _task_data(options, seed, rows):
    """Returns `(train, validation, head)`: the user's table or Friedman #1.

    `head` is `(units, output activation, loss)`. A user's table is split by
    `user_splits` (features standardised on the training rows, a regression
    target too), its validation and test rows together serving as validation.
    """
    data = options.data
    if data is None:
        x, y = make_regression_data(seed, rows=rows)
        x_train, x_val, y_train, y_val = split(x, y, seed)
        return (x_train, y_train), (x_val, y_val), output_head("regression")
    if len(data.target) > MAX_USER_ROWS:
        rows = np.sort(np.random.default_rng(seed).choice(len(data.target), MAX_USER_ROWS,
                                                          replace=False))
        data = dataclasses.replace(data, features=data.features.iloc[rows].reset_index(
            drop=True), target=data.target.iloc[rows].reset_index(drop=True))
    splits, head = user_splits(data, seed, validation_fraction=0.125, test_fraction=0.125)
    validation = tuple(np.concatenate(parts) for parts in zip(splits["val"], splits["test"]))
    return splits["train"], validation, head


def run_grid(options, seed, size):
    """Trains every rate of the grid from the same start; returns rows and curves."""
    (x_train, y_train), (x_val, y_val), (units, activation, loss_name) = _task_data(
        options, seed, size["rows"])
    steps = max(1, len(x_train) // BATCH_SIZE)
    seed_everything(seed)
    model = mlp(x_train.shape[1], HIDDEN, outputs=units, output_activation=activation)
    optimizer = keras.optimizers.SGD(learning_rate=size["rates"][0], momentum=0.0)
    loss = keras.losses.get(loss_name)
    model.compile(optimizer=optimizer, loss=loss_name)
    start = model.get_weights()
    rows, curves = [], {}
    for rate in size["rates"]:
        model.set_weights(start)
        optimizer.iterations.assign(0)
        optimizer.learning_rate.assign(rate)
        losses = _EpochLosses(loss, (x_train, y_train), (x_val, y_val))
        losses.set_model(model)
        losses.measure()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # overflow at the rates that diverge
            model.fit(repeated_dataset(x_train, y_train, BATCH_SIZE, seed),
                      epochs=size["epochs"], steps_per_epoch=steps,
                      callbacks=[losses], shuffle=False, verbose=0)
        curves[rate] = losses.history["train"]
        rows.append({"seed": seed, "learning_rate": rate, **_describe(losses.history)})
    finder = _find(model, start, x_train, y_train, size["finder_steps"])
    return rows, curves, finder


def _find(model, start, x, y, num_steps):
    model.set_weights(start)
    model.optimizer.iterations.assign(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return LearningRateFinder.find(model, x, y, batch_size=BATCH_SIZE, min_lr=1e-5,
                                       max_lr=10.0, num_steps=num_steps)


def _describe(history):
    train = np.array(history["train"])
    initial = train[0]
    blown = ~np.isfinite(train) | (train > DIVERGENCE_FACTOR * initial)
    diverged = bool(blown.any())
    stable = train[: int(np.argmax(blown))] if diverged else train
    return {
        "initial_loss": float(initial),
        "final_train_loss": float(train[-1]),
        "final_validation_loss": float(history["validation"][-1]),
        "best_validation_loss": float(np.min(history["validation"])),
        "diverged": diverged,
        "diverged_at_epoch": int(np.argmax(blown)) if diverged else -1,
        "oscillation": oscillation_index(stable) if len(stable) > 1 else float("nan"),
    }


def _epochs_to_target(curve, target):
    reached = np.flatnonzero(np.asarray(curve) <= target)
    return int(reached[0]) if reached.size else -1


def _add_targets(table, curves_by_seed):
    table = table.copy()
    table["target_loss"] = np.nan
    table["epochs_to_target"] = -1
    for seed, curves in curves_by_seed.items():
        rows = table.seed == seed
        initial = table.loc[rows, "initial_loss"].iloc[0]
        finite = table.loc[rows, "final_train_loss"].replace(np.inf, np.nan)
        best = finite[~table.loc[rows, "diverged"]].min()
        target = initial - TARGET_FRACTION * (initial - best)
        table.loc[rows, "target_loss"] = target
        for index in table.index[rows]:
            table.loc[index, "epochs_to_target"] = _epochs_to_target(
                curves[table.loc[index, "learning_rate"]], target
            )
    return table


def _judge(table):
    """Per seed: is the lowest rate slow, the highest unstable, a middle one fine?"""
    results = []
    for _, rows in table.groupby("seed"):
        rows = rows.sort_values("learning_rate")
        low, high = rows.iloc[0], rows.iloc[-1]
        reached = rows[(rows.epochs_to_target >= 0) & ~rows.diverged]
        fastest = reached.epochs_to_target.min() if len(reached) else math.nan
        low_epochs = low.epochs_to_target if low.epochs_to_target >= 0 else math.inf
        slow = low_epochs >= SLOW_FACTOR * max(fastest, 1)
        unstable = bool(high.diverged) or high.oscillation >= OSCILLATION
        middle = len(reached[(reached.learning_rate > low.learning_rate)
                             & (reached.learning_rate < high.learning_rate)]) > 0
        low_as_fast = low.epochs_to_target >= 0 and low.epochs_to_target <= fastest + 1
        results.append({"slow": slow, "unstable": unstable, "middle": middle,
                         "low_as_fast": low_as_fast,
                         "high_fine": not unstable and high.epochs_to_target >= 0})
    return pd.DataFrame(results)


def _figure(table, curves_by_seed, finders, best_rate):
    figure, axes = new_figure(1, 2, width=5.2, height=3.8)
    seed = min(curves_by_seed)
    rates = sorted(curves_by_seed[seed])
    cmap = colormaps["viridis"]
    top = 10 * table[table.seed == seed].initial_loss.iloc[0]
    for i, rate in enumerate(rates):
        curve = np.array(curves_by_seed[seed][rate], dtype=float)
        # A diverged curve runs off the top of the plot.
        curve[~np.isfinite(curve) | (curve > 10 * top)] = 10 * top
        axes[0].plot(np.arange(len(curve)), curve, color=cmap(i / max(len(rates) - 1, 1)),
                     label=f"{rate:.0e}")
    target = table[table.seed == seed].target_loss.iloc[0]
    axes[0].axhline(target, color="k", linestyle=":", label="target")
    axes[0].set_yscale("log")
    axes[0].set_ylim(top=top)
    axes[0].set_xlabel("epoch")
    axes[0].set_ylabel("training loss")
    axes[0].set_title(f"SGD, one curve per learning rate (seed {seed})")
    axes[0].legend(fontsize=6, ncol=2)

    means = table.groupby("learning_rate").agg(
        validation=("final_validation_loss", lambda v: v.replace(np.inf, np.nan).mean()),
        diverged=("diverged", "any"),
    )
    shown = means.validation.where(~means.diverged)
    axes[1].plot(means.index, shown, "o-", color="C0", label="grid: final validation loss")
    if means.diverged.any():
        top = np.nanmax(shown.to_numpy()) if shown.notna().any() else 1.0
        axes[1].plot(means.index[means.diverged], [top] * int(means.diverged.sum()), "x",
                     color="C3", markersize=9, label="grid: diverged")
    axes[1].axvline(best_rate, color="C0", linestyle="--", label=f"grid best {best_rate:.2g}")
    finder = finders[seed]
    twin = axes[1].twinx()
    twin.plot(finder.learning_rates[: len(finder.smoothed_losses)], finder.smoothed_losses,
              color="C1", alpha=0.8, label="LearningRateFinder (smoothed)")
    smoothed = np.array(finder.smoothed_losses, dtype=float)
    smoothed = smoothed[np.isfinite(smoothed)]
    if smoothed.size:
        twin.set_ylim(smoothed.min() * 0.9, min(smoothed.max(), 4 * smoothed.min()) * 1.1)
    for height, (name, rate) in zip((0.03, 0.3, 0.57), _suggestions(finder).items()):
        axes[1].axvline(rate, color="C1", linestyle=":", alpha=0.7)
        axes[1].annotate(f" {name}", (rate, height), xycoords=("data", "axes fraction"),
                         rotation=90, fontsize=7, color="C1")
    twin.set_ylabel("finder loss", color="C1")
    axes[1].set_xscale("log")
    axes[1].set_xlabel("learning rate")
    axes[1].set_ylabel("final validation loss")
    axes[1].set_title("Grid against LearningRateFinder")
    handles = axes[1].get_legend_handles_labels()
    twin_handles = twin.get_legend_handles_labels()
    axes[1].legend(handles[0] + twin_handles[0], handles[1] + twin_handles[1], fontsize=6,
                   loc="upper left")
    return figure


def _suggestions(finder):
    """The finder's suggestions by name (only `minimum` in older versions)."""
    suggestions = dict(getattr(finder, "suggestions", None) or {})
    if not suggestions and finder.suggested_learning_rate is not None:
        suggestions["minimum"] = finder.suggested_learning_rate
    return suggestions


def run(options):
    size = QUICK if options.quick else FULL
    rows, curves_by_seed, finders = [], {}, {}
    for seed in options.seeds:
        seed_rows, curves, finder = run_grid(options, seed, size)
        rows += seed_rows
        curves_by_seed[seed] = curves
        finders[seed] = finder
    table = _add_targets(pd.DataFrame(rows), curves_by_seed)
    judged = _judge(table)
    summary = table.groupby("learning_rate", as_index=False).agg(
        epochs_to_target=("epochs_to_target",
                          lambda e: float(np.mean(e[e >= 0])) if (e >= 0).any() else -1.0),
        reached_target=("epochs_to_target", lambda e: int((e >= 0).sum())),
        diverged=("diverged", "sum"),
        oscillation=("oscillation", "mean"),
        final_train_loss=("final_train_loss", "mean"),
        final_validation_loss=("final_validation_loss", "mean"),
    )
    valid = summary[summary.diverged == 0]
    best_rate = float(valid.learning_rate[valid.final_validation_loss.idxmin()]) if len(
        valid) else float("nan")
    finder_rows = []
    for seed, finder in finders.items():
        for name, rate in _suggestions(finder).items():
            finder_rows.append({"seed": seed, "rule": name, "rate": rate})
    finder_table = pd.DataFrame(finder_rows)
    suggestion_lines = []
    for name, rates in finder_table.groupby("rule", sort=False).rate:
        geometric = float(np.exp(np.log(rates).mean()))
        decades = abs(math.log10(geometric / best_rate)) if best_rate > 0 else math.nan
        suggestion_lines.append(
            f"- LearningRateFinder `{name}`: {geometric:.3g} (geometric mean over seeds), "
            f"{decades:.2f} decades from the grid's best {best_rate:.3g} "
            f"({'within' if decades <= 0.5 else 'beyond'} half a decade)."
        )
    seeds = len(judged)
    slow, unstable, middle = (int(judged[c].sum()) for c in ("slow", "unstable", "middle"))
    if slow == unstable == middle == seeds:
        verdict = "SUPPORTED"
    elif judged.low_as_fast.all() or judged.high_fine.all():
        verdict = "CONTRADICTED"
    else:
        verdict = "INCONCLUSIVE"
    low, high = summary.iloc[0], summary.iloc[-1]
    low_text = (f"needs {low.epochs_to_target:.3g} epochs to reach the target loss"
                if int(low.reached_target) == seeds
                else f"does not reach the target loss in {size['epochs']} epochs on "
                     f"{seeds - int(low.reached_target)} of {seeds} seeds")
    high_text = (f"diverges on {int(high.diverged)} of {seeds} seeds"
                 if high.diverged else f"oscillation index {high.oscillation:.2f}")
    evidence = "\n".join([
        (f"Lowest rate {low.learning_rate:.0e} {low_text}; "
         f"highest {high.learning_rate:.0e} {high_text}; the grid's best (lowest final "
         f"validation loss) is {best_rate:.3g}."),
        "",
        (f"- the lowest rate is slow on {slow} of {seeds} seeds (does not reach the "
        f"target, or needs >= {SLOW_FACTOR}x the epochs of the fastest rate)"),
        (f"- the highest rate diverges or oscillates on {unstable} of {seeds} seeds "
        f"(loss > {DIVERGENCE_FACTOR}x the initial loss or not finite; oscillation "
        f"index >= {OSCILLATION})"),
        (f"- a rate in between reaches the target without diverging on {middle} of {seeds} "
        "seeds"),
        "",
        *suggestion_lines,
        "",
        ("Rule: SUPPORTED when all three hold on every seed; CONTRADICTED when on every "
         "seed the lowest rate is as fast as the fastest (within one epoch) or the "
         "highest neither diverges nor oscillates and reaches the target; INCONCLUSIVE "
         "otherwise. The finder's distance from the grid's best is reported, not part "
         "of the verdict."),
    ])
    data = options.data
    data_text = (
        f"your table `{data.source}` (target `{data.target.name}`, task {data.task}, "
        f"up to {MAX_USER_ROWS} rows sampled per seed; `studies.user_splits`: "
        "numbers standardised and text one-hot encoded with training-row statistics, "
        "a regression target standardised)"
        if data else f"Friedman #1 regression, {size['rows']} rows, 10 standardised "
        "features, standardised target, new data per seed"
    )
    _, activation, loss_name = output_head(data.task if data else "regression")
    protocol = (
        f"- Data: {data_text}; 75% train, 25% validation.\n"
        f"- Model: MLP {list(HIDDEN)} ReLU + He, output {activation or 'linear'} with "
        f"loss {loss_name}; no L2, no dropout.\n"
        f"- Optimizer: plain SGD (no momentum, no schedule), batch {BATCH_SIZE}, "
        f"{size['epochs']} epochs, no early stopping. Learning rates: "
        f"{', '.join(f'{r:.0e}' for r in size['rates'])}. Every rate starts from the "
        "same initial weights and sees the batches in the same order (per seed).\n"
        "- Measured after every epoch: the loss on the whole training and validation "
        f"sets. Target loss (per seed): the initial loss minus {TARGET_FRACTION:.0%} of "
        "the largest drop any non-diverged rate reached. Epochs to target: the first "
        "epoch at or below it (-1: never; the table's mean is over the seeds that "
        "reached it, `reached_target` counts them). Oscillation index: the share of the "
        "training-loss curve's movement that goes up (0 = falls every epoch, 0.5 = "
        "zig-zags without progress), before any divergence.\n"
        f"- `LearningRateFinder.find(model, ..., min_lr=1e-5, max_lr=10, "
        f"num_steps={size['finder_steps']})` on the same model from the same weights."
    )
    literature = (
        "Smith (2017, 'Cyclical learning rates') introduced the range test: raise the "
        "rate exponentially over a short run and pick a rate where the loss still falls "
        "fast, well below where it blows up; fastai and Lightning suggest the minimum "
        "divided by 10, the steepest descent, or the middle of the longest valley. "
        "Classical analysis of gradient descent (Bottou, Curtis & Nocedal 2018) predicts "
        "the same picture as the grid: on a quadratic, steps diverge beyond 2 over the "
        "largest curvature, and progress per step grows with the rate below it. The "
        "suggestions' distance from the grid's best is listed under the verdict."
    )
    return StudyResult(
        claim=("Too low a learning rate is slow; too high a rate oscillates or "
               "diverges."),
        protocol=protocol,
        table=table,
        summary_table=summary,
        verdict=verdict,
        evidence=evidence,
        literature=literature,
        settings={
            "hidden": list(HIDDEN), "optimizer": "SGD", "momentum": 0.0,
            "batch_size": BATCH_SIZE, "epochs": size["epochs"],
            "learning_rates": list(size["rates"]), "rows": size["rows"],
            "l2": 0.0, "dropout": 0.0, "early_stopping": False,
            "target_fraction": TARGET_FRACTION, "divergence_factor": DIVERGENCE_FACTOR,
            "oscillation_threshold": OSCILLATION, "slow_factor": SLOW_FACTOR,
            "finder": {"min_lr": 1e-5, "max_lr": 10.0, "num_steps": size["finder_steps"],
                       "suggestions": finder_rows},
            "grid_best_learning_rate": best_rate,
            "data": data.source if data else "friedman1",
        },
        figure=_figure(table, curves_by_seed, finders, best_rate),
    )


def main(argv=None):
    return study_main(NAME, run, accepts_csv=True, argv=argv)


if __name__ == "__main__":
    sys.exit(main())
