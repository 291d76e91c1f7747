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

The timed span is `model.fit()` on a freshly built model, so each monitor's
one-off costs (compiling its measuring step, its first measurement) count.
The variants run in alternating rounds (the order rotates each round) so
that they share the machine's conditions; the first round warms up and is
dropped. Each line gives the median fit time and the median, over rounds, of
the variant's time over the plain fit of the same round, with the lowest and
highest of those ratios: a spread far wider than the overhead means the
rounds are too short or the machine too busy for the figure to hold.

Run: python -m benchmarks.callbacks_overhead [--backends tensorflow jax torch]
    [--rounds 5] [--epochs 3] [--rows 20000]
"""

import argparse
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


def time_backend(args):
    """Times every variant on both models; prints one table per model."""
    import keras

    x, y = synthetic_data(args.rows)
    backend = keras.backend.backend()
    for model_name, build in (
        ("Keras defaults", keras_defaults_model),
        ("template", template_model),
    ):
        spe = build().steps_per_execution
        make = variants()
        names = list(make)
        times = {name: [] for name in names}
        for round_index in range(args.rounds + 1):
            shift = round_index % len(names)
            for name in names[shift:] + names[:shift]:
                keras.utils.set_random_seed(SEED)
                model = build()
                callbacks = make[name]()
                start = time.perf_counter()
                model.fit(
                    x,
                    y,
                    batch_size=BATCH_SIZE,
                    epochs=args.epochs,
                    callbacks=callbacks,
                    verbose=0,
                )
                times[name].append(time.perf_counter() - start)
        print(
            f"{backend}, {model_name} (steps_per_execution={spe}): "
            f"{args.rows} rows, batch {BATCH_SIZE}, {args.epochs} epochs, "
            f"{args.rounds} rounds"
        )
        plain = times["plain Keras"][1:]
        for name in names:
            measured = times[name][1:]
            ratios = [m / p for m, p in zip(measured, plain)]
            print(
                f"  {name:26s} median {statistics.median(measured):6.2f} s  "
                f"ratio {statistics.median(ratios):5.3f}x "
                f"(rounds {min(ratios):5.3f}-{max(ratios):5.3f})",
                flush=True,
            )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", nargs="+", choices=BACKENDS, default=BACKENDS)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    for name in ("rounds", "epochs", "rows"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1; received {getattr(args, name)}")

    if args.child:
        time_backend(args)
        return
    options = ["--rounds", str(args.rounds), "--epochs", str(args.epochs), "--rows", str(args.rows)]
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
