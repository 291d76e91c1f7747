"""The two small layers the templates add to Keras, both serializable.

`ReplaceNaN` fills missing numeric values inside the model, so a saved model
predicts from raw rows with gaps. `LabeledDense` is a `Dense` output layer that
also carries the class names, so the labels travel with the `.keras` file.

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
class LabeledDense(keras.layers.Dense):
    """A `Dense` layer that remembers the names of the classes it predicts.

    Args:
        units: int, output units.
        class_names: list of str, one name per class (for a one-unit sigmoid
            output: `[negative, positive]`); empty for regression.
        **kwargs: the arguments of `keras.layers.Dense`.

    Example:

    >>> head = LabeledDense(3, activation="softmax", class_names=["a", "b", "c"])
    >>> head.get_config()["class_names"]
    ['a', 'b', 'c']
    """

    def __init__(self, units, class_names=(), **kwargs):
        super().__init__(units, **kwargs)
        self.class_names = [str(name) for name in class_names]

    def get_config(self):
        return {**super().get_config(), "class_names": self.class_names}
