"""The small layers the templates add to Keras, all serializable.

`ReplaceNaN` fills missing numeric values inside the model, so a saved model
predicts from raw rows with gaps. `ColumnNames` and `ModelInfo` carry names
inside the `.keras` file: which raw columns feed the numeric input, and the
task, class names and kind of output of the model.

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
class ModelInfo(keras.layers.Layer):
    """Passes its input through unchanged and records what the model is for.

    The kit puts it in every template model (after the preprocessing), so a
    saved model says its task, its class names and whether its output is
    logits; `templates.predict` reads them instead of guessing from the
    last layer, which a user may have edited.

    Args:
        task: str, a key of `templates.tasks.TASKS`.
        class_names: list of str, one name per class (binary:
            `[negative, positive]`); empty for regression.
        from_logits: bool, whether the model outputs logits, to which
            predictions apply the task's output activation. Defaults to
            `False`.

    Example:

    >>> info = ModelInfo("binary", ["no", "yes"])
    >>> info.get_config()["class_names"], info.from_logits
    (['no', 'yes'], False)
    """

    def __init__(self, task, class_names=(), from_logits=False, **kwargs):
        super().__init__(**kwargs)
        self.task = str(task)
        self.class_names = [str(name) for name in class_names]
        self.from_logits = bool(from_logits)

    def call(self, inputs):
        return inputs

    def get_config(self):
        return {**super().get_config(), "task": self.task, "class_names": self.class_names,
                "from_logits": self.from_logits}
