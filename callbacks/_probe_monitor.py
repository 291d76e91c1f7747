"""Base class of the monitors: schedule, bookkeeping and verdicts.

`GradientMonitor` and `ActivationMonitor` share their schedule, their
bookkeeping and what they do with a verdict; this module holds that part so
that each public callback only says what it measures and how it judges it.
"""

import copy
import math
import warnings

import keras

from callbacks import _probe, _train_step_capture

ACTIONS = ("warn", "stop", "raise")


class ProbeMonitor(keras.callbacks.Callback):
    """Measures the model during `fit()`, records the numbers, acts on verdicts.

    Two ways to measure:

    - on a probe (`probe` set, or else the inputs of the first training
      batch, seen before its step runs): `_build_measure(probe)` returns a function of no
      arguments returning the log entries as a dict of floats. Schedule: one
      measurement when the probe is known (when training begins for a given
      probe, the reference later measurements are compared with), one every
      `every_n_batches` training batches when that is set, and one at the end
      of every epoch.
    - on real training steps (`_measures_steps()` true): the train function
      calls of the schedule below are measured (every step of the call);
      the measurement comes back in that call's logs under `capture_key`
      and `_step_values(value)` turns it into log entries. Schedule: the
      first call of training, the last call of every epoch (the first call
      of each epoch when `fit()` does not know the epoch's length), and the
      call holding every `every_n_batches`-th step when that is set.

    The latest numbers are added to the batch `logs` of the batch they were
    taken at and to every epoch's `logs`, so `History`, `CSVLogger`,
    `TensorBoard` and the progress bar receive them. Callbacks listed after
    the monitor in `fit(callbacks=...)` see them; `History` and the progress
    bar always do.

    Subclasses also implement `_diagnose(values, logs)`: for every verdict
    kind, the flagged layer names and a message.

    Args:
        probe: the validated probe (a nest of NumPy arrays), or None.
        every_n_batches: int or None, see the schedule above.
        actions: dict mapping each verdict kind (e.g. `"vanishing"`) to the
            name of the argument that sets its action and the action.
    """

    # Owned by one `fit()`: a copy starts without them (KerasTuner deep-copies
    # callbacks for every trial, and compiled functions cannot be copied).
    _TRANSIENT = ("_model", "_measure", "_hub", "_batch_probe")

    def __init__(self, probe, every_n_batches, actions):
        super().__init__()
        name = type(self).__name__
        if every_n_batches is not None and (
            isinstance(every_n_batches, bool)
            or not isinstance(every_n_batches, int)
            or every_n_batches < 1
        ):
            raise ValueError(
                f"{name} expects `every_n_batches` to be None or an integer "
                f">= 1. Received: every_n_batches={every_n_batches!r}"
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
        self._hub = None
        self._batch_probe = None
        if probe is not None:
            # Without a hub (a probe given): Keras's per-batch hook. With one,
            # the hub calls `after_call` on the calls the schedule asks for,
            # and `on_train_batch_begin` and `on_train_batch_end` stay
            # Keras's no-ops: no Python of ours on the other calls, and Keras
            # may hand the batch-end callbacks to its worker thread (JAX,
            # PyTorch) rather than wait for every call's results on the
            # training thread.
            self.on_train_batch_end = self._on_train_batch_end
        self._reset()

    @property
    def capture_key(self):
        """The private log key a measured train step returns this monitor's data in."""
        return f"_{type(self).__name__}_{id(self)}"

    def _measures_steps(self):
        return False

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
        self._measure = None
        self._batch_probe = None
        if self.probe is not None and not self._measures_steps():
            self._measure = self._build_measure(self.probe)
            self._check(logs)
            return
        self._hub = _train_step_capture.register(self, type(self).__name__)
        self._hub.schedule(self, measure=self._measures_steps())
        if self.probe is None and not self._measures_steps():
            self._hub.peek(self._receive_batch)

    def _receive_batch(self, batch):
        x, _, _ = keras.utils.unpack_x_y_sample_weight(batch)
        self._batch_probe = keras.tree.map_structure(keras.ops.convert_to_numpy, x)

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        self._epoch_first_step = self._step
        if self._hub is not None:
            self._hub.begin_epoch()

    def next_call(self, done, batch):
        """The train function call this monitor wants next, for the hub.

        Args:
            done: int, the steps done before the call in this `fit()`.
            batch: int, the index in the epoch of the call's first batch.

        Returns:
            The `done` of the first call from this one on that the schedule
            (see the class docstring) asks for, in this epoch: `done`
            itself when it asks for this call, `math.inf` when none. A call
            runs steps `done + 1` to `done + steps_per_execution`, as Keras
            counts them (the last call of an epoch counts them all).
        """
        if done == 0:
            return 0
        size = self._hub.steps_per_call
        wanted = math.inf
        every = self.every_n_batches
        if every:
            # The call holding the first multiple of `every` after `done`.
            multiple = (done // every + 1) * every
            wanted = done + (multiple - done - 1) // size * size
        if self._measures_steps():
            steps = self.params.get("steps") if self.params else None
            if steps is None:
                if batch == 0:
                    return done
            else:
                # The epoch's last call: its batches reach `steps`.
                calls = max(0, -(-(steps - size - batch) // size))
                wanted = min(wanted, done + calls * size)
        return wanted

    def after_call(self, logs):
        """Called by the hub with the logs of the calls `next_call` asked for.

        On the training thread, right after the call returns and before
        Keras hands the logs to the callbacks: what it adds to `logs`, they
        all see. The values are the backend's tensors, not yet floats:
        reading one waits for the call's results, which only a measurement
        does.
        """
        self._step = self._hub.step
        self._batch_end(logs)

    def _on_train_batch_end(self, batch, logs=None):
        # With `steps_per_execution=N` Keras calls this once per N batches,
        # with `batch` the index of the last one: count steps, not calls.
        self._step = self._epoch_first_step + batch + 1
        self._batch_end(logs)

    def _batch_end(self, logs):
        if self._measures_steps():
            value = None if logs is None else logs.pop(self.capture_key, None)
            if value is not None:
                self._record(self._step_values(value), logs)
            return
        if self._measure is None and self._batch_probe is not None:
            self._measure = self._build_measure(self._batch_probe)
            self._check(logs)
            return
        every = self.every_n_batches
        if (
            self._measure is not None
            and every
            and self._step // every > self._measured_step // every
        ):
            self._check(logs)

    def on_epoch_end(self, epoch, logs=None):
        if self._hub is not None:
            self._step = self._hub.step
        if logs is not None:
            logs.pop(self.capture_key, None)
        if self._measure is not None and self._measured_step != self._step:
            self._check(logs)
        if logs is not None:
            logs.update(self._latest)

    def on_train_end(self, logs=None):
        self._measure = None
        if self._hub is not None:
            _train_step_capture.unregister(self)
            self._hub = None

    def _check(self, logs):
        self._record(self._measure(), logs)

    def _record(self, values, logs):
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
        if logs is not None:
            logs.update(values)

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
            "probe": None
            if self.probe is None
            else _probe.probe_to_config(self.probe),
            "every_n_batches": self.every_n_batches,
        }

    @classmethod
    def from_config(cls, config):
        """Creates a callback from the output of `get_config()`."""
        config = dict(config)
        if config.get("probe") is not None:
            config["probe"] = _probe.probe_from_config(config["probe"])
        return cls(**config)
