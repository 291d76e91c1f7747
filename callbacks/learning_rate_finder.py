"""LearningRateFinder callback: the learning-rate range test."""

import math
import warnings

import keras
import numpy as np

# The sweep shows a clear descent when its lowest loss is at least this
# fraction below the loss it started from.
MIN_RELATIVE_DESCENT = 0.1


def _descent(losses):
    """Where a loss curve starts, and where its descent begins and ends.

    The curve's first points (a tenth of it, at least 3 while 2 are left
    after them) give its starting level, their median: in a range test they
    are noisy (the smoothed loss averages only a few batches there) and are
    left out of the search for the lowest point. The descent is the part of
    the curve that makes the last 90% of the drop from the starting level
    to the lowest point: from the last point before the lowest one where
    the loss stood above that, to the lowest point.

    Args:
        losses: 1-D float array, at least 2 finite values.

    Returns:
        `(start, begin, lowest)`: the starting level (float), and the indices
        of the first and last point of the descent.
    """
    head = max(min(max(3, len(losses) // 10), len(losses) - 2), 1)
    start = float(np.median(losses[:head]))
    lowest = head + int(np.argmin(losses[head:]))
    level = start - 0.1 * max(start - losses[lowest], 0.0)
    above = np.flatnonzero(losses[: lowest + 1] >= level)
    begin = int(above[-1]) if above.size else 0
    return start, begin, lowest


def suggest_learning_rates(learning_rates, losses):
    """Three suggested learning rates read off a range test's loss curve.

    The curve's first tenth (at least 3 points while 2 are left) is noisy in
    a sweep, where the smoothed loss averages only a few batches: its median
    is the level the curve started from, and the lowest point is looked for
    after it. The descent is the part of the curve that makes the last 90%
    of the drop from that level to the lowest point. Looking for the
    steepest slope and the valley within the descent keeps the noise of the
    flat start of a sweep from counting as descent.

    - `"minimum"`: the rate at the lowest loss, divided by 10 (fastai's
      `lr_min / 10`): at the minimum the loss is about to blow up, one order
      of magnitude lower it still falls fast and stays stable.
    - `"steepest"`: where the loss falls fastest against the logarithm of
      the rate, within the descent, measured over a twentieth of the curve
      (so that batch-to-batch noise averages out): the geometric mean of
      the rates at both ends of the steepest such stretch.
    - `"valley"`: the middle, on the log scale, of the longest valley within
      the descent: the longest chain of points, in order, over which the
      loss keeps falling (a longest decreasing subsequence, so small bumps do
      not cut it short), as fastai's `valley`.

    Args:
        learning_rates: sequence of float, increasing positive rates.
        losses: sequence of float, the (smoothed) loss at each rate, all
            finite, as many as `learning_rates` and at least 2.

    Returns:
        dict with the keys `"minimum"`, `"steepest"` and `"valley"`, each a
        float learning rate.

    Raises:
        ValueError: if fewer than 2 points, lengths differ, or a loss is not
            finite.

    Example:

    >>> rates = [1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0]
    >>> losses = [1.0, 0.98, 0.9, 0.5, 0.3, 2.0]
    >>> suggestions = suggest_learning_rates(rates, losses)
    >>> {name: float(f"{rate:.3g}") for name, rate in suggestions.items()}
    {'minimum': 0.01, 'steepest': 0.00316, 'valley': 0.00316}
    """
    rates = np.asarray(learning_rates, dtype="float64")
    losses = np.asarray(losses, dtype="float64")
    if len(rates) != len(losses) or len(rates) < 2:
        raise ValueError(
            "suggest_learning_rates needs as many losses as learning rates, "
            f"at least 2. Received {len(rates)} learning rates and "
            f"{len(losses)} losses."
        )
    if not np.all(np.isfinite(losses)):
        raise ValueError(
            "suggest_learning_rates needs finite losses. Received "
            f"{losses[~np.isfinite(losses)][0]} at position "
            f"{int(np.flatnonzero(~np.isfinite(losses))[0])}."
        )
    log_rates = np.log(rates)
    _, begin, lowest = _descent(losses)
    # Without a descent, the whole curve, for want of better.
    begin, end = (begin, lowest) if begin < lowest else (0, len(losses) - 1)

    # Slopes over a twentieth of the curve: noise from batch to batch
    # averages out, a real descent does not.
    window = max(1, min(len(losses) // 20, end - begin))
    ahead = slice(begin + window, end + 1)
    behind = slice(begin, end + 1 - window)
    slopes = (losses[ahead] - losses[behind]) / (
        log_rates[ahead] - log_rates[behind]
    )
    steepest = begin + int(np.argmin(slopes))

    # Longest decreasing chain ending at each point of the descent, and
    # where it starts (the earliest start among equally long chains).
    valley = losses[begin : end + 1]
    length = np.ones(len(valley), dtype=int)
    first = np.arange(len(valley))
    for i in range(1, len(valley)):
        higher = np.flatnonzero(valley[:i] > valley[i])
        if higher.size:
            longest = length[higher].max()
            length[i] = longest + 1
            first[i] = first[higher[length[higher] == longest]].min()
    last = int(np.argmax(length))
    ends = log_rates[begin + first[last]], log_rates[begin + last]

    return {
        "minimum": float(rates[lowest] / 10),
        "steepest": float(
            np.exp((log_rates[steepest] + log_rates[steepest + window]) / 2)
        ),
        "valley": float(np.exp(np.mean(ends))),
    }


class LearningRateFinder(keras.callbacks.Callback):
    """Sweeps the learning rate exponentially and suggests a good one.

    The learning-rate range test (Smith, 2015; `lr_find` in fastai and
    Lightning) measures the rule of thumb "too low is slow, too high
    diverges". During the `fit()` it is passed to, the finder sets the
    optimizer's learning rate before each batch, from `min_lr` up to `max_lr`
    on a log scale over `num_steps` batches, and records the loss of each
    batch. The sweep ends after `num_steps` batches, or earlier when the
    smoothed loss exceeds `divergence_threshold` times the best smoothed loss
    seen (or is not finite); the finder then stops training. At the end of
    that `fit()` it restores the model's weights, the optimizer's variables
    (slots, iteration count) and the original learning rate, so the sweep
    leaves no trace on the model. It works on the TensorFlow, JAX and PyTorch
    backends.

    Three suggestions are read off the smoothed loss curve (see
    `suggest_learning_rates`): `"minimum"` (the rate at the lowest loss
    divided by 10), `"steepest"` (where the loss falls fastest) and
    `"valley"` (the middle of the longest stretch of falling loss).
    `suggested_learning_rate` is the `"minimum"` one. When the smoothed loss
    never falls `MIN_RELATIVE_DESCENT` (10%) below where it started (its
    median over the first tenth of the sweep), the curve shows no clear
    descent and the finder warns that the suggestions are
    unreliable: the sweep started too high, was too short, or the model does
    not learn from this data.

    The fit that runs the sweep is a measurement, not training: the finder
    resets the model's metrics before each batch so that `logs["loss"]` is
    the loss of that batch, and its `History` is of no use. Pass enough
    epochs for `num_steps` batches, or use `LearningRateFinder.find()`, which
    does that for you.

    An optimizer compiled with a `LearningRateSchedule` (or a callable) is
    supported: the schedule is replaced by a plain variable for the sweep and
    put back at the end. With `steps_per_execution=N`, Keras calls batch
    callbacks once every `N` batches: each point of the sweep then covers `N`
    batches at one learning rate and records their mean loss, so the sweep
    runs `num_steps * N` batches.

    Args:
        min_lr: float, learning rate of the first batch. Defaults to `1e-7`.
        max_lr: float, learning rate of the last batch, greater than
            `min_lr`. Defaults to `10.0`.
        num_steps: int, number of points (batches) in the sweep, at least 2.
            Defaults to `100`.
        divergence_threshold: float, greater than 1; the sweep stops when the
            smoothed loss exceeds this multiple of the best smoothed loss.
            Defaults to `4.0`.
        smoothing: float in `[0, 1)`, factor of the exponential moving
            average (with bias correction) applied to the losses; `0` means
            no smoothing. Defaults to `0.98`.

    Attributes:
        learning_rates: list of float, the learning rate of each point.
        losses: list of float, the raw loss of each point.
        smoothed_losses: list of float, the smoothed loss of each point.
        suggestions: dict from `"minimum"`, `"steepest"` and `"valley"` to a
            float learning rate; empty before a sweep has run.
        suggested_learning_rate: float, `suggestions["minimum"]`, or `None`
            before a sweep has run.

    Example:

    >>> import numpy as np
    >>> x = np.random.normal(size=(256, 4)).astype("float32")
    >>> y = x.sum(axis=1, keepdims=True)
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    >>> model.compile(optimizer="sgd", loss="mse")
    >>> finder = LearningRateFinder(min_lr=1e-4, max_lr=10.0, num_steps=60)
    >>> _ = model.fit(x, y, batch_size=16, epochs=10, callbacks=[finder],
    ...               verbose=0)
    >>> 0.01 < finder.suggested_learning_rate < 1.0
    True
    >>> sorted(finder.suggestions)
    ['minimum', 'steepest', 'valley']
    """

    def __init__(
        self,
        min_lr=1e-7,
        max_lr=10.0,
        num_steps=100,
        divergence_threshold=4.0,
        smoothing=0.98,
    ):
        super().__init__()
        if not min_lr > 0:
            raise ValueError(
                "LearningRateFinder needs a positive `min_lr`. "
                f"Received min_lr={min_lr}"
            )
        if not max_lr > min_lr:
            raise ValueError(
                "LearningRateFinder needs `max_lr` greater than `min_lr`. "
                f"Received min_lr={min_lr}, max_lr={max_lr}"
            )
        if isinstance(num_steps, bool) or not isinstance(num_steps, int):
            raise ValueError(
                "LearningRateFinder needs an integer `num_steps`. "
                f"Received num_steps={num_steps!r}"
            )
        if num_steps < 2:
            raise ValueError(
                "LearningRateFinder needs `num_steps` >= 2. "
                f"Received num_steps={num_steps}"
            )
        if not divergence_threshold > 1:
            raise ValueError(
                "LearningRateFinder needs `divergence_threshold` > 1. "
                f"Received divergence_threshold={divergence_threshold}"
            )
        if not 0 <= smoothing < 1:
            raise ValueError(
                "LearningRateFinder needs `smoothing` in [0, 1). "
                f"Received smoothing={smoothing}"
            )
        self.min_lr = float(min_lr)
        self.max_lr = float(max_lr)
        self.num_steps = num_steps
        self.divergence_threshold = float(divergence_threshold)
        self.smoothing = float(smoothing)
        self._reset_sweep()

    def _reset_sweep(self):
        self.learning_rates = []
        self.losses = []
        self.smoothed_losses = []
        self.suggestions = {}
        self.suggested_learning_rate = None
        self._average_loss = 0.0
        self._best_smoothed_loss = math.inf
        self._diverged = False
        self._saved_weights = None
        self._saved_optimizer_variables = None
        self._saved_schedule = None

    def _learning_rate_at(self, step):
        ratio = self.max_lr / self.min_lr
        return self.min_lr * ratio ** (step / (self.num_steps - 1))

    def on_train_begin(self, logs=None):
        self._reset_sweep()
        optimizer = self.model.optimizer
        self._saved_weights = self.model.get_weights()
        self._saved_optimizer_variables = [
            np.array(variable) for variable in optimizer.variables
        ]
        # The one private access: the public `learning_rate` setter refuses
        # to replace a schedule by a value, and the getter returns the
        # schedule's current value, not the schedule. The test
        # `test_private_learning_rate_attribute_holds_the_schedule` names it.
        if not isinstance(optimizer._learning_rate, keras.Variable):
            # A schedule is read inside the traced train step: swap in a
            # variable the finder can set (the optimizer tracks it, so the
            # JAX train state carries it), and retrace so the step reads it.
            self._saved_schedule = optimizer._learning_rate
            optimizer._learning_rate = keras.Variable(
                self.min_lr, dtype=keras.backend.floatx(), trainable=False
            )
            self.model.make_train_function(force=True)

    def on_train_batch_begin(self, batch, logs=None):
        # On JAX, fit() carries the model's state outside its variables during
        # an epoch and would lose what a callback writes to them (keras#19054).
        # Reading `self.model` syncs that state back into the variables
        # (`Callback.model` calls `jax_state_sync()`), and fit() then reads
        # the variables afresh for the next step: the rate and the metrics
        # reset written here reach that step. The test
        # `test_each_point_trains_at_its_own_learning_rate` checks it.
        model = self.model
        learning_rate = self._learning_rate_at(len(self.learning_rates))
        model.optimizer.learning_rate.assign(learning_rate)
        self.learning_rates.append(learning_rate)
        # The loss in `logs` is a running mean since the last metrics reset;
        # resetting here makes it the loss of this batch alone.
        model.reset_metrics()

    def on_train_batch_end(self, batch, logs=None):
        loss = float(logs["loss"])
        self.losses.append(loss)
        step = len(self.losses)
        self._average_loss = (
            self.smoothing * self._average_loss + (1 - self.smoothing) * loss
        )
        smoothed = self._average_loss / (1 - self.smoothing**step)
        self.smoothed_losses.append(smoothed)
        if not math.isfinite(smoothed) or (
            smoothed > self.divergence_threshold * self._best_smoothed_loss
        ):
            self._diverged = True
            self.model.stop_training = True
            return
        self._best_smoothed_loss = min(self._best_smoothed_loss, smoothed)
        if step >= self.num_steps:
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        optimizer = self.model.optimizer
        if self._saved_schedule is not None:
            # The setter also untracks the temporary variable, so the
            # optimizer's variable list is as before the sweep.
            optimizer.learning_rate = self._saved_schedule
            self.model.make_train_function(force=True)
        self.model.set_weights(self._saved_weights)
        for variable, value in zip(
            optimizer.variables, self._saved_optimizer_variables
        ):
            variable.assign(value)
        self._saved_weights = None
        self._saved_optimizer_variables = None
        self._saved_schedule = None
        if not self._diverged and len(self.losses) < self.num_steps:
            reached = self.learning_rates[-1] if self.learning_rates else 0.0
            warnings.warn(
                f"LearningRateFinder ran {len(self.losses)} of "
                f"{self.num_steps} steps before fit() ended, reaching "
                f"learning rate {reached:.3g} of max_lr={self.max_lr}. "
                "Pass more epochs, or use LearningRateFinder.find().",
                stacklevel=2,
            )
        self._suggest()

    def _curve_length(self):
        # The point that triggered divergence (maybe NaN) is not part of the
        # curve, unless it is the only one.
        return max(len(self.smoothed_losses) - self._diverged, 1)

    def _curve(self):
        count = self._curve_length()
        return self.learning_rates[:count], self.smoothed_losses[:count]

    def _has_clear_descent(self):
        losses = np.asarray(self._curve()[1])
        start, _, lowest = _descent(losses)
        return losses[lowest] <= start - MIN_RELATIVE_DESCENT * abs(start)

    def _suggest(self):
        rates, losses = self._curve()
        if len(losses) < 2 or not np.all(np.isfinite(losses)):
            warnings.warn(
                f"LearningRateFinder recorded {len(losses)} usable points "
                f"(losses {losses}): too few to suggest a learning rate. "
                "Lower min_lr.",
                stacklevel=3,
            )
            return
        self.suggestions = suggest_learning_rates(rates, losses)
        self.suggested_learning_rate = self.suggestions["minimum"]
        if not self._has_clear_descent():
            start, _, lowest = _descent(np.asarray(losses))
            warnings.warn(
                "LearningRateFinder sees no clear descent: the smoothed loss "
                f"went from {start:.4g} to at best {losses[lowest]:.4g}, less "
                f"than {MIN_RELATIVE_DESCENT:.0%} lower, between learning "
                f"rates {rates[0]:.3g} and {rates[-1]:.3g}. The suggestions "
                "are unreliable: lower min_lr if the loss rose from the "
                "start, raise max_lr or num_steps if it stayed flat, or check "
                "that the model can learn from this data.",
                stacklevel=3,
            )

    def plot(self, path):
        """Writes a PNG of the loss against the learning rate.

        The x-axis is logarithmic; raw losses are drawn faintly, the smoothed
        loss solidly (the y-axis fits it), and the three suggestions as
        vertical lines. The point where the sweep diverged is left out. A
        curve without a clear descent says so in the title.

        Args:
            path: str or path-like, where to write the PNG file.

        Raises:
            RuntimeError: if no sweep has run yet.

        Example:

        ```python
        model.fit(x, y, epochs=10, callbacks=[finder])
        finder.plot("lr_finder.png")
        ```
        """
        if not self.losses:
            raise RuntimeError(
                "LearningRateFinder.plot() needs a sweep: pass the finder to "
                "model.fit(callbacks=[finder]) or use "
                "LearningRateFinder.find() first. Received no recorded losses."
            )
        # Figure without pyplot: renders with Agg and leaves the global
        # matplotlib backend alone.
        from matplotlib.figure import Figure

        rates, smoothed = self._curve()
        figure = Figure(figsize=(6, 4))
        axes = figure.subplots()
        axes.plot(rates, self.losses[: len(rates)], alpha=0.3, label="loss")
        axes.plot(rates, smoothed, label="smoothed loss")
        # Raw spikes would flatten the curve: fit the y-axis to the smoothed
        # loss.
        finite = [loss for loss in smoothed if math.isfinite(loss)]
        if finite:
            low, high = min(finite), max(finite)
            margin = 0.1 * (high - low) or 0.1 * abs(high) or 1.0
            axes.set_ylim(low - margin, high + margin)
        styles = {
            "minimum": ("red", "--", "minimum / 10"),
            "steepest": ("green", ":", "steepest slope"),
            "valley": ("purple", "-.", "valley"),
        }
        for name, rate in self.suggestions.items():
            color, linestyle, label = styles[name]
            axes.axvline(
                rate, color=color, linestyle=linestyle, label=f"{label} {rate:.2g}"
            )
        if self.suggestions and not self._has_clear_descent():
            axes.set_title("no clear descent: suggestions unreliable")
        axes.set_xscale("log")
        axes.set_xlabel("learning rate")
        axes.set_ylabel("loss")
        axes.legend()
        figure.tight_layout()
        figure.savefig(path, format="png")

    @classmethod
    def find(cls, model, x, y=None, batch_size=None, **kwargs):
        """Runs a sweep on the given data and returns the finder.

        Calls `model.fit()` with a new finder and enough epochs for the whole
        sweep; the model (weights, optimizer state, learning rate) is left as
        it was.

        Args:
            model: a compiled `keras.Model`.
            x: training inputs, as accepted by `model.fit()`.
            y: training targets, as accepted by `model.fit()`. Defaults to
                `None` (for a dataset `x` that yields targets).
            batch_size: int, passed to `model.fit()`. Defaults to `None`
                (Keras' default of 32 for arrays).
            **kwargs: arguments of `LearningRateFinder()`, e.g. `min_lr`.

        Returns:
            The `LearningRateFinder`, with `suggestions`,
            `suggested_learning_rate`, `learning_rates` and `losses` filled in.

        Example:

        ```python
        finder = LearningRateFinder.find(model, x, y, batch_size=16)
        model.optimizer.learning_rate.assign(finder.suggestions["valley"])
        model.fit(x, y, epochs=10)
        ```
        """
        finder = cls(**kwargs)
        # Every epoch has at least one batch, so num_steps epochs always
        # suffice; the finder stops training when its sweep ends.
        model.fit(
            x,
            y,
            batch_size=batch_size,
            epochs=finder.num_steps,
            callbacks=[finder],
            verbose=0,
        )
        return finder

    def get_config(self):
        return {
            "min_lr": self.min_lr,
            "max_lr": self.max_lr,
            "num_steps": self.num_steps,
            "divergence_threshold": self.divergence_threshold,
            "smoothing": self.smoothing,
        }
