"""Base class of the monitors that measure a model on a fixed probe batch.

`GradientMonitor` and `ActivationMonitor` share their schedule, their
bookkeeping and what they do with a verdict; this module holds that part so
that each public callback only says what it measures and how it judges it.
"""

import copy
import warnings

import keras

from callbacks import _probe

ACTIONS = ("warn", "stop", "raise")


class ProbeMonitor(keras.callbacks.Callback):
    """Measures the model on a probe batch during `fit()` and acts on verdicts.

    Schedule: one measurement when training begins (step 0, the reference
    that later measurements are compared with), one every `every_n_batches`
    training batches when that is set, and one at the end of every epoch.
    The latest numbers are added to the batch `logs` of the batch they were
    taken at and to every epoch's `logs`, so `History`, `CSVLogger`,
    `TensorBoard` and the progress bar receive them. Callbacks listed after
    the monitor in `fit(callbacks=...)` see them; `History` and the progress
    bar always do.

    Subclasses implement `_build_measure()` (called when training begins;
    returns a function of no arguments that returns the log entries as a
    dict of floats) and `_diagnose(values, logs)` (returns, for every verdict
    kind, the flagged layer names and a message).

    Args:
        probe: the validated probe (a nest of NumPy arrays).
        every_n_batches: int or None, see the schedule above.
        actions: dict mapping each verdict kind (e.g. `"vanishing"`) to the
            name of the argument that sets its action and the action.
    """

    # Owned by one `fit()`: a copy starts without them (KerasTuner deep-copies
    # callbacks for every trial, and a traced tf.function cannot be copied).
    _TRANSIENT = ("_model", "_measure")

    def __init__(self, probe, every_n_batches, actions):
        super().__init__()
        name = type(self).__name__
        if every_n_batches is not None and (
            isinstance(every_n_batches, bool)
            or not isinstance(every_n_batches, int)
            or every_n_batches < 1
        ):
            raise ValueError(
                f"{name} expects `every_n_batches` to be None (measure at the "
                "end of each epoch only) or an integer >= 1. Received: "
                f"every_n_batches={every_n_batches!r}"
            )
        for argument, action in actions.values():
            if action not in ACTIONS:
                raise ValueError(
                    f"{name} expects `{argument}` to be one of "
                    f"{', '.join(repr(a) for a in ACTIONS)}. Received: "
                    f"{argument}={action!r}"
                )
        self.probe = probe
        self.every_n_batches = every_n_batches
        self._actions = {kind: action for kind, (_, action) in actions.items()}
        self._measure = None
        self._reset()

    def _reset(self):
        self.history = {}
        self._flagged = {kind: [] for kind in self._actions}
        self._warned = {kind: [] for kind in self._actions}
        self._latest = {}
        self._step = 0
        self._epoch = 0
        self._epoch_first_step = 0
        self._measured_step = None

    def on_train_begin(self, logs=None):
        # Allow instances to be re-used across `model.fit()` calls.
        self._reset()
        self._measure = self._build_measure()
        self._check(logs)

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        self._epoch_first_step = self._step

    def on_train_batch_end(self, batch, logs=None):
        # With `steps_per_execution=N` Keras calls this once per N batches,
        # with `batch` the index of the last one: count steps, not calls.
        self._step = self._epoch_first_step + batch + 1
        every = self.every_n_batches
        if every and self._step // every > self._measured_step // every:
            self._check(logs)
            if logs is not None:
                logs.update(self._latest)

    def on_epoch_end(self, epoch, logs=None):
        if self._measured_step != self._step:
            self._check(logs)
        if logs is not None:
            logs.update(self._latest)

    def on_train_end(self, logs=None):
        self._measure = None

    def _check(self, logs):
        values = self._measure()
        self._measured_step = self._step
        self._latest = values
        record = {"step": self._step, "epoch": self._epoch, **values}
        for key, value in record.items():
            self.history.setdefault(key, []).append(value)
        for kind, (layers, message) in self._diagnose(values, logs or {}).items():
            self._flagged[kind] = layers
            if layers:
                self._act(kind, layers, message)
            self._warned[kind] = layers

    def _act(self, kind, layers, message):
        action = self._actions[kind]
        if action == "raise":
            raise RuntimeError(message)
        if action == "stop":
            self.model.stop_training = True
            warnings.warn(f"{message} Stopping training.", stacklevel=3)
        elif layers != self._warned[kind]:
            warnings.warn(message, stacklevel=3)

    def _where(self):
        return f"at step {self._step} (epoch {self._epoch + 1})"

    def __deepcopy__(self, memo):
        copied = type(self).__new__(type(self))
        memo[id(self)] = copied
        for key, value in self.__dict__.items():
            if key in self._TRANSIENT:
                copied.__dict__[key] = None
            else:
                copied.__dict__[key] = copy.deepcopy(value, memo)
        return copied

    def get_config(self):
        """Returns the constructor arguments as plain Python values.

        The probe arrays become nested lists tagged with their dtype, so the
        config survives JSON and `from_config()` rebuilds the same callback.
        """
        return {
            "probe": _probe.probe_to_config(self.probe),
            "every_n_batches": self.every_n_batches,
        }

    @classmethod
    def from_config(cls, config):
        """Creates a callback from the output of `get_config()`."""
        config = dict(config)
        config["probe"] = _probe.probe_from_config(config["probe"])
        return cls(**config)
