"""TensorFlow backend functions of the callbacks (see `callbacks._backend`).

TensorFlow is imported where it is used, so that importing this module
(e.g. collecting doctests under another backend) does not need it.
"""

import contextlib
import itertools

import numpy as np

from callbacks import _backend


def make_train_function(model, step):
    """Builds a train function from `step` exactly as Keras builds its own."""
    return _backend.built_by_keras(model, step)


class StepSums:
    """Sums tensors over the steps of one train function call, in variables.

    Keras runs the steps of a call in a `tf.while_loop`: a sum crosses steps
    in a variable (created outside the traced function, at the first
    trace), which the train function sets to zero before every call.
    """

    def __init__(self, keys):
        self._totals = {key: None for key in keys}

    def add(self, key, value):
        import tensorflow as tf

        total = self._totals[key]
        if total is None:
            with tf.init_scope():
                total = tf.Variable(
                    tf.zeros(value.shape, value.dtype), trainable=False
                )
            self._totals[key] = total
        with tf.control_dependencies(
            [total.assign_add(value, read_value=False)]
        ):
            return tf.identity(total.read_value())

    def train_function(self, model, step):
        built = make_train_function(model, step)
        totals = self._totals

        def function(*args):
            for total in totals.values():
                if total is not None:
                    total.assign(tf_zeros_like(total))
            return built(*args)

        return function


def tf_zeros_like(variable):
    import tensorflow as tf

    return tf.zeros(variable.shape, variable.dtype)


def around_train_step(model, train_step, around):
    del model

    def step(data):
        return around(data, lambda: train_step(data))

    return step


def logs_of(result):
    """The logs dict of what a train function call returned."""
    return result


def adopt(model, result):
    """Nothing to do: the weights are in the model's variables."""
    del model, result


def is_ready(value):
    """Whether reading `value` would not wait: always (results come ready)."""
    del value
    return True


def peek_batch(args):
    import tensorflow as tf

    (iterator,) = args
    if isinstance(iterator, (tf.data.Iterator, tf.distribute.DistributedIterator)):
        batch = iterator.get_next()
    else:
        iterator = iter(iterator)
        batch = next(iterator)
    # A Python iterator takes Keras's per-batch path for this one call.
    return batch, (itertools.chain([batch], iterator),)


def release(model, args):
    del model, args


def sync(model):
    del model


def loss_and_gradients(model, variables):
    import tensorflow as tf

    metric_variables = list(model.metrics_variables)

    # No AutoGraph: plain Python control flow, traced once.
    @tf.function(autograph=False)
    def compute(x, y):
        # compute_loss updates the compiled loss trackers: put them back so
        # that the measurement leaves the reported metrics untouched.
        saved = [tf.identity(v.value) for v in metric_variables]
        with tf.GradientTape() as tape:
            y_pred = model(x, training=False)
            loss = model.compute_loss(x=x, y=y, y_pred=y_pred, training=False)
        gradients = tape.gradient(loss, [v.value for v in variables])
        for variable, value in zip(metric_variables, saved):
            variable.assign(value)
        return loss, gradients

    return compute


def inference():
    return contextlib.nullcontext()


def to_numpy(tensor):
    return np.asarray(tensor)


def compiled(model, function):
    """`function(x)` as one `tf.function`, traced at its first call.

    Run eagerly, each operation of a forward pass is dispatched on its own
    (a few milliseconds an epoch for the probe pass of a small MLP); traced,
    it is one call. The trace reads the model's variables, not copies: every
    call computes with the current weights. It is traced again only if the
    shapes of `x` change.
    """
    import tensorflow as tf

    del model
    return tf.function(function, reduce_retracing=True)
