"""Study 7: each task needs its output layer and loss.

`python -m studies.output_and_loss [--seeds 0,1,2] [--quick] [--output DIR]`

Trains the same MLP with the right output and loss for each task (linear +
MSE, sigmoid + binary cross-entropy, softmax + cross-entropy, and a linear
output with `from_logits=True`) and with the wrong ones people write
(sigmoid + MSE, a one-unit softmax, a linear output with cross-entropy
without `from_logits`, softmax + MSE), then compares accuracy, log-loss and
calibration on held-out rows, and asks `OutputLossCheck` about each pairing.

Example:

>>> round(expected_calibration_error(np.array([0.9, 0.9, 0.1]), np.array([1, 1, 0])), 3)
0.1
"""

import dataclasses
import sys
import warnings

import keras
import numpy as np
import pandas as pd
from matplotlib.ticker import NullFormatter

from callbacks import OutputLossCheck, OutputLossMismatchError
from studies.common import (
    StudyResult,
    make_classification_data,
    make_regression_data,
    mlp,
    new_figure,
    repeated_dataset,
    seed_everything,
    split,
    study_main,
)

NAME = "output_and_loss"
HIDDEN = (32, 32)
BATCH_SIZE = 32
LEARNING_RATE = 1e-3
CLASSES = 4
EPSILON = 1e-7  # Keras' clipping of probabilities in cross-entropy
FULL = {"rows": 1024, "epochs": 30}
# Quick: a few steps, run eagerly (tracing nine train steps would take longer).
QUICK = {"rows": 256, "epochs": 1, "eager": True}
# A wrong pairing is "worse" than its task's right one (mean over seeds) when
# its accuracy is lower by more than this many points, its log-loss higher by
# more than this factor, or its calibration error higher by more than this.
ACCURACY_MARGIN = 0.02
LOG_LOSS_FACTOR = 1.1
CALIBRATION_MARGIN = 0.02


@dataclasses.dataclass(frozen=True)
class Pairing:
    """One output layer and loss for one task."""

    label: str
    task: str
    activation: "str | None"
    units: int
    loss: str
    from_logits: bool
    right: bool

    def make_loss(self):
        if self.loss == "mse":
            return keras.losses.MeanSquaredError()
        if self.loss == "binary_crossentropy":
            return keras.losses.BinaryCrossentropy(from_logits=self.from_logits)
        return keras.losses.SparseCategoricalCrossentropy(from_logits=self.from_logits)


PAIRINGS = (
    Pairing("linear + MSE", "regression", None, 1, "mse", False, True),
    Pairing("sigmoid + BCE", "binary", "sigmoid", 1, "binary_crossentropy", False, True),
    Pairing("linear + BCE(from_logits=True)", "binary", None, 1,
            "binary_crossentropy", True, True),
    Pairing("sigmoid + MSE", "binary", "sigmoid", 1, "mse", False, False),
    Pairing("softmax(1 unit) + BCE", "binary", "softmax", 1,
            "binary_crossentropy", False, False),
    Pairing("linear + BCE (no from_logits)", "binary", None, 1,
            "binary_crossentropy", False, False),
    Pairing("softmax + sparse CE", "multiclass", "softmax", CLASSES,
            "sparse_categorical_crossentropy", False, True),
    Pairing("softmax + MSE (one-hot)", "multiclass", "softmax", CLASSES, "mse", False, False),
    Pairing("linear + sparse CE (no from_logits)", "multiclass", None, CLASSES,
            "sparse_categorical_crossentropy", False, False),
)
# The right pairing each wrong one is compared with.
REFERENCE = {"binary": "sigmoid + BCE", "multiclass": "softmax + sparse CE"}


def expected_calibration_error(confidence, correct, bins=10):
    """Weighted mean gap between confidence and frequency over equal-width bins.

    Args:
        confidence: array of predicted probabilities (of the positive class,
            or of the predicted class).
        correct: array of 0/1 outcomes (the label, or whether the predicted
            class was right).
        bins: int, number of bins on `[0, 1]`. Defaults to `10`.
    """
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    error = 0.0
    for b in range(bins):
        inside = which == b
        if inside.any():
            error += inside.mean() * abs(confidence[inside].mean() - correct[inside].mean())
    return float(error)


def _data(task, seed, rows):
    if task == "regression":
        return make_regression_data(seed, rows=rows)
    return make_classification_data(seed, rows=rows, classes=2 if task == "binary" else CLASSES)


def _targets(pairing, y):
    """The labels as the pairing's loss takes them."""
    if pairing.task == "multiclass" and pairing.loss == "mse":
        return keras.utils.to_categorical(y, CLASSES).astype("float32")
    if pairing.task == "binary":
        return y.reshape(-1, 1).astype("float32")
    return y


def probabilities(pairing, output):
    """Reads the model's output as probabilities, the way its loss reads it.

    Sigmoid and softmax outputs are probabilities; a linear output with
    `from_logits=True` goes through the sigmoid; a linear output without it
    is clipped to `[1e-7, 1 - 1e-7]` (and, for classes, normalised to sum to
    one), as Keras' cross-entropy does.
    """
    if pairing.task == "binary":
        p = output[:, 0]
        if pairing.activation is None and pairing.from_logits:
            p = 1 / (1 + np.exp(-p))
        return np.clip(p, EPSILON, 1 - EPSILON)
    if pairing.activation is None:
        output = np.clip(output, EPSILON, None)
        output = output / output.sum(axis=1, keepdims=True)
    return np.clip(output, EPSILON, 1 - EPSILON)


def _scores(pairing, output, y):
    if pairing.task == "regression":
        mse = float(np.mean((output[:, 0] - y[:, 0]) ** 2))
        return {"test_mse": mse, "test_r2": 1 - mse / float(np.var(y))}
    p = probabilities(pairing, output)
    if pairing.task == "binary":
        log_loss = -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))
        predicted = (p > 0.5).astype(int)
        calibration = expected_calibration_error(p, y)
    else:
        p = p / p.sum(axis=1, keepdims=True)
        log_loss = -np.mean(np.log(p[np.arange(len(y)), y]))
        predicted = p.argmax(axis=1)
        calibration = expected_calibration_error(p.max(axis=1), (predicted == y).astype(float))
    return {
        "accuracy": float(np.mean(predicted == y)),
        "log_loss": float(log_loss),
        "calibration_error": calibration,
    }


def flagged_by_check(model, labels):
    """Whether `OutputLossCheck` stops `fit()` before the first step, and why."""
    try:
        model.fit(np.zeros((1, model.input_shape[-1]), "float32"), labels[:1], epochs=0,
                  callbacks=[OutputLossCheck(y=labels)], verbose=0)
    except OutputLossMismatchError as error:
        return True, str(error).splitlines()[0]
    return False, ""


def measure(pairing, seed, size):
    """Trains one pairing on one seed's data; returns the table row."""
    x, y = _data(pairing.task, seed, size["rows"])
    x_train, x_test, y_train, y_test = split(x, y, seed)
    seed_everything(seed)
    model = mlp(x.shape[1], HIDDEN, outputs=pairing.units,
                output_activation=pairing.activation)
    model.compile(optimizer=keras.optimizers.Adam(LEARNING_RATE), loss=pairing.make_loss(),
                  run_eagerly=size.get("eager", False))
    targets = _targets(pairing, y_train)
    flagged, message = flagged_by_check(model, targets[:256])
    steps = size["epochs"] * len(x_train) // BATCH_SIZE
    with warnings.catch_warnings():
        # Keras warns about the one-unit softmax this study trains on purpose.
        warnings.simplefilter("ignore")
        model.fit(repeated_dataset(x_train, targets, BATCH_SIZE, seed), epochs=1,
                  steps_per_epoch=steps, shuffle=False, verbose=0)
        output = keras.ops.convert_to_numpy(model(x_test, training=False))
    return {
        "pairing": pairing.label,
        "task": pairing.task,
        "right": pairing.right,
        "seed": seed,
        "flagged": flagged,
        **_scores(pairing, output, y_test),
        "check_message": message,
    }


def _worse(wrong, reference):
    reasons = []
    if wrong.accuracy < reference.accuracy - ACCURACY_MARGIN:
        reasons.append(f"accuracy {wrong.accuracy:.3f} vs {reference.accuracy:.3f}")
    if wrong.log_loss > LOG_LOSS_FACTOR * reference.log_loss:
        reasons.append(f"log-loss {wrong.log_loss:.3g} vs {reference.log_loss:.3g}")
    if wrong.calibration_error > reference.calibration_error + CALIBRATION_MARGIN:
        reasons.append(
            f"calibration error {wrong.calibration_error:.3f} vs "
            f"{reference.calibration_error:.3f}"
        )
    return reasons


def _figure(summary):
    figure, axes = new_figure(1, 3, width=4.2, height=3.8)
    shown = summary[summary.task != "regression"].iloc[::-1]
    positions = np.arange(len(shown))
    colors = ["C2" if right else "C3" for right in shown.right]
    for axis, column, title in zip(
        axes,
        ("accuracy", "log_loss", "calibration_error"),
        ("test accuracy", "test log-loss (log scale)", "calibration error (ECE)"),
    ):
        axis.barh(positions, shown[column], color=colors)
        axis.set_title(title)
        axis.set_yticks(positions, shown.pairing if axis is axes[0] else [""] * len(shown),
                        fontsize=7)
    axes[1].set_xscale("log")
    axes[1].xaxis.set_minor_formatter(NullFormatter())
    for position, flagged in zip(positions, shown.flagged):
        if flagged:
            axes[0].annotate("flagged", (0.02, position), va="center", fontsize=7,
                             color="white")
    figure.suptitle("green: right pairing, red: wrong; 'flagged': OutputLossCheck raised",
                    fontsize=9)
    return figure


def run(options):
    size = QUICK if options.quick else FULL
    table = pd.DataFrame([
        measure(pairing, seed, size) for seed in options.seeds for pairing in PAIRINGS
    ])
    metrics = ["accuracy", "log_loss", "calibration_error", "test_mse", "test_r2"]
    summary = table.groupby(["pairing", "task", "right"], sort=False, as_index=False).agg(
        {**{m: "mean" for m in metrics}, "flagged": "all"}
    )
    rows = {row.pairing: row for row in summary.itertuples()}
    worse, not_worse = {}, []
    for row in summary[~summary.right].itertuples():
        reasons = _worse(row, rows[REFERENCE[row.task]])
        if reasons:
            worse[row.pairing] = reasons
        else:
            not_worse.append(row.pairing)
    wrong_count = int((~summary.right).sum())
    flagged_wrong = int(summary[~summary.right].flagged.sum())
    flagged_right = int(summary[summary.right].flagged.sum())
    if not not_worse:
        verdict = "SUPPORTED"
    elif not worse:
        verdict = "CONTRADICTED"
    else:
        verdict = "INCONCLUSIVE"
    first = (
        f"{len(worse)} of {wrong_count} wrong pairings are measurably worse than their "
        f"task's right one; OutputLossCheck flagged {flagged_wrong} of {wrong_count} "
        f"wrong pairings and {flagged_right} of {int(summary.right.sum())} right ones."
    )
    lines = [first, ""]
    lines += [f"- worse: {name}: {'; '.join(reasons)}" for name, reasons in worse.items()]
    lines += [f"- NOT worse: {name}: within every margin of "
              f"{REFERENCE[rows[name].task]}" for name in not_worse]
    logits = rows["linear + BCE(from_logits=True)"]
    sigmoid = rows["sigmoid + BCE"]
    lines += [
        "",
        (f"The linear output with `from_logits=True` (right) against sigmoid + BCE: "
         f"accuracy {logits.accuracy:.3f} vs {sigmoid.accuracy:.3f}, log-loss "
         f"{logits.log_loss:.3g} vs {sigmoid.log_loss:.3g}."),
        "",
        (f"Rule: worse = accuracy lower by more than {ACCURACY_MARGIN}, log-loss higher "
         f"than {LOG_LOSS_FACTOR}x, or calibration error higher by more than "
         f"{CALIBRATION_MARGIN} (means over seeds {list(options.seeds)}). SUPPORTED "
         "when every wrong pairing is worse, CONTRADICTED when none is, INCONCLUSIVE "
         "otherwise. The check's result is reported beside the verdict, not part of "
         "it."),
    ]
    protocol = (
        f"- Data: regression = Friedman #1 ({size['rows']} rows, standardised); binary and "
        f"{CLASSES}-class = scikit-learn `make_classification` ({size['rows']} rows, 10 "
        "features, 5% labels flipped); new data per seed; 75% train, 25% test.\n"
        f"- Model: MLP {list(HIDDEN)} ReLU + He, then the pairing's output layer; no L2, "
        f"no dropout. Adam (learning rate {LEARNING_RATE}), batch {BATCH_SIZE}, "
        f"{size['epochs']} epochs, no early stopping, the same for every pairing.\n"
        "- Pairings: " + "; ".join(
            f"{p.label} ({p.task}, {'right' if p.right else 'wrong'})" for p in PAIRINGS
        ) + ".\n"
        "- Scores on the test rows, from the outputs read as probabilities the way the "
        "loss reads them (sigmoid/softmax as they are; logits through the sigmoid; a "
        f"linear output without from_logits clipped to [{EPSILON}, 1 - {EPSILON}] and, "
        "for classes, normalised): accuracy, log-loss, expected calibration error (10 "
        "bins; binary: P(positive) against the label, multiclass: top-class "
        "confidence against being right).\n"
        "- Flagged: `model.fit(..., callbacks=[OutputLossCheck(y=train_labels)])` "
        "raised `OutputLossMismatchError` before the first step (the study then "
        "trains without the check)."
    )
    literature = (
        "Bishop (2006, sections 4.3 and 5.2) pairs each output activation with the "
        "likelihood it comes from: a linear output with squared error (Gaussian), a "
        "logistic sigmoid with binary cross-entropy (Bernoulli), a softmax with "
        "cross-entropy (categorical); with these canonical links the gradient at the "
        "output is simply prediction minus target. Golik, Doetsch & Ney (2013) compared "
        "cross-entropy and squared error for softmax outputs: squared error trains "
        "more slowly from a random start and can end in a worse optimum. A softmax over "
        "one unit is constant 1 and learns nothing, and Keras' cross-entropy on a "
        "linear output without `from_logits` clips it into [1e-7, 1 - 1e-7], where "
        "the gradient is zero outside that range."
    )
    return StudyResult(
        claim=(
            "Each task needs its output and loss: linear + MSE for regression, sigmoid "
            "+ binary cross-entropy for two classes, softmax + cross-entropy for more."
        ),
        protocol=protocol,
        table=table,
        summary_table=summary,
        verdict=verdict,
        evidence="\n".join(lines),
        literature=literature,
        settings={
            "hidden": list(HIDDEN), "activation": "relu", "initializer": "he_normal",
            "optimizer": "Adam", "learning_rate": LEARNING_RATE, "batch_size": BATCH_SIZE,
            "epochs": size["epochs"], "rows": size["rows"], "classes": CLASSES,
            "l2": 0.0, "dropout": 0.0, "early_stopping": False,
            "pairings": [dataclasses.asdict(p) for p in PAIRINGS],
            "margins": {"accuracy": ACCURACY_MARGIN, "log_loss_factor": LOG_LOSS_FACTOR,
                        "calibration": CALIBRATION_MARGIN},
        },
        figure=_figure(summary),
    )


def main(argv=None):
    return study_main(NAME, run, argv=argv)


if __name__ == "__main__":
    sys.exit(main())
