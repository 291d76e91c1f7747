"""Study 5: too many epochs overfit, too few underfit; many parameters raise the risk.

Long runs on a small training set with noisy labels (a share of the labels
flipped at random), with no regularisation and no early stopping, record the
training, validation and test loss after every epoch. What early stopping
would have kept at several patiences is read off the validation curve with
Keras' own rule (and checked once against a real `EarlyStopping` run), and
the same runs at several widths show whether more parameters overfit more.

Run `python -m studies.epochs [--quick] [--seeds 0,1,2] [--output DIR]
[--csv FILE --target COLUMN --task TASK]`.

Example:

>>> early_stopping_epochs([1.0, 0.5, 0.6, 0.7, 0.4], patience=2)
(3, 1)
"""

import sys

import keras
import numpy as np
import pandas as pd

from studies import common
from studies.user_splits import output_head, user_splits

NAME = "epochs"

WIDTHS = (8, 32, 128, 512)
DEFAULT_WIDTH = 128
DEPTH = 2
EPOCHS = 100
PATIENCES = (5, 20, 50)
LEARNING_RATE = 1e-3
BATCH_SIZE = 32
LABEL_NOISE = 0.2
TRAIN_ROWS, VALIDATION_ROWS, TEST_ROWS = 300, 300, 1000
# Verdict thresholds, relative to the lowest validation loss of a run.
MIN_OVERFIT = 0.10  # final validation loss this much above its minimum: overfitting
MIN_UNDERFIT = 0.10  # validation loss after the first epochs this much above the minimum
MIN_WIDTH_CORRELATION = 0.8  # Spearman rank correlation of width and overfitting

QUICK = {"widths": (128,), "epochs": 15, "patiences": (3,)}


def early_stopping_epochs(validation_losses, patience):
    """Where `keras.callbacks.EarlyStopping` would stop, and which epoch it would restore.

    Mirrors `EarlyStopping(monitor="val_loss", patience=patience, min_delta=0,
    restore_best_weights=True)` on a recorded validation curve.

    Args:
        validation_losses: sequence of float, the validation loss after each epoch.
        patience: int, epochs without improvement before stopping.

    Returns:
        `(last_epoch, restored_epoch)`, 0-based: the last epoch trained and the
        epoch whose weights the model ends with.
    """
    best, best_epoch, wait = float("inf"), 0, 0
    for epoch, loss in enumerate(validation_losses):
        wait += 1
        if loss < best:
            best, best_epoch, wait = loss, epoch, 0
            continue
        if wait >= patience and epoch > 0:
            return epoch, best_epoch
    return len(validation_losses) - 1, best_epoch


def noisy_label_data(seed, rows, label_noise=LABEL_NOISE):
    """Binary labels from a mildly non-linear rule of 10 Gaussian features, a share flipped.

    Args:
        seed: int.
        rows: int.
        label_noise: float, the share of labels flipped at random.

    Returns:
        `(x, y)`: float32 arrays of shapes `(rows, 10)` and `(rows, 1)`.
    """
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 10)).astype("float32")
    clean = x[:, 0] + x[:, 1] + 0.5 * x[:, 2] * x[:, 3] > 0
    flipped = rng.random(rows) < label_noise
    return x, (clean ^ flipped).astype("float32")[:, None]


class LossCurves(keras.callbacks.Callback):
    """Records the loss of named splits after every epoch, in inference mode.

    One forward pass over all splits per epoch; each split's loss lands in
    `logs` as `<name>_loss`, so `EarlyStopping(monitor="val_loss")` and
    `History` see it.

    Args:
        splits: dict `{name: (x, y)}`.
        loss: str or callable, a Keras loss (per-row losses are averaged).
    """

    def __init__(self, splits, loss):
        super().__init__()
        self.splits = splits
        self.loss = keras.losses.get(loss)
        self._x = np.concatenate([x for x, _ in splits.values()])
        self._y = np.concatenate([y for _, y in splits.values()])
        self._ends = np.cumsum([len(x) for x, _ in splits.values()])

    def on_train_begin(self, logs=None):
        self.curves = {name: [] for name in self.splits}

    def on_epoch_end(self, epoch, logs=None):
        per_row = keras.ops.convert_to_numpy(self.loss(self._y, self.model(self._x)))
        for name, part in zip(self.splits, np.split(per_row, self._ends[:-1])):
            value = float(np.mean(part))
            self.curves[name].append(value)
            if logs is not None:
                logs[f"{name}_loss"] = value


def _data(options, seed):
    if options.data is not None:
        return user_splits(options.data, seed)
    x, y = noisy_label_data(seed, TRAIN_ROWS + VALIDATION_ROWS + TEST_ROWS)
    ends = np.cumsum([TRAIN_ROWS, VALIDATION_ROWS])
    parts = zip(np.split(x, ends), np.split(y, ends))
    return dict(zip(("train", "val", "test"), parts)), output_head("binary")


def _model(inputs, width, head):
    units, activation, loss = head
    model = common.mlp(inputs, (width,) * DEPTH, outputs=units, output_activation=activation)
    model.compile(optimizer=keras.optimizers.Adam(LEARNING_RATE), loss=loss,
                  steps_per_execution=32)
    return model


def train_curves(splits, head, width, epochs, seed, callbacks=()):
    """Trains one model for `epochs` epochs; returns `(curves, model)`."""
    common.seed_everything(seed)
    x, y = splits["train"]
    model = _model(x.shape[1], width, head)
    curves = LossCurves(splits, head[2])
    batch_size = min(BATCH_SIZE, len(x))
    # One pass over the rows per Keras epoch, from a pipeline that reshuffles
    # every pass: cheaper per epoch than numpy arrays.
    model.fit(common.repeated_dataset(x, y, batch_size, seed), epochs=epochs,
              steps_per_epoch=len(x) // batch_size, shuffle=False, verbose=0,
              callbacks=[curves, *callbacks])
    return curves.curves, model


def _summaries(curves, width, seed, patiences, early_epoch):
    train, val, test = (np.array(curves[name]) for name in ("train", "val", "test"))
    best = int(np.argmin(val))
    row = {"width": width, "seed": seed, "epochs": len(val), "best_val_epoch": best + 1,
           "min_val_loss": val[best], "final_val_loss": val[-1],
           "overfit": (val[-1] - val[best]) / val[best],
           "early_val_loss": val[early_epoch],
           "underfit": (val[early_epoch] - val[best]) / val[best],
           "train_loss_at_best": train[best], "final_train_loss": train[-1],
           "test_loss_at_best_val": test[best], "final_test_loss": test[-1],
           "best_test_loss": test.min()}
    for patience in patiences:
        last, restored = early_stopping_epochs(val, patience)
        row[f"stop_epoch_p{patience}"] = last + 1
        row[f"test_loss_p{patience}"] = test[restored]
    return row


def _figure(example, table, patiences, width):
    figure, axes = common.new_figure(1, 2, width=6.0, height=4.0)
    epochs = np.arange(1, len(example["val"]) + 1)
    for name, style in (("train", "-"), ("val", "-"), ("test", "--")):
        axes[0].plot(epochs, example[name], style, label=f"{name} loss")
    for patience in patiences:
        last, _ = early_stopping_epochs(example["val"], patience)
        axes[0].axvline(last + 1, color="grey", linestyle=":", linewidth=1)
        axes[0].annotate(f"stop p={patience}", (last + 1, max(example["val"])), rotation=90,
                         fontsize=8, va="top")
    axes[0].set(xlabel="epoch", ylabel="loss", yscale="log",
                title=f"width {width}, first seed: loss per epoch")
    axes[0].legend()
    by_width = table.groupby("width")
    for column, label in (("min_val_loss", "lowest validation loss"),
                          ("final_val_loss", "final validation loss"),
                          ("final_train_loss", "final training loss")):
        mean = by_width[column].mean()
        axes[1].plot(mean.index, mean.values, "o-", label=label)
    axes[1].set(xscale="log", yscale="log", xlabel="hidden width (2 layers)", ylabel="loss",
                title="width sweep (mean over seeds)")
    axes[1].legend()
    return figure


def _verdict(overfit, underfit, still_falling, correlation):
    if overfit < MIN_OVERFIT or correlation <= -MIN_WIDTH_CORRELATION:
        return "CONTRADICTED"
    if (overfit >= MIN_OVERFIT and underfit >= MIN_UNDERFIT and still_falling
            and correlation >= MIN_WIDTH_CORRELATION):
        return "SUPPORTED"
    return "INCONCLUSIVE"


def run(options):
    """Long runs over widths and seeds, summarised per run."""
    widths, epochs, patiences = WIDTHS, EPOCHS, PATIENCES
    if options.quick:
        widths, epochs, patiences = QUICK["widths"], QUICK["epochs"], QUICK["patiences"]
    width = DEFAULT_WIDTH if DEFAULT_WIDTH in widths else widths[-1]
    early_epoch = 0  # "too few": one epoch
    rows, example = [], None
    for seed in options.seeds:
        splits, head = _data(options, seed)
        for w in widths:
            curves, _ = train_curves(splits, head, w, epochs, seed)
            rows.append(_summaries(curves, w, seed, patiences, early_epoch))
            if example is None and w == width:
                example = curves
    table = pd.DataFrame(rows)

    # The recorded curve against a real EarlyStopping run with the smallest patience.
    splits, head = _data(options, options.seeds[0])
    stopper = keras.callbacks.EarlyStopping(monitor="val_loss", patience=patiences[0],
                                            restore_best_weights=True)
    real, model = train_curves(splits, head, width, epochs, options.seeds[0], [stopper])
    simulated_last, simulated_restored = early_stopping_epochs(example["val"], patiences[0])
    real_last = len(real["val"]) - 1
    x_test, y_test = splits["test"]
    real_test = float(model.evaluate(x_test, y_test, verbose=0, batch_size=1024))
    check = {"patience": patiences[0], "real_last_epoch": real_last + 1,
             "simulated_last_epoch": simulated_last + 1,
             "real_restored_epoch": stopper.best_epoch + 1,
             "simulated_restored_epoch": simulated_restored + 1,
             "real_test_loss": real_test,
             "simulated_test_loss": example["test"][simulated_restored]}

    default = table[table["width"] == width]
    overfit = float(default["overfit"].mean())
    underfit = float(table["underfit"].mean())
    still_falling = bool((default["final_train_loss"] < default["train_loss_at_best"]).all())
    by_width = table.groupby("width")["overfit"].mean()
    correlation = (float(pd.Series(by_width.index).corr(pd.Series(by_width.values),
                                                       method="spearman"))
                   if len(by_width) > 1 else float("nan"))
    verdict = _verdict(overfit, underfit, still_falling, correlation)
    patience_lines = ", ".join(
        f"patience {p}: {common.format_number(default[f'test_loss_p{p}'].mean())} "
        f"(stops at epoch {default[f'stop_epoch_p{p}'].mean():.3g})" for p in patiences)
    evidence = "\n".join([
        (f"- too many epochs (width {width}, mean over seeds): the validation loss ends "
        f"**{overfit:.1%}** above its minimum (epoch {default['best_val_epoch'].mean():.3g} of "
        f"{epochs}); SUPPORTED needs >= {MIN_OVERFIT:.0%}. The training loss "
        f"{'keeps falling after that epoch in every run' if still_falling else 'does not keep falling in every run'} "
        f"({common.format_number(default['train_loss_at_best'].mean())} there, "
        f"{common.format_number(default['final_train_loss'].mean())} at the end)."),
        (f"- too few epochs: after {early_epoch + 1} epoch the validation loss is "
        f"**{underfit:.1%}** above its minimum (mean over every width and seed; per width: "
        + ", ".join(f"{w}: {v:.1%}" for w, v in table.groupby("width")["underfit"].mean().items())
        + f"); SUPPORTED needs >= {MIN_UNDERFIT:.0%}."),
        (f"- more parameters: Spearman correlation of width and overfitting (mean over seeds) "
        f"**{correlation:.2f}** over widths {list(widths)}; SUPPORTED needs >= "
        f"{MIN_WIDTH_CORRELATION}, CONTRADICTED <= -{MIN_WIDTH_CORRELATION}. Overfitting per "
        f"width: " + ", ".join(f"{w}: {v:.1%}" for w, v in by_width.items()) + "."),
        (f"- what early stopping keeps (test loss, width {width}): {patience_lines}; the last "
        f"epoch's test loss is {common.format_number(default['final_test_loss'].mean())}, the "
        f"lowest on the test curve {common.format_number(default['best_test_loss'].mean())}."),
        (f"- check: a real `EarlyStopping(patience={patiences[0]}, restore_best_weights=True)` "
        f"run stopped after epoch {check['real_last_epoch']} and restored epoch "
        f"{check['real_restored_epoch']} (test loss {common.format_number(real_test)}); read "
        f"off the recorded curve: epoch {check['simulated_last_epoch']}, epoch "
        f"{check['simulated_restored_epoch']} "
        f"({common.format_number(check['simulated_test_loss'])})."),
    ])
    source = (f"the user CSV ({options.data.task}), split 60/20/20, features standardised "
              "on the training rows, labels as given" if options.data is not None else
              f"synthetic binary labels `x0 + x1 + 0.5 x2 x3 > 0` of 10 Gaussian features, "
              f"{LABEL_NOISE:.0%} of the labels flipped at random in every split; "
              f"{TRAIN_ROWS} training, {VALIDATION_ROWS} validation, {TEST_ROWS} test rows")
    protocol = f"""\
- data: {source};
- model: {DEPTH} hidden ReLU layers (He initialisation) of width {list(widths)} (width {width} is the one the overfitting and early-stopping lines read), no L2, no dropout; Adam at {LEARNING_RATE}, batch {BATCH_SIZE}; {epochs} epochs with no early stopping; an epoch is `rows // batch` steps from a pipeline that reshuffles at every pass (`common.repeated_dataset`);
- measured after every epoch, in inference mode, by the `LossCurves` callback of this module: the loss on the training, validation and test rows;
- early stopping: Keras' `EarlyStopping(monitor="val_loss", min_delta=0, restore_best_weights=True)` rule applied to each recorded validation curve at patiences {list(patiences)}; the test loss of the restored epoch is what it keeps. One real `EarlyStopping` run checks the rule;
- "overfitting" = (final validation loss - lowest) / lowest; "underfitting" = (validation loss after {early_epoch + 1} epoch(s) - lowest) / lowest;
- seeds {list(options.seeds)} (data, weights, shuffling); the table below shows means over seeds per width, `results.csv` every run."""
    literature = """\
- Prechelt (1998), *Early stopping - but when?*: validation curves have several local minima, so larger patience finds a lower validation loss at the cost of more epochs; compare the patience line above.
- Zhang et al. (2017), *Understanding deep learning requires rethinking generalization*: networks with enough parameters fit random labels, which is the training loss falling towards 0 on the flipped labels here; Arpit et al. (2017) show the clean pattern is learned first, then the noise, the shape of the validation curve.
- Nakkiran et al. (2020), *Deep double descent*, and Belkin et al. (2019): past a point, more parameters and more epochs can lower the test loss again, so "many parameters raise the risk" is not monotone in general; the width sweep says which side of that point these widths fall on."""
    settings = {"widths": list(widths), "depth": DEPTH, "epochs": epochs,
                "patiences": list(patiences), "optimizer": "adam",
                "learning_rate": LEARNING_RATE, "batch_size": BATCH_SIZE, "l2": 0,
                "dropout": 0, "early_stopping": "off during training; applied to the curves",
                "label_noise": None if options.data is not None else LABEL_NOISE,
                "seeds": list(options.seeds), "early_stopping_check": check,
                "thresholds": {"min_overfit": MIN_OVERFIT, "min_underfit": MIN_UNDERFIT,
                               "min_width_correlation": MIN_WIDTH_CORRELATION},
                "overfit": overfit, "underfit": underfit, "width_correlation": correlation}
    return common.StudyResult(
        claim="Too many epochs overfit and too few underfit; a network with many parameters "
              "is more at risk of overfitting.",
        protocol=protocol, table=table, verdict=verdict, evidence=evidence,
        literature=literature, settings=settings,
        figure=_figure(example, table, patiences, width),
        summary_table=table.drop(columns="seed").groupby("width").mean().reset_index())


def main(argv=None):
    """Command line: `python -m studies.epochs --help`."""
    return common.study_main(NAME, run, accepts_csv=True, argv=argv)


if __name__ == "__main__":
    sys.exit(main())
