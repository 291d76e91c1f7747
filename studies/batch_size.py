"""Study 4: memory limits the batch size; the batch size sets the speed.

Three measurements on one small MLP:

- speed: samples per second of `model.fit` at batch sizes 8 to 2048, the
  median of timed epochs after a warm-up epoch;
- memory: the peak bytes TensorFlow's CPU allocator holds during one training
  step (`tf.config.experimental.get_memory_info`), at batch sizes up to
  131,072, beside the activations the step must keep, computed from the model;
- quality: test loss after a fixed number of epochs at each batch size, with
  one learning rate for all and with the rate scaled with the batch (the
  linear scaling rule).

Run `python -m studies.batch_size [--quick] [--seeds 0,1,2] [--output DIR]
[--csv FILE --target COLUMN --task TASK]`.

Example:

>>> activation_bytes(32, inputs=10, hidden=(64, 64), outputs=1)
17792
"""

import os
import sys
import time

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from studies import common
from studies.user_splits import output_head, user_splits

NAME = "batch_size"

HIDDEN = (64, 64)
SPEED_BATCHES = (8, 16, 32, 64, 128, 256, 512, 1024, 2048)
MEMORY_BATCHES = (8, 64, 512, 2048, 8192, 32768, 131072)
QUALITY_BATCHES = (8, 32, 128, 512, 2048)
# The linear scaling rule's reference: this batch size trains at BASE_LEARNING_RATE.
BASE_BATCH = 32
BASE_LEARNING_RATE = 0.01
EPOCHS = 20
TIMED_EXECUTIONS = 5
# As the templates: many steps per call into the compiled graph.
STEPS_PER_EXECUTION = 32
SPEED_ROWS, QUALITY_ROWS, TEST_ROWS = 8192, 4096, 2048
# Verdict thresholds.
MIN_SPEEDUP = 2.0  # best samples/s over batch 8's for "the batch sets the speed"
NO_SPEEDUP = 1.2  # below this, the claim is contradicted
MIN_MEMORY_R2 = 0.9  # a straight line through the measured peaks explains this much

QUICK = {"speed_batches": (8, 512), "memory_batches": (2048, 32768), "quality_batches": (8, 512),
         "epochs": 1, "timed_executions": 2, "speed_rows": 2048, "quality_rows": 512,
         "test_rows": 512}


def activation_bytes(batch_size, *, inputs, hidden, outputs):
    """Bytes of the float32 activations one training step keeps for the backward pass.

    Args:
        batch_size: int, rows per step.
        inputs: int, input features.
        hidden: sequence of int, hidden layer widths.
        outputs: int, output units.

    Returns:
        int, `batch_size * (inputs + sum(hidden) + outputs) * 4`.
    """
    return int(batch_size * (inputs + sum(hidden) + outputs) * 4)


def _model(inputs, units, activation, loss, learning_rate):
    model = common.mlp(inputs, HIDDEN, outputs=units, output_activation=activation)
    model.compile(optimizer=keras.optimizers.SGD(learning_rate), loss=loss,
                  steps_per_execution=STEPS_PER_EXECUTION)
    return model


class _ExecutionTimer(keras.callbacks.Callback):
    """Times the intervals between calls into the compiled graph (each `steps_per_execution` steps)."""

    def on_train_begin(self, logs=None):
        self.ends = []

    def on_train_batch_end(self, batch, logs=None):
        self.ends.append(time.perf_counter())


def _data(options, seed, sizes):
    """Train and test arrays, and the output head, from the user's CSV or synthetic rows."""
    if options.data is not None:
        splits, head = user_splits(options.data, seed)
        return (*splits["train"], *splits["test"], head)
    x, y = common.make_regression_data(seed, sizes["rows"] + sizes["test_rows"])
    rows = sizes["rows"]
    return x[:rows], y[:rows], x[rows:], y[rows:], output_head("regression")


def measure_speed(x, y, head, batch_sizes, timed_executions, seed):
    """Returns `{batch_size: (samples_per_second, seconds_per_step)}` of `model.fit`.

    One `fit` per batch size over a repeated, shuffled dataset: the first
    call into the graph traces it, the next `timed_executions` calls (each
    `STEPS_PER_EXECUTION` steps) are timed between Keras' batch callbacks,
    so Keras' once-per-epoch costs stay out of the figure. The fastest call
    counts: on a shared machine, other processes only ever add time.
    """
    speeds = {}
    for batch_size in batch_sizes:
        common.seed_everything(seed)
        model = _model(x.shape[1], *head, BASE_LEARNING_RATE)
        timer = _ExecutionTimer()
        model.fit(common.repeated_dataset(x, y, batch_size, seed), epochs=1,
                  steps_per_epoch=(1 + timed_executions) * STEPS_PER_EXECUTION,
                  shuffle=False, callbacks=[timer], verbose=0)
        step = float(np.min(np.diff(timer.ends))) / STEPS_PER_EXECUTION
        speeds[batch_size] = (batch_size / step, step)
    return speeds


def measure_memory(x, y, head, batch_sizes, seed):
    """Returns `{batch_size: peak bytes}` of TensorFlow's CPU allocator during one step.

    Rows are repeated to fill batches larger than the data.
    """
    common.seed_everything(seed)
    model = _model(x.shape[1], *head, BASE_LEARNING_RATE)
    peaks = {}
    for batch_size in batch_sizes:
        rows = np.resize(np.arange(len(x)), batch_size)
        batch_x, batch_y = x[rows], y[rows]
        model.train_on_batch(batch_x, batch_y)  # traces the step at this shape
        tf.config.experimental.reset_memory_stats("CPU:0")
        before = tf.config.experimental.get_memory_info("CPU:0")["current"]
        model.train_on_batch(batch_x, batch_y)
        peaks[batch_size] = tf.config.experimental.get_memory_info("CPU:0")["peak"] - before
    return peaks


def measure_quality(x, y, x_test, y_test, head, batch_size, learning_rate, epochs, seed):
    """Test loss (and final training loss) after `epochs` epochs of plain SGD; NaN if it diverged."""
    common.seed_everything(seed)
    model = _model(x.shape[1], *head, learning_rate)
    history = model.fit(x, y, batch_size=batch_size, epochs=epochs, shuffle=True, verbose=0,
                        callbacks=[keras.callbacks.TerminateOnNaN()]).history
    train_loss = history["loss"][-1]
    if not np.isfinite(train_loss):
        return float("nan"), float("nan")
    test_loss = model.evaluate(x_test, y_test, batch_size=1024, verbose=0)
    return float(train_loss), float(test_loss) if np.isfinite(test_loss) else float("nan")


def _line_fit(batch_sizes, peaks):
    """Slope (bytes per row) and R^2 of a straight line through the non-zero peaks."""
    points = [(b, p) for b, p in zip(batch_sizes, peaks) if p > 0]
    if len(points) < 2:
        return float("nan"), float("nan")
    b, p = np.array(points, dtype=float).T
    slope, intercept = np.polyfit(b, p, 1)
    residual = p - (slope * b + intercept)
    total = np.sum((p - p.mean()) ** 2)
    return float(slope), float(1 - residual @ residual / total) if total else 1.0


def _verdict(speedup, memory_slope, memory_r2):
    memory_grows = memory_slope > 0 and memory_r2 >= MIN_MEMORY_R2
    if speedup < NO_SPEEDUP or not memory_slope > 0:
        return "CONTRADICTED"
    if speedup >= MIN_SPEEDUP and memory_grows:
        return "SUPPORTED"
    return "INCONCLUSIVE"


def _physical_memory():
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return float("nan")


def _figure(table, head_sizes):
    speed = table[table["part"] == "speed"]
    memory = table[table["part"] == "memory"]
    quality = table[table["part"] == "quality"]
    figure, axes = common.new_figure(1, 3, width=5.0, height=4.0)
    axes[0].plot(speed["batch_size"], speed["samples_per_s"], "o-")
    axes[0].set(xscale="log", yscale="log", xlabel="batch size", ylabel="samples / s",
                title="training throughput (steps after tracing)")
    # The allocator reads 0 for small steps: those points are left out of the log scale.
    measured = memory[memory["peak_mb"] > 0]
    axes[1].plot(measured["batch_size"], measured["peak_mb"], "o-",
                 label="measured: allocator peak (0 below ~2,000 rows)")
    axes[1].plot(memory["batch_size"], memory["activations_mb"], "s--",
                 label="computed: activations kept")
    axes[1].set(xscale="log", yscale="log", xlabel="batch size", ylabel="MB per step",
                title="memory of one training step")
    axes[1].legend()
    for rate, marker in (("fixed", "o-"), ("scaled", "s--")):
        rows = quality[quality["learning_rate_rule"] == rate].groupby("batch_size")["test_loss"]
        mean = rows.mean()
        axes[2].plot(mean.index, mean.values, marker, label=f"learning rate {rate}")
        axes[2].fill_between(mean.index, rows.min().values, rows.max().values, alpha=0.2)
        for batch_size in mean.index[mean.isna()]:
            axes[2].annotate(f"diverged ({rate})", (batch_size, np.nanmax(mean.values)),
                             ha="right", fontsize=8)
    axes[2].set(xscale="log", xlabel="batch size", ylabel="test loss",
                title=f"after {head_sizes['epochs']} epochs (seed min-max band)")
    axes[2].legend()
    return figure


def _summary_table(table):
    """One row per batch size: speed, memory and the seed-mean test losses."""
    speed = table[table["part"] == "speed"].set_index("batch_size")[["samples_per_s", "ms_per_step"]]
    memory = table[table["part"] == "memory"].set_index("batch_size")[["peak_mb", "activations_mb"]]
    quality = table[table["part"] == "quality"]
    losses = quality.pivot_table(index="batch_size", columns="learning_rate_rule",
                                 values="test_loss", aggfunc="mean")
    losses.columns = [f"test_loss_{rule}_lr" for rule in losses.columns]
    diverged = quality.groupby("batch_size")["diverged"].sum().rename("diverged_runs")
    summary = speed.join([memory, losses, diverged], how="outer").reset_index()
    summary["batch_size"] = summary["batch_size"].astype(str)  # no 1.311e5 for 131072
    return summary


def run(options):
    """Measures speed, memory and quality against the batch size."""
    sizes = {"speed_batches": SPEED_BATCHES, "memory_batches": MEMORY_BATCHES,
             "quality_batches": QUALITY_BATCHES, "epochs": EPOCHS,
             "timed_executions": TIMED_EXECUTIONS, "speed_rows": SPEED_ROWS,
             "quality_rows": QUALITY_ROWS, "test_rows": TEST_ROWS}
    if options.quick:
        sizes.update(QUICK)
    seeds = options.seeds
    x, y, x_test, y_test, head = _data(
        options, seeds[0], {"rows": sizes["speed_rows"], "test_rows": sizes["test_rows"]})
    rows = []
    # The pipeline repeats the rows, so any batch size can be timed.
    speed_batches = list(sizes["speed_batches"])
    speeds = measure_speed(x, y, head, speed_batches, sizes["timed_executions"], seeds[0])
    for batch_size, (samples_per_s, step_s) in speeds.items():
        rows.append({"part": "speed", "batch_size": batch_size, "samples_per_s": samples_per_s,
                     "ms_per_step": 1000 * step_s})
    peaks = measure_memory(x, y, head, sizes["memory_batches"], seeds[0])
    for batch_size, peak in peaks.items():
        rows.append({"part": "memory", "batch_size": batch_size, "peak_mb": peak / 1e6,
                     "activations_mb": activation_bytes(batch_size, inputs=x.shape[1],
                                                        hidden=HIDDEN, outputs=head[0]) / 1e6})
    quality_batches = [b for b in sizes["quality_batches"] if b <= min(len(x), sizes["quality_rows"])]
    for seed in seeds:
        x, y, x_test, y_test, head = _data(
            options, seed, {"rows": sizes["quality_rows"], "test_rows": sizes["test_rows"]})
        for batch_size in quality_batches:
            for rule, rate in (("fixed", BASE_LEARNING_RATE),
                               ("scaled", BASE_LEARNING_RATE * batch_size / BASE_BATCH)):
                train_loss, test_loss = measure_quality(x, y, x_test, y_test, head, batch_size,
                                                        rate, sizes["epochs"], seed)
                rows.append({"part": "quality", "batch_size": batch_size, "seed": seed,
                             "learning_rate_rule": rule, "learning_rate": rate,
                             "train_loss": train_loss, "test_loss": test_loss,
                             "diverged": not np.isfinite(test_loss)})
    table = pd.DataFrame(rows)

    speed = table[table["part"] == "speed"].set_index("batch_size")["samples_per_s"]
    speedup = float(speed.max() / speed.iloc[0])
    memory = table[table["part"] == "memory"]
    slope, r2 = _line_fit(memory["batch_size"], memory["peak_mb"] * 1e6)
    ram = _physical_memory()
    fills_ram = ram / slope if slope > 0 else float("nan")
    verdict = _verdict(speedup, slope, r2)
    quality = table[table["part"] == "quality"]
    quality_lines = []
    for rule in ("fixed", "scaled"):
        parts = []
        for batch, group in quality[quality["learning_rate_rule"] == rule].groupby("batch_size"):
            failed = int(group["diverged"].sum())
            text = common.format_number(group["test_loss"].mean())  # over the runs that finished
            if failed == len(group):
                text = "diverged"
            elif failed:
                text += f" ({failed} of {len(group)} runs diverged)"
            parts.append(f"{batch}: {text}")
        quality_lines.append(f"- test loss after {sizes['epochs']} epochs, learning rate {rule} "
                             "(mean over seeds), by batch size: " + ", ".join(parts) + ".")
    evidence = "\n".join([
        (f"- speed: {common.format_number(speed.max())} samples/s at batch {speed.idxmax()} against "
        f"{common.format_number(speed.iloc[0])} at batch {speed.index[0]}: **{speedup:.3g}x** "
        f"(SUPPORTED needs >= {MIN_SPEEDUP}x, CONTRADICTED below {NO_SPEEDUP}x). Measured on "
        "a shared CPU: absolute figures move with the load, the ratio much less."),
        (f"- memory: the allocator's peak per step grows by **{slope:.4g} bytes per row** "
        f"(straight-line R^2 = {r2:.3f}; SUPPORTED needs a positive slope and R^2 >= "
        f"{MIN_MEMORY_R2}); at that rate one step would fill this machine's "
        f"{ram / 1e9:.3g} GB of RAM at a batch of about {fills_ram:.3g} rows: for a model this "
        "small, memory is not what limits the batch size on a CPU; the data are."),
        *quality_lines,
        "- quality is reported, not part of the verdict: it depends on the data and the epochs.",
    ])
    protocol = f"""\
- data: {'the user CSV (' + options.data.task + '), split 60/20/20, features standardised on the training rows' if options.data is not None else f'synthetic regression (`common.make_regression_data`), {sizes["speed_rows"]} rows for speed and memory, {sizes["quality_rows"]} training and {sizes["test_rows"]} test rows for quality, standardised target'};
- model: MLP {HIDDEN}, ReLU with He initialisation, no L2, no dropout, plain SGD (no momentum), `steps_per_execution={STEPS_PER_EXECUTION}` as the templates, no early stopping;
- speed: `model.fit` on a shuffled, repeated `tf.data` pipeline (`common.repeated_dataset`) of {len(x)} rows; after the first call into the graph (tracing), the fastest of {sizes['timed_executions']} calls of {STEPS_PER_EXECUTION} steps each, taken between Keras' batch callbacks (Keras' per-epoch costs left out), batch sizes {list(speed_batches)}, seed {seeds[0]};
- memory: `tf.config.experimental.get_memory_info('CPU:0')['peak']` after `reset_memory_stats`, around one `train_on_batch` (after a first one that traces), batch sizes {list(sizes['memory_batches'])} (rows repeated to fill the batch). Below about 2,000 rows the step's tensors are too small for the allocator's statistics and read 0. The computed line is `batch x (inputs + sum(hidden) + outputs) x 4` bytes, the activations kept for the backward pass;
- quality: {sizes['epochs']} epochs at every batch size (so large batches take fewer steps), learning rate {BASE_LEARNING_RATE} for all ("fixed") or {BASE_LEARNING_RATE} x batch / {BASE_BATCH} ("scaled", Goyal et al.'s linear scaling rule, no warm-up), seeds {list(seeds)}; a run whose loss becomes NaN is stopped and counted as diverged. The table below shows one row per batch size, test losses as means over seeds; `results.csv` holds every measurement."""
    literature = """\
- Goyal et al. (2017), *Accurate, large minibatch SGD*: scaling the learning rate with the batch (with a warm-up) keeps ImageNet accuracy up to batch 8k. Without the warm-up, the scaled rate is where large batches diverge here, if they do.
- Keskar et al. (2017), *On large-batch training for deep learning*: at equal epochs large batches generalise worse (sharp minima); in the fixed-rate column that shows as a higher test loss at large batches, confounded with the smaller number of updates.
- Masters & Luschi (2018), *Revisiting small batch training for deep neural networks*: the best results came with batches of 2 to 32; compare where the lowest test loss falls above.
- Memory: the activations kept for the backward pass grow linearly with the batch, which is what limits the batch size on a GPU with big models; the measured slope above says how far from that limit a small tabular MLP is."""
    settings = {"hidden": list(HIDDEN), "optimizer": "SGD (momentum 0)",
                "base_learning_rate": BASE_LEARNING_RATE, "base_batch": BASE_BATCH,
                "steps_per_execution": STEPS_PER_EXECUTION, "l2": 0, "dropout": 0,
                "early_stopping": False, "seeds": list(seeds), **{k: v for k, v in sizes.items()},
                "thresholds": {"min_speedup": MIN_SPEEDUP, "no_speedup": NO_SPEEDUP,
                               "min_memory_r2": MIN_MEMORY_R2},
                "speedup": speedup, "memory_bytes_per_row": slope, "memory_r2": r2}
    return common.StudyResult(
        claim="Memory limits the batch size; the batch size sets the speed: larger batches "
              "process more samples per second, and each step needs memory in proportion to "
              "the batch.",
        protocol=protocol, table=table, verdict=verdict, evidence=evidence,
        literature=literature, settings=settings, figure=_figure(table, sizes),
        summary_table=_summary_table(table))


def main(argv=None):
    """Command line: `python -m studies.batch_size --help`."""
    return common.study_main(NAME, run, accepts_csv=True, argv=argv)


if __name__ == "__main__":
    sys.exit(main())
