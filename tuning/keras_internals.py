"""Every use of Keras' private API in `tuning`, each behind one small function.

`tuning.fused_fit` runs a `fit` the way Keras' JAX trainer does, and needs
two of its private steps: building a model's metrics and optimizer for a
batch before the first step, and an `EarlyStopping`'s comparison. They may
change in any Keras release, so nothing else names them, and
`tests/test_tuning_fused_fit.py` checks that they exist.

Example:

>>> import keras
>>> stopping = keras.callbacks.EarlyStopping(monitor="val_loss")
>>> set_monitor_op(stopping)
>>> stopping.monitor_op is keras.ops.less
True
"""

import keras

# Each private method used here: its class and name, which the tests check.
PRIVATE_METHODS = {
    "Trainer._symbolic_build": (keras.Model, "_symbolic_build"),
    "MonitorCallback._set_monitor_op": (keras.callbacks.EarlyStopping, "_set_monitor_op"),
}


def build_for_fit(model, data_batch):
    """Builds `model`'s layers, compiled metrics, loss and optimizer as `fit` does first."""
    model._symbolic_build(data_batch=data_batch)  # private: see the module's doc


def set_monitor_op(callback):
    """Sets `callback.monitor_op` (and signs its `min_delta`) as its first epoch would."""
    if callback.monitor_op is None:
        callback._set_monitor_op()  # private: see the module's doc
