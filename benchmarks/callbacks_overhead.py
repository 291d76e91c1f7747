"""Wall-time overhead of GradientMonitor and ActivationMonitor.

Trains the binary template's model (30 numeric columns, hidden (64, 64),
`steps_per_execution=32`) on 20,000 synthetic rows, with and without each
monitor, alternating the runs in one process so that they share the machine's
conditions, and prints each variant's wall time over the baseline's, paired by round.

The timed span is `model.fit()` on a fresh template model, so the monitors'
one-off costs (the eager warm-up and the tracing of their probe function)
are included. With `steps_per_execution=32` Keras calls batch callbacks once
per 32 batches, so `every_n_batches=1` measures every 32 training steps:
the most often a callback can measure at that setting.

Run: python -m benchmarks.callbacks_overhead [--rounds 7] [--epochs 5]
"""

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from callbacks.activation_monitor import ActivationMonitor  # noqa: E402
from callbacks.gradient_monitor import GradientMonitor  # noqa: E402
from templates import binary, preprocessing  # noqa: E402
from templates.labels import encode_binary_labels  # noqa: E402

ROWS = 20_000
COLUMNS = 30
PROBE_ROWS = 256
BATCH_SIZE = 32
SEED = 0


def synthetic_data():
    rng = np.random.default_rng(SEED)
    features = pd.DataFrame(
        rng.normal(size=(ROWS, COLUMNS)).astype("float32"),
        columns=[f"x{i}" for i in range(COLUMNS)],
    )
    weights = rng.normal(size=COLUMNS)
    target = (features.to_numpy() @ weights + rng.normal(size=ROWS) > 0).astype(int)
    return features, encode_binary_labels(pd.Series(target, name="target"))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--epochs", type=int, default=5)
    args = parser.parse_args()

    features, labels = synthetic_data()
    inputs = preprocessing.frame_to_inputs(
        features, preprocessing.column_kinds(features)
    )
    dataset = preprocessing.make_dataset(
        inputs, labels.values, batch_size=BATCH_SIZE, shuffle=True, seed=SEED
    )
    probe_x = {name: values[:PROBE_ROWS] for name, values in inputs.items()}
    probe_y = labels.values[:PROBE_ROWS]
    variants = {
        "baseline (no monitor)": lambda: [],
        "GradientMonitor, default": lambda: [
            GradientMonitor(probe=(probe_x, probe_y))
        ],
        "ActivationMonitor, default": lambda: [ActivationMonitor(probe=probe_x)],
        "GradientMonitor, every_n_batches=1": lambda: [
            GradientMonitor(probe=(probe_x, probe_y), every_n_batches=1)
        ],
        "ActivationMonitor, every_n_batches=1": lambda: [
            ActivationMonitor(probe=probe_x, every_n_batches=1)
        ],
    }
    times = {name: [] for name in variants}
    for _ in range(args.rounds + 1):  # the first round warms up and is dropped
        for name, make_callbacks in variants.items():
            keras.utils.set_random_seed(SEED)
            model = binary.build_model(features, labels, hidden=(64, 64))
            callbacks = make_callbacks()
            start = time.perf_counter()
            model.fit(
                dataset, epochs=args.epochs, callbacks=callbacks, shuffle=False,
                verbose=0,
            )
            times[name].append(time.perf_counter() - start)

    baseline = times["baseline (no monitor)"][1:]
    print(
        f"{ROWS} rows x {COLUMNS} columns, batch {BATCH_SIZE}, {args.epochs} "
        f"epochs, probe {PROBE_ROWS} rows, {args.rounds} rounds; ratio: "
        "median over rounds of (variant / baseline of the same round)"
    )
    for name, measured in times.items():
        ratios = [m / b for m, b in zip(measured[1:], baseline)]
        print(
            f"{name:38s} median {statistics.median(measured[1:]):6.2f} s  "
            f"ratio {statistics.median(ratios):5.3f}x"
        )

if __name__ == "__main__":
    main()
