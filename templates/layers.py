"""The small layers the templates add to Keras, all serializable.

`ReplaceNaN` fills missing numeric values inside the model, so a saved model
predicts from raw rows with gaps. `ColumnNames` and `LabeledDense` carry names
inside the `.keras` file: which raw columns feed the numeric input, and the
class names of the output.

Example:

>>> import numpy as np
>>> ReplaceNaN()(np.array([[1.0, np.nan]], dtype="float32")).numpy().tolist()
[[1.0, 0.0]]
"""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_templates")
class ReplaceNaN(keras.layers.Layer):
    """Replaces NaN entries with a constant.

    Placed after `Normalization`, a fill value of `0.0` is mean imputation:
    a missing value becomes the training mean of its column.

    Args:
        value: float, what NaN becomes. Defaults to `0.0`.

    Example:

    >>> import numpy as np
    >>> ReplaceNaN(value=-1.0)(np.array([np.nan], dtype="float32")).numpy().tolist()
    [-1.0]
    """

    def __init__(self, value=0.0, **kwargs):
        super().__init__(**kwargs)
        self.value = float(value)

    def call(self, inputs):
        return ops.where(ops.isnan(inputs), ops.cast(self.value, inputs.dtype), inputs)

    def get_config(self):
        return {**super().get_config(), "value": self.value}


@keras.saving.register_keras_serializable(package="keras_templates")
class ColumnNames(keras.layers.Layer):
    """Passes its input through unchanged and records the names of its columns.

    Args:
        names: list of str, one name per column of the input, in order.

    Example:

    >>> import numpy as np
    >>> layer = ColumnNames(["age", "income"])
    >>> tuple(layer(np.ones((1, 2), dtype="float32")).shape), layer.names
    ((1, 2), ['age', 'income'])
    """

    def __init__(self, names, **kwargs):
        super().__init__(**kwargs)
        self.names = [str(name) for name in names]

    def call(self, inputs):
        return inputs

    def get_config(self):
        return {**super().get_config(), "names": self.names}


@keras.saving.register_keras_serializable(package="keras_templates")
class LabeledDense(keras.layers.Dense):
    """A `Dense` output layer that knows its class names and target units.

    The output is `offset + scale * activation(x @ kernel + bias)`. For
    regression, `offset` and `scale` are the training target's mean and
    standard deviation: the weights learn a unit-scale target, the model
    predicts in the target's own units. With the defaults (0 and 1) it is a
    plain `Dense` layer.

    Args:
        units: int, output units.
        class_names: list of str, one name per class (for a one-unit sigmoid
            output: `[negative, positive]`); empty for regression.
        offset: float, added to the output. Defaults to `0.0`.
        scale: float, multiplies the output. Defaults to `1.0`.
        **kwargs: the arguments of `keras.layers.Dense`.

    Example:

    >>> head = LabeledDense(3, activation="softmax", class_names=["a", "b", "c"])
    >>> head.get_config()["class_names"]
    ['a', 'b', 'c']
    """

    def __init__(self, units, class_names=(), offset=0.0, scale=1.0, **kwargs):
        super().__init__(units, **kwargs)
        self.class_names = [str(name) for name in class_names]
        self.offset = float(offset)
        self.scale = float(scale)

    def call(self, inputs, training=None):
        outputs = super().call(inputs, training=training)
        if (self.offset, self.scale) == (0.0, 1.0):
            # Return the activation's own output: tools that look for the
            # model's output activation (monitors, checks) then find it.
            return outputs
        return self.offset + self.scale * outputs

    def get_config(self):
        return {**super().get_config(), "class_names": self.class_names,
                "offset": self.offset, "scale": self.scale}
