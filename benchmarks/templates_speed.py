"""Training throughput: the binary template against Keras defaults, on TensorFlow and JAX.

Both train the same network (30 inputs, normalisation, the template's
default hidden layers with He initialisation and L2, sigmoid output, Adam
1e-3, batch size 32) with the same metrics (accuracy and the template's
`DataLoss`) on the same 20,000 x 30 synthetic rows for the same number of
epochs; throughput is measured per epoch after the first (which traces or
compiles the step), validation included. The template is what
`templates.binary.train` does: raw columns fed as `tf.data` on TensorFlow and
as numpy batches of one shape on JAX, `steps_per_execution=32`. The
keras-io-style baseline ("Keras defaults") calls `fit` on numpy arrays with
Keras' compile defaults (`steps_per_execution=1`) and `validation_split`.

Keras picks its backend once per process, so each backend runs in a child
process of its own (this script, re-run with `--backend X --child`, prints
one JSON line); in each round every backend runs once, the order rotating
from round to round (TF, JAX, then JAX, TF, ...), and within a child the
template and the baseline alternate which goes first. The script prints, per
backend, the median samples/s of the template and of the baseline, their
ratios to the baseline on TensorFlow (the reference: ratios are taken within
a round, then the median over rounds), the per-round ratios, and the
accuracy of both on the same held-out 20 % of the rows; then the target line:
the template on its faster backend against the TensorFlow baseline (>= 5x).

    python benchmarks/templates_speed.py [--rows 20000] [--columns 30] [--epochs 5] \
        [--repeats 3] [--backends tensorflow,jax]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

# The last rows are held out from both runs, to compare their accuracy.
HELD_OUT = 0.2
VALIDATION_FRACTION = 0.2
BACKENDS = ("tensorflow", "jax")
# The reference every ratio divides by.
REFERENCE = ("tensorflow", "keras defaults")
TARGET = 5.0


class EpochTimer:
    """Records the wall time of each epoch, validation included.

    `callback()` is the Keras callback to pass to `fit` (built on demand, so
    that the parent process never imports Keras).
    """

    def __init__(self):
        self.seconds = []
        self.start = None

    def callback(self):
        import keras

        def begin(epoch, logs=None):
            self.start = time.perf_counter()

        def end(epoch, logs=None):
            self.seconds.append(time.perf_counter() - self.start)

        return keras.callbacks.LambdaCallback(on_epoch_begin=begin, on_epoch_end=end)

    def samples_per_second(self, samples_per_epoch):
        """Steady-state throughput: the first epoch, which traces the graph, is left out."""
        return samples_per_epoch / np.median(self.seconds[1:])


def synthetic_rows(rows, columns, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, columns)).astype("float32")
    weights = rng.normal(size=columns)
    logits = x @ weights + 0.5 * np.sin(3 * x[:, 0]) + rng.normal(scale=1.0, size=rows)
    return x, (logits > 0).astype("int32")


def run_template(x, y, epochs):
    import pandas as pd

    from templates import binary

    timer = EpochTimer()
    frame = pd.DataFrame(x, columns=[f"x{i}" for i in range(x.shape[1])])
    fit_rows = int(len(x) * (1 - HELD_OUT))
    config = binary.SETTINGS.replace(epochs=epochs, patience=epochs,
                                     validation_fraction=VALIDATION_FRACTION, seed=0)
    run = binary.train(frame[:fit_rows], y[:fit_rows], test_features=frame[fit_rows:],
                       test_target=y[fit_rows:], config=config, callbacks=[timer.callback()],
                       verbose=0)
    return timer.samples_per_second(run.metrics["rows"]["train"]), run.metrics["test"]["accuracy"]


def run_keras_defaults(x, y, epochs):
    """The keras-io way: numpy in, compile defaults, `validation_split`; the template's metrics."""
    import keras

    from templates.data_loss import DataLoss

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
    loss = keras.losses.BinaryCrossentropy()
    # The metrics the template compiles (templates/binary.py), nothing else.
    model.compile(optimizer="adam", loss=loss, metrics=[
        keras.metrics.BinaryAccuracy(name="accuracy"), DataLoss(loss),
    ])
    timer = EpochTimer()
    model.fit(x_fit, y_fit, batch_size=32, epochs=epochs, verbose=0,
              validation_split=VALIDATION_FRACTION, callbacks=[timer.callback()])
    samples_per_epoch = int(len(x_fit) * (1 - VALIDATION_FRACTION))
    accuracy = model.evaluate(x[fit_rows:], y[fit_rows:], verbose=0, return_dict=True)["accuracy"]
    return timer.samples_per_second(samples_per_epoch), accuracy


def child(args):
    """Runs both models on this process's backend; prints one JSON line."""
    import templates  # noqa: F401  (chooses the backend from --backend, before Keras)
    from templates.backend import check_backend, current_backend

    check_backend(args.backend)
    x, y = synthetic_rows(args.rows, args.columns)
    runs = {"template": lambda: run_template(x, y, args.epochs),
            "keras defaults": lambda: run_keras_defaults(x, y, args.epochs)}
    order = list(runs) if args.round % 2 == 0 else list(runs)[::-1]
    result = {"backend": current_backend()}
    for name in order:
        speed, accuracy = runs[name]()
        result[name] = {"samples_per_second": float(speed), "accuracy": float(accuracy)}
    print(json.dumps(result), flush=True)


def run_child(backend, round_, args):
    command = [sys.executable, os.path.abspath(__file__), "--child", "--backend", backend,
               "--round", str(round_), "--rows", str(args.rows), "--columns", str(args.columns),
               "--epochs", str(args.epochs)]
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    lines = completed.stdout.strip().splitlines()
    if completed.returncode != 0 or not lines:
        sys.stderr.write(completed.stderr[-3000:])
        raise SystemExit(f"error: the {backend} child failed (exit {completed.returncode}): "
                         f"{' '.join(command)}")
    result = json.loads(lines[-1])
    if result["backend"] != backend:
        raise SystemExit(f"error: the child asked for {backend} ran on {result['backend']}")
    return result


def load():
    return "load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def parent(args):
    backends = args.backends
    if REFERENCE[0] not in backends:
        raise SystemExit(f"error: --backends {','.join(backends)}; expected a list that "
                         f"includes {REFERENCE[0]} (the reference baseline)")
    print(f"{args.rows} x {args.columns} rows, {args.epochs} epochs, {args.repeats} rounds; "
          f"{load()} at the start", flush=True)
    rounds = []
    for round_ in range(args.repeats):
        shift = round_ % len(backends)
        order = backends[shift:] + backends[:shift]
        results = {backend: run_child(backend, round_, args) for backend in order}
        reference = results[REFERENCE[0]][REFERENCE[1]]["samples_per_second"]
        ratios = {(backend, name): results[backend][name]["samples_per_second"] / reference
                  for backend in backends for name in ("template", "keras defaults")}
        rounds.append((results, ratios))
        print(f"round {round_ + 1} ({', '.join(order)}): " + "; ".join(
            f"{backend} template {results[backend]['template']['samples_per_second']:.0f}/s "
            f"({ratios[backend, 'template']:.2f}x), keras defaults "
            f"{results[backend]['keras defaults']['samples_per_second']:.0f}/s "
            f"({ratios[backend, 'keras defaults']:.2f}x)" for backend in backends), flush=True)
    print("\nratios: the median over rounds of (samples/s) / (TensorFlow keras-defaults "
          "samples/s in the same round)")
    print(f"{'backend':<11} {'run':<15} {'samples/s':>10} {'ratio':>7}  {'per-round ratios':<24} "
          "held-out accuracy")
    medians = {}
    for backend in backends:
        for name in ("template", "keras defaults"):
            speeds = [results[backend][name]["samples_per_second"] for results, _ in rounds]
            ratios = [ratio[backend, name] for _, ratio in rounds]
            accuracies = [results[backend][name]["accuracy"] for results, _ in rounds]
            medians[backend, name] = statistics.median(ratios)
            print(f"{backend:<11} {name:<15} {statistics.median(speeds):>10.0f} "
                  f"{medians[backend, name]:>6.2f}x  "
                  f"{' / '.join(f'{r:.2f}' for r in ratios):<24} "
                  f"{' / '.join(f'{a:.4f}' for a in accuracies)}")
    fastest = max(backends, key=lambda backend: medians[backend, "template"])
    ratio = medians[fastest, "template"]
    print(f"\nbinary template on its faster backend ({fastest}): {ratio:.2f}x the TensorFlow "
          f"keras-defaults baseline (target >= {TARGET:.0f}x: "
          f"{'met' if ratio >= TARGET else 'not met'}); {load()} at the end")


def backend_list(text):
    """An argparse type: comma-separated backends, e.g. `tensorflow,jax`."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in BACKENDS]
    if unknown or not names or len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(
            f"{text!r}; expected distinct backends among {', '.join(BACKENDS)}, separated by commas")
    return names


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--columns", type=int, default=30)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3, help="rounds (each backend once a round)")
    parser.add_argument("--backends", type=backend_list, default=list(BACKENDS),
                        help="backends to compare, comma-separated (default: tensorflow,jax)")
    # Internal: one backend's run, in a child process.
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--backend", choices=BACKENDS, help=argparse.SUPPRESS)
    parser.add_argument("--round", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.epochs < 2:
        parser.error(f"--epochs {args.epochs}; expected at least 2 (the first is left out)")
    if args.child:
        child(args)
    else:
        parent(args)


if __name__ == "__main__":
    main()
