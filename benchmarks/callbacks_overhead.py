"""Wall-time overhead of the zero-argument monitors, on each Keras backend.

For each backend (each in its own process, `KERAS_BACKEND` set), trains a
30-64-64-1 MLP on synthetic numpy rows with plain Keras and with the
callbacks as a user plugs them in, with no arguments: `GradientMonitor()`,
`ActivationMonitor()`, and both with `OutputLossCheck()`. Two compilations
of the same model:

- "Keras defaults": `compile("adam", "binary_crossentropy")`, one step per
  call into the compiled function;
- "template": as `templates/binary.py` compiles it (Adam 1e-3, L2 0.1, He
  initialisation, accuracy, AUC, precision and recall, and
  `steps_per_execution=32`; PyTorch runs Keras' only allowed value, 1). The
  input is numpy arrays, not the templates' `tf.data` pipeline, which is
  TensorFlow's own.

Every fit runs on a freshly built model and is timed in two parts: its
first epoch, which holds the one-off costs (compiling the train function,
and each monitor's measuring function, at the first step), and the epochs
after it, the steady state, where the monitors cost, per call of the train
function, one Python call and a comparison (the dispatcher of
`callbacks/_train_step_capture.py`), and per epoch: `GradientMonitor`'s
measured call (all the steps of one `steps_per_execution` call) and its 16
reads of the loss between measurements, `ActivationMonitor`'s probe pass
(compiled once per fit on JAX). The variants run in alternating rounds
(the order rotates each round) so that they share the machine's conditions,
after one unmeasured plain fit that warms the process up.

Each line gives, in wall time and in the process's CPU time (all threads;
less sensitive than wall time to other processes on a busy machine): the
median steady-state seconds, the median over rounds of the variant's
steady-state time over the plain fit's of the same round, with the lowest
and highest of those ratios (a spread far wider than the overhead means the
rounds are too short or the machine too busy for the figure to hold), and
the median one-off cost: the first epoch's extra seconds over the plain fit.

A steady state of a fraction of a second is mostly noise (JAX runs 20,000
rows an epoch in about 0.12 s), so each model trains for as many epochs as
make the plain fit's steady state last about `--steady-seconds` (timed on
the warm-up fit), and at least `--epochs`.

Run: python -m benchmarks.callbacks_overhead [--backends tensorflow jax torch]
    [--rounds 5] [--epochs 3] [--steady-seconds 3] [--rows 20000]
"""

import argparse
import logging
import math
import os
import statistics
import subprocess
import sys
import time

BACKENDS = ("tensorflow", "jax", "torch")
COLUMNS = 30
BATCH_SIZE = 32
SEED = 0


def synthetic_data(rows):
    import numpy as np

    rng = np.random.default_rng(SEED)
    x = rng.normal(size=(rows, COLUMNS)).astype("float32")
    weights = rng.normal(size=COLUMNS)
    y = (x @ weights + rng.normal(size=rows) > 0).astype("float32")[:, None]
    return x, y


def keras_defaults_model():
    import keras

    model = keras.Sequential(
        [
            keras.Input((COLUMNS,)),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(1, activation="sigmoid"),
        ]
    )
    model.compile(optimizer="adam", loss="binary_crossentropy")
    return model


def template_model():
    import keras

    inputs = keras.Input((COLUMNS,))
    x = inputs
    for layer in (1, 2):
        x = keras.layers.Dense(
            64,
            activation="relu",
            kernel_initializer="he_normal",
            kernel_regularizer=keras.regularizers.L2(0.1),
            name=f"hidden_{layer}",
        )(x)
    outputs = keras.layers.Dense(1, activation="sigmoid", name="output")(x)
    model = keras.Model(inputs, outputs)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.BinaryCrossentropy(),
        metrics=[
            keras.metrics.BinaryAccuracy(name="accuracy"),
            keras.metrics.AUC(name="auc"),
            keras.metrics.Precision(name="precision"),
            keras.metrics.Recall(name="recall"),
        ],
        steps_per_execution=1 if keras.backend.backend() == "torch" else 32,
    )
    return model


def variants():
    """Name to a function returning the callbacks of one fit."""
    from callbacks import ActivationMonitor, GradientMonitor, OutputLossCheck

    return {
        "plain Keras": list,
        "GradientMonitor()": lambda: [GradientMonitor()],
        "ActivationMonitor()": lambda: [ActivationMonitor()],
        "all three, no arguments": lambda: [
            GradientMonitor(),
            ActivationMonitor(),
            OutputLossCheck(),
        ],
    }


def timed_fit(build, callbacks, x, y, epochs):
    """Fits a fresh model.

    Returns:
        `(model, first, steady)`: `first` and `steady` are `(wall, cpu)`
        seconds of the first epoch and of the epochs after it; cpu is this
        process's CPU time, all threads.
    """
    import keras

    def now():
        return time.perf_counter(), time.process_time()

    class FirstEpochEnd(keras.callbacks.Callback):
        """Notes when the first epoch ends (last in the callback list)."""

        def on_epoch_end(self, epoch, logs=None):
            if epoch == 0:
                self.time = now()

    keras.utils.set_random_seed(SEED)
    model = build()
    clock = FirstEpochEnd()
    start = now()
    model.fit(
        x,
        y,
        batch_size=BATCH_SIZE,
        epochs=epochs,
        callbacks=[*callbacks, clock],
        verbose=0,
    )
    end = now()
    first = tuple(b - a for a, b in zip(start, clock.time))
    steady = tuple(b - a for a, b in zip(clock.time, end))
    return model, first, steady


def epochs_for(steady_seconds, seconds_per_epoch, least):
    """Epochs for a plain steady state of about `steady_seconds`, at least `least`.

    Example:

    >>> epochs_for(3.0, 0.125, 3), epochs_for(3.0, 2.0, 3)
    (25, 3)
    """
    return max(least, 1 + math.ceil(steady_seconds / max(seconds_per_epoch, 1e-6)))


def time_backend(args):
    """Times every variant on both models; prints one table per model."""
    import keras

    # Keras builds a new train function per model: TensorFlow's retracing
    # warnings say nothing here.
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    x, y = synthetic_data(args.rows)
    for model_name, build in (
        ("Keras defaults", keras_defaults_model),
        ("template", template_model),
    ):
        make = variants()
        names = list(make)
        first = {name: [] for name in names}
        steady = {name: [] for name in names}
        model, _, warm_steady = timed_fit(build, [], x, y, args.epochs)  # warm-up
        epochs = epochs_for(args.steady_seconds, warm_steady[0] / (args.epochs - 1),
                            args.epochs)
        for round_index in range(args.rounds):
            shift = round_index % len(names)
            for name in names[shift:] + names[:shift]:
                _, first_epoch, rest = timed_fit(
                    build, make[name](), x, y, epochs
                )
                first[name].append(first_epoch)
                steady[name].append(rest)
        print(
            f"{keras.backend.backend()}, {model_name} "
            f"(steps_per_execution={model.steps_per_execution}): "
            f"{args.rows} rows, batch {BATCH_SIZE}, {epochs} epochs "
            f"(the first apart), {args.rounds} rounds, load average "
            f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
        )
        plain = "plain Keras"
        for name in names:
            columns = [f"  {name:24s}"]
            for unit, kind in ((0, "wall"), (1, "cpu")):
                ratios = [
                    v[unit] / p[unit] for v, p in zip(steady[name], steady[plain])
                ]
                one_off = [
                    v[unit] - p[unit] for v, p in zip(first[name], first[plain])
                ]
                median = statistics.median(v[unit] for v in steady[name])
                columns.append(
                    f"{kind} {median:6.2f} s {statistics.median(ratios):5.3f}x "
                    f"({min(ratios):5.3f}-{max(ratios):5.3f}) "
                    f"one-off {statistics.median(one_off):+5.2f} s"
                )
            print(" | ".join(columns), flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", nargs="+", choices=BACKENDS, default=BACKENDS)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=3,
                        help="the least epochs per fit, the first included (default 3)")
    parser.add_argument("--steady-seconds", type=float, default=3.0,
                        help="more epochs where a plain steady state would last less "
                             "(default 3.0 s)")
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    for name, least in (("rounds", 1), ("epochs", 2), ("rows", BATCH_SIZE), ("steady_seconds", 0)):
        if getattr(args, name) < least:
            print(
                f"error: --{name.replace('_', '-')} must be at least {least}; "
                f"received {getattr(args, name)}",
                file=sys.stderr,
            )
            sys.exit(2)

    if args.child:
        time_backend(args)
        return
    options = ["--rounds", str(args.rounds), "--epochs", str(args.epochs), "--rows", str(args.rows),
               "--steady-seconds", str(args.steady_seconds)]
    failed = []
    for backend in args.backends:
        result = subprocess.run(
            [sys.executable, "-m", "benchmarks.callbacks_overhead", "--child", *options],
            env={**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"},
            check=False,
        )
        if result.returncode:
            failed.append(backend)
    if failed:
        print(f"error: the benchmark failed on {', '.join(failed)}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
