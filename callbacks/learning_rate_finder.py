"""LearningRateFinder callback: the learning-rate range test."""

import math
import warnings

import keras
import numpy as np

from callbacks._backend import require_supported_backend


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
    leaves no trace on the model.

    The suggested learning rate is the one at the minimum of the smoothed loss
    divided by 10 (the `lr_min / 10` rule of fastai): at the minimum the loss
    is about to blow up, one order of magnitude lower it still falls fast and
    stays stable. The steepest-descent rule was not chosen because the
    batch-to-batch noise at tiny learning rates often has the steepest slope.

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
        suggested_learning_rate: float, or `None` before a sweep has run.

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
        require_supported_backend("LearningRateFinder")
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
            variable.numpy() for variable in optimizer.variables
        ]
        if not isinstance(optimizer._learning_rate, keras.Variable):
            # A schedule is read inside the traced train step: swap in a
            # variable the finder can set, and retrace so the step reads it.
            self._saved_schedule = optimizer._learning_rate
            optimizer._learning_rate = keras.Variable(
                self.min_lr, dtype=keras.backend.floatx(), trainable=False
            )
            self.model.make_train_function(force=True)

    def on_train_batch_begin(self, batch, logs=None):
        learning_rate = self._learning_rate_at(len(self.learning_rates))
        self.model.optimizer.learning_rate.assign(learning_rate)
        self.learning_rates.append(learning_rate)
        # The loss in `logs` is a running mean since the last metrics reset;
        # resetting here makes it the loss of this batch alone.
        self.model.reset_metrics()

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
        self.suggested_learning_rate = self._suggest()

    def _curve_length(self):
        # The point that triggered divergence (maybe NaN) is not part of the
        # curve, unless it is the only one.
        return max(len(self.smoothed_losses) - self._diverged, 1)

    def _suggest(self):
        if not self.smoothed_losses:
            return None
        curve = self.smoothed_losses[: self._curve_length()]
        return self.learning_rates[int(np.argmin(curve))] / 10

    def plot(self, path):
        """Writes a PNG of the loss against the learning rate.

        The x-axis is logarithmic; raw losses are drawn faintly, the smoothed
        loss solidly (the y-axis fits it), and the suggested learning rate as
        a vertical line. The point where the sweep diverged is left out.

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

        count = self._curve_length()
        rates = self.learning_rates[:count]
        smoothed = self.smoothed_losses[:count]
        figure = Figure(figsize=(6, 4))
        axes = figure.subplots()
        axes.plot(rates, self.losses[:count], alpha=0.3, label="loss")
        axes.plot(rates, smoothed, label="smoothed loss")
        # Raw spikes would flatten the curve: fit the y-axis to the smoothed
        # loss.
        low, high = min(smoothed), max(smoothed)
        margin = 0.1 * (high - low) or 0.1 * abs(high) or 1.0
        axes.set_ylim(low - margin, high + margin)
        if self.suggested_learning_rate is not None:
            axes.axvline(
                self.suggested_learning_rate,
                color="red",
                linestyle="--",
                label=f"suggested {self.suggested_learning_rate:.2g}",
            )
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
            The `LearningRateFinder`, with `suggested_learning_rate`,
            `learning_rates` and `losses` filled in.

        Example:

        ```python
        finder = LearningRateFinder.find(model, x, y, batch_size=16)
        model.optimizer.learning_rate.assign(finder.suggested_learning_rate)
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
