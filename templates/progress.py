"""`ProgressLine`: training progress a person can follow over hundreds of epochs.

Keras' own progress output prints one or two lines per epoch: 600 lines for
a 300-epoch run, where the one number that matters (is validation still
improving?) scrolls away. `ProgressLine` prints one line that says where the
run stands: the epoch, the monitored validation score now, the best so far
and its epoch, the time spent and the time left. Pass `verbose=0` to
`fit` so that Keras prints nothing besides it.

Example:

>>> import io
>>> import numpy as np
>>> model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
>>> model.compile("sgd", "mean_squared_error")
>>> log = io.StringIO()  # not a terminal: a line every `every_epochs` epochs
>>> x, y = np.ones((8, 3)), np.ones(8)
>>> _ = model.fit(x, y, validation_data=(x, y), epochs=20, verbose=0,
...               callbacks=[ProgressLine(every_epochs=10, stream=log)])
>>> len(log.getvalue().splitlines())  # epochs 1, 10 and 20, then the summary
4
"""

import copy
import os
import shutil
import sys
import time

import keras
import numpy as np

from templates.numbers import format_number

MODES = ("min", "max")


class ProgressLine(keras.callbacks.Callback):
    """Prints one progress line that a person can follow, in a terminal or a log.

    In a terminal (`stream.isatty()`), one line is rewritten in place with
    `\\r` after every epoch, e.g.

        epoch 37/300  val_loss 0.0812  best 0.079 at epoch 30  0:12 spent, 1:25 left

    (cut to the terminal's width) and stays on screen when training ends.
    When the output goes to a file or a pipe, the same line is printed after
    the first epoch, every `every_epochs` epochs, when `every_seconds`
    seconds have passed since the last line, and after the last epoch. A
    final line says whether training ran all its epochs or stopped early
    (e.g. `EarlyStopping`), and the best epoch. The time left is measured on
    the epochs after the first (which also builds the model) and assumes
    that every epoch runs: early stopping only makes it shorter. When `logs`
    lack `monitor` (no validation data), the line shows the epoch and the
    times only. Numbers print with 4 significant digits. The state is reset
    by `on_train_begin`, so one instance serves several `fit` calls, and
    copies made with `copy.deepcopy` share the stream.

    Args:
        monitor: str, the logged quantity to show and track, e.g.
            `"val_loss"` or `"val_accuracy"`. Defaults to `"val_loss"`.
        mode: str, `"min"` when lower `monitor` is better, `"max"` when
            higher is. Defaults to `"min"`.
        every_epochs: int >= 1, epochs between two lines outside a terminal.
            Defaults to `10`.
        every_seconds: float > 0 or `None`, seconds after which a line is
            printed outside a terminal even before `every_epochs` epochs have
            passed; `None` prints by epochs alone. Defaults to `30.0`.
        stream: a text stream with `write`, `flush` and `isatty`, or `None`
            for the `sys.stdout` of the moment training starts. Defaults to
            `None`.

    Example:

    >>> import io
    >>> import numpy as np
    >>> model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    >>> model.compile(keras.optimizers.SGD(0.0), "mean_squared_error")  # never improves
    >>> log = io.StringIO()
    >>> x, y = np.ones((8, 3)), np.ones(8)
    >>> stop = keras.callbacks.EarlyStopping(patience=2)
    >>> _ = model.fit(x, y, validation_data=(x, y), epochs=50, verbose=0,
    ...               callbacks=[stop, ProgressLine(stream=log)])
    >>> print(log.getvalue().splitlines()[-1])  # doctest: +ELLIPSIS
    stopped early at epoch 3 of 50; best val_loss ... at epoch 1; 0:0... spent
    """

    def __init__(self, monitor="val_loss", mode="min", every_epochs=10, every_seconds=30.0,
                 stream=None):
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"ProgressLine does not support mode={mode!r}; expected one of {MODES}.")
        if not isinstance(every_epochs, (int, np.integer)) or isinstance(every_epochs, bool) \
                or every_epochs < 1:
            raise ValueError(
                f"ProgressLine needs an integer every_epochs >= 1. Received every_epochs={every_epochs!r}"
            )
        if every_seconds is not None and not every_seconds > 0:
            raise ValueError(
                f"ProgressLine needs every_seconds > 0 or None. Received every_seconds={every_seconds!r}"
            )
        self.monitor = monitor
        self.mode = mode
        self.every_epochs = int(every_epochs)
        self.every_seconds = every_seconds
        self.stream = stream
        self._reset()

    def _reset(self):
        self._out = None
        self._in_place = False
        self._width = 0
        self._epochs = None
        self._epoch = 0
        self._current = None
        self._best = None
        self._best_epoch = None
        self._started = None
        self._first_epoch_end = None
        self._last_line = None
        self._last_time = None

    def __deepcopy__(self, memo):
        # A stream (sys.stdout, a file) cannot be copied; copies share it.
        clone = copy.copy(self)
        memo[id(self)] = clone
        for name, value in self.__dict__.items():
            if name not in ("stream", "_out"):
                setattr(clone, name, copy.deepcopy(value, memo))
        return clone

    def on_train_begin(self, logs=None):
        self._reset()
        self._out = self.stream if self.stream is not None else sys.stdout
        isatty = getattr(self._out, "isatty", None)
        self._in_place = bool(isatty and isatty())
        self._epochs = self.params.get("epochs") if self.params else None
        self._started = time.monotonic()

    def on_epoch_end(self, epoch, logs=None):
        self._epoch = epoch + 1
        if self._first_epoch_end is None:
            self._first_epoch_end = time.monotonic()
        value = (logs or {}).get(self.monitor)
        self._current = None if value is None else float(value)
        if self._current is not None and not np.isnan(self._current) and self._improved():
            self._best, self._best_epoch = self._current, self._epoch
        if self._in_place:
            self._rewrite(self._line())
        elif self._due():
            self._print(self._line())

    def on_train_end(self, logs=None):
        if self._out is None or self._epoch == 0:
            return
        if self._in_place:
            self._out.write("\n")
        elif self._last_line != self._epoch:
            self._print(self._line())
        self._print(self._summary())

    def _improved(self):
        if self._best is None:
            return True
        return self._current < self._best if self.mode == "min" else self._current > self._best

    def _due(self):
        if self._last_line is None or self._epoch == self._epochs:
            return True
        if self._epoch % self.every_epochs == 0:
            return True
        return (self.every_seconds is not None
                and time.monotonic() - self._last_time >= self.every_seconds)

    def _line(self):
        spent = time.monotonic() - self._started
        parts = [f"epoch {self._epoch}/{self._epochs}" if self._epochs else f"epoch {self._epoch}"]
        if self._current is not None:
            parts.append(f"{self.monitor} {format_number(self._current)}")
        if self._best is not None:
            parts.append(f"best {format_number(self._best)} at epoch {self._best_epoch}")
        times = f"{_clock(spent)} spent"
        if self._epochs and 1 < self._epoch < self._epochs:
            # The first epoch also builds and traces the model: leave it out.
            per_epoch = (time.monotonic() - self._first_epoch_end) / (self._epoch - 1)
            times += f", {_clock(per_epoch * (self._epochs - self._epoch))} left"
        parts.append(times)
        return "  ".join(parts)

    def _summary(self):
        if self._epochs and self._epoch < self._epochs:
            head = f"stopped early at epoch {self._epoch} of {self._epochs}"
        else:
            head = f"ran all {self._epoch} epochs"
        if self._best is not None:
            head += f"; best {self.monitor} {format_number(self._best)} at epoch {self._best_epoch}"
        return f"{head}; {_clock(time.monotonic() - self._started)} spent"

    def _rewrite(self, line):
        # A line longer than the terminal wraps, and `\r` would then only
        # go back to the start of its last row: cut it to fit. Spaces wipe
        # what is left of a longer previous line.
        line = line[:_columns(self._out) - 1]
        self._out.write("\r" + line.ljust(self._width))
        self._out.flush()
        self._width = len(line)

    def _print(self, line):
        self._out.write(line + "\n")
        self._out.flush()
        self._last_line, self._last_time = self._epoch, time.monotonic()


def _columns(stream):
    """The width of the terminal `stream` writes to (80 when it cannot tell)."""
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, OSError, ValueError):
        return shutil.get_terminal_size().columns


def _clock(seconds):
    """`0:07`, `12:03` or `1:02:03`: a duration as a clock shows it.

    Example:

    >>> _clock(7.4), _clock(723), _clock(3723)
    ('0:07', '12:03', '1:02:03')
    """
    minutes, seconds = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"
