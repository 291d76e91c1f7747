"""Training throughput: the binary template against Keras defaults, side by side.

Both train the same network (30 inputs, normalisation, the template's
default hidden layers with He initialisation and L2, sigmoid output, Adam
1e-3, batch size 32, the same metrics) on the same 20,000 x 30
synthetic rows for the same number of epochs; throughput is measured per
epoch after the first (which traces the graph), validation included. The template feeds raw columns
through `tf.data` and compiles with `steps_per_execution`; the keras-io-style
baseline calls `fit` on numpy arrays with Keras' compile defaults. Runs
alternate in one process; the script prints samples/s of each, their ratio and
both accuracies on the same held-out 20 % of the rows.

    python benchmarks/templates_speed.py [--rows 20000] [--epochs 5] [--repeats 2]
"""

import argparse
import time

import keras
import numpy as np
import pandas as pd

from templates import binary

# The last rows are held out from both runs, to compare their accuracy.
HELD_OUT = 0.2


class EpochTimer(keras.callbacks.Callback):
    """Records the wall time of each epoch, validation included."""

    def on_train_begin(self, logs=None):
        self.seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self.start)

    def samples_per_second(self, samples_per_epoch):
        """Steady-state throughput: the first epoch, which traces the graph, is left out."""
        return samples_per_epoch / np.median(self.seconds[1:])


def synthetic_rows(rows, columns, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, columns)).astype("float32")
    weights = rng.normal(size=columns)
    logits = x @ weights + 0.5 * np.sin(3 * x[:, 0]) + rng.normal(scale=1.0, size=rows)
    return x, (logits > 0).astype("int32")


def run_template(x, y, epochs, validation_fraction):
    timer = EpochTimer()
    frame = pd.DataFrame(x, columns=[f"x{i}" for i in range(x.shape[1])])
    fit_rows = int(len(x) * (1 - HELD_OUT))
    config = binary.SETTINGS.replace(epochs=epochs, patience=epochs,
                                     validation_fraction=validation_fraction, seed=0)
    run = binary.train(frame[:fit_rows], y[:fit_rows], test_features=frame[fit_rows:],
                       test_target=y[fit_rows:], config=config, callbacks=[timer], verbose=0)
    return timer.samples_per_second(run.metrics["rows"]["train"]), run.metrics["test"]["accuracy"]


def run_keras_defaults(x, y, epochs, validation_fraction):
    """The keras-io way: numpy in, compile defaults, `validation_split`."""
    keras.utils.set_random_seed(0)
    fit_rows = int(len(x) * (1 - HELD_OUT))
    x_fit, y_fit = x[:fit_rows], y[:fit_rows]
    normalize = keras.layers.Normalization()
    normalize.adapt(x_fit)
    # The template's default hidden layers (templates/binary.py: depth 2, width 64, ReLU, L2 0.1).
    hidden = [
        keras.layers.Dense(64, activation="relu", kernel_initializer="he_normal",
                           kernel_regularizer=keras.regularizers.L2(0.1))
        for _ in range(2)
    ]
    model = keras.Sequential([
        keras.Input(shape=(x.shape[1],)), normalize, *hidden,
        keras.layers.Dense(1, activation="sigmoid"),
    ])
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=[
        keras.metrics.BinaryAccuracy(name="accuracy"), keras.metrics.AUC(name="auc"),
        keras.metrics.Precision(name="precision"), keras.metrics.Recall(name="recall"),
    ])
    timer = EpochTimer()
    model.fit(x_fit, y_fit, batch_size=32, epochs=epochs, verbose=0,
              validation_split=validation_fraction, callbacks=[timer])
    samples_per_epoch = int(len(x_fit) * (1 - validation_fraction))
    accuracy = model.evaluate(x[fit_rows:], y[fit_rows:], verbose=0, return_dict=True)["accuracy"]
    return timer.samples_per_second(samples_per_epoch), accuracy


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--columns", type=int, default=30)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    x, y = synthetic_rows(args.rows, args.columns)
    results = {"template": [], "keras defaults": []}
    for _ in range(args.repeats):
        results["keras defaults"].append(run_keras_defaults(x, y, args.epochs, 0.2))
        results["template"].append(run_template(x, y, args.epochs, 0.2))
    for name, runs in results.items():
        speeds, accuracies = zip(*runs)
        print(f"{name:<15} samples/s={np.median(speeds):>9.0f}  held-out accuracy={np.mean(accuracies):.4f}")
    ratio = np.median([s for s, _ in results["template"]]) / np.median(
        [s for s, _ in results["keras defaults"]])
    gap = 100 * (np.mean([a for _, a in results["template"]]) - np.mean(
        [a for _, a in results["keras defaults"]]))
    print(f"speed ratio (template / keras defaults): {ratio:.2f}x; "
          f"held-out accuracy difference: {gap:+.2f} points")


if __name__ == "__main__":
    main()
