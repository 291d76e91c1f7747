"""A callback that fails a KerasTuner trial as soon as its loss is not finite.

Example:

>>> import numpy as np, keras
>>> model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
>>> model.compile(keras.optimizers.SGD(1e30), "mse")
>>> try:
...     model.fit(np.ones((8, 1)), np.ones(8), epochs=5, callbacks=[FailOnNaN()], verbose=0)
... except FailedTrialError as error:
...     print(error)
loss became ...
"""

import math

import keras
from keras_tuner.errors import FailedTrialError


class FailOnNaN(keras.callbacks.Callback):
    """Raises `FailedTrialError` when the loss turns NaN or infinite.

    KerasTuner records a trial that raises `FailedTrialError` as failed,
    with this error's message as its reason, and goes on with the next trial
    without retrying it. Training loss is checked after every executed batch
    (every `steps_per_execution` steps) and validation loss after every epoch.
    The callback keeps no state, so it can be re-used and deep-copied.
    """

    def on_train_batch_end(self, batch, logs=None):
        self._check("loss", logs, f"at step {batch + 1}")

    def on_epoch_end(self, epoch, logs=None):
        self._check("loss", logs, f"in epoch {epoch + 1}")
        self._check("val_loss", logs, f"in epoch {epoch + 1}")

    def _check(self, name, logs, when):
        value = (logs or {}).get(name)
        if value is not None and not math.isfinite(float(value)):
            raise FailedTrialError(
                f"{name} became {float(value)} {when}; the configuration diverged "
                "(try a smaller learning rate)."
            )
