"""Every use of Keras' private API in `tuning`, each behind one small function.

`tuning.fused_fit` runs a `fit` the way Keras' JAX trainer does, and needs
two of its private steps: building a model's metrics and optimizer for a
batch before the first step, and an `EarlyStopping`'s comparison. It also
reads a model's nested layers, compiled loss weights and compiled metrics,
to pass the float settings a template computes from its rows as arguments
of the compiled program. They may change in any Keras release, so nothing
else names them, and `tests/test_tuning_fused_fit.py` checks that they
exist and work.

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
    "Layer._flatten_layers": (keras.layers.Layer, "_flatten_layers"),
}


def build_for_fit(model, data_batch):
    """Builds `model`'s layers, compiled metrics, loss and optimizer as `fit` does first."""
    model._symbolic_build(data_batch=data_batch)  # private: see the module's doc


def set_monitor_op(callback):
    """Sets `callback.monitor_op` (and signs its `min_delta`) as its first epoch would."""
    if callback.monitor_op is None:
        callback._set_monitor_op()  # private: see the module's doc


def nested_layers(model):
    """Every layer of `model`, those inside nested models included."""
    return list(model._flatten_layers(include_self=False))  # private: see the module's doc


def compiled_loss_weights(model):
    """The `loss_weights` of each loss `compile` was given (`None` where none), once built."""
    compile_loss = getattr(model, "_compile_loss", None)  # private: see the module's doc
    return [entry.loss_weights for entry in getattr(compile_loss, "_flat_losses", None) or ()]


def set_compiled_loss_weight(model, position, value):
    """Makes the compiled loss at `position` weigh `value` (e.g. a traced value)."""
    compile_loss = model._compile_loss  # private: see the module's doc
    losses = list(compile_loss._flat_losses)
    losses[position] = losses[position]._replace(loss_weights=value)
    compile_loss._flat_losses = type(compile_loss._flat_losses)(losses)


def compiled_metrics(model):
    """The metrics `compile` was given, flattened, once built."""
    compile_metrics = getattr(model, "_compile_metrics", None)  # private: see the module's doc
    return list(getattr(compile_metrics, "metrics", None) or ())
