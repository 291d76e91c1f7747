"""The small layers the templates add to Keras, all serializable.

`ReplaceNaN` fills missing numeric values inside the model, so a saved model
predicts from raw rows with gaps, after `Standardize` has scaled the
numbers with the training rows' statistics. `TextOneHot` one-hot encodes a text
column's vocabulary codes and keeps its vocabulary. `ColumnNames` and
`ModelInfo` carry names inside the `.keras` file: which raw columns feed the
numeric input, and the task, class names and kind of output of the model.
Every layer is written in `keras.ops`: a model saved on one backend loads
and predicts on another.

Example:

>>> import numpy as np
>>> ReplaceNaN()(np.array([[1.0, np.nan]], dtype="float32")).numpy().tolist()
[[1.0, 0.0]]
"""

import keras
import numpy as np
from keras import ops


@keras.saving.register_keras_serializable(package="keras_templates")
class ReplaceNaN(keras.layers.Layer):
    """Replaces NaN entries with a constant.

    Placed after `Standardize`, a fill value of `0.0` is mean imputation:
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
class Standardize(keras.layers.Layer):
    """Subtracts each column's mean and divides by its standard deviation.

    As `keras.layers.Normalization(mean=..., variance=...)` computes it, but
    the statistics are (non-trainable) weights, not constants of the
    compiled step. On JAX a constant is part of the compiled program: each
    fold of a cross-validated trial, with statistics of its own rows, would
    compile the training step again (about 1 s each on two cores); weights
    leave one program for every fold and every table of the same shape.

    Args:
        mean: list of float, one per column.
        variance: list of float, one per column.

    Example:

    >>> layer = Standardize(mean=[1.0, 10.0], variance=[4.0, 1.0])
    >>> layer(np.array([[3.0, 10.0]], dtype="float32")).numpy().tolist()
    [[1.0, 0.0]]
    """

    def __init__(self, mean, variance, **kwargs):
        super().__init__(**kwargs)
        self.mean_values = [float(value) for value in np.ravel(mean)]
        self.variance_values = [float(value) for value in np.ravel(variance)]

    def build(self, input_shape):
        shape = (len(self.mean_values),)
        # "zeros" and "ones", not `Constant`: on JAX, `Constant` multiplies
        # on the device, one more compiled program in every new process.
        self.mean = self.add_weight(name="mean", shape=shape, trainable=False,
                                    initializer="zeros")
        self.variance = self.add_weight(name="variance", shape=shape, trainable=False,
                                        initializer="ones")
        self.mean.assign(np.asarray(self.mean_values, dtype=self.mean.dtype))
        self.variance.assign(np.asarray(self.variance_values, dtype=self.variance.dtype))

    def call(self, inputs):
        scale = ops.maximum(ops.sqrt(self.variance), keras.backend.epsilon())
        return (inputs - ops.cast(self.mean, inputs.dtype)) / ops.cast(scale, inputs.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        # Once built, the weights are the truth: a model whose statistics were
        # assigned (`tuning.fold_models.copy_state`) saves the ones it uses.
        if not self.built:
            return {**super().get_config(), "mean": self.mean_values,
                    "variance": self.variance_values}
        return {**super().get_config(),
                "mean": ops.convert_to_numpy(self.mean).astype(float).tolist(),
                "variance": ops.convert_to_numpy(self.variance).astype(float).tolist()}


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


@keras.saving.register_keras_serializable(package="keras_templates")
class TextOneHot(keras.layers.Layer):
    """One-hot encodes a text column given as vocabulary codes, and keeps the vocabulary.

    Strings cannot enter a model compiled by JAX, so a text column reaches
    the model as integer codes (`encode`: 1 + the value's position in
    `vocabulary`, 0 for a missing or unseen value) and this layer, written
    in `keras.ops`, turns them into one-hot rows on every backend. The
    vocabulary travels inside the saved model, so `templates.predict`
    encodes new raw rows the way the training rows were encoded, whichever
    backend saved the model and whichever loads it.

    Args:
        vocabulary: list of str, the column's known values in the order of
            their codes (from the training rows).
        column: str, the raw column name. Defaults to the layer's name.

    Example:

    >>> layer = TextOneHot(["blue", "red"], column="colour")
    >>> codes = layer.encode(np.array(["red", "", "green"], dtype=object))
    >>> codes.ravel().tolist(), layer(codes).numpy().tolist()
    ([2, 0, 0], [[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    """

    def __init__(self, vocabulary, column=None, **kwargs):
        super().__init__(**kwargs)
        self.vocabulary = [str(value) for value in vocabulary]
        self.column = str(column) if column is not None else self.name

    @property
    def depth(self):
        """int, the width of the one-hot rows: the vocabulary plus the slot for other values."""
        return len(self.vocabulary) + 1

    def encode(self, values):
        """Returns the `(rows, 1)` int32 codes of an array of strings (see `text_codes`)."""
        return text_codes(values, self.vocabulary)

    def call(self, codes):
        return ops.one_hot(ops.squeeze(ops.cast(codes, "int32"), axis=-1), self.depth)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.depth)

    def get_config(self):
        return {**super().get_config(), "vocabulary": self.vocabulary, "column": self.column}


def text_codes(values, vocabulary):
    """Codes of text values for `TextOneHot`: 1 + position in `vocabulary`, 0 if absent.

    Args:
        values: array of str, any shape.
        vocabulary: list of str.

    Returns:
        `(rows, 1)` int32 array.

    Example:

    >>> text_codes(np.array([["b"], ["a"], ["z"]], dtype=object), ["a", "b"]).ravel().tolist()
    [2, 1, 0]
    """
    codes = {value: code for code, value in enumerate(vocabulary, start=1)}
    flat = np.asarray(values, dtype=object).ravel()
    return np.fromiter((codes.get(value, 0) for value in flat), dtype="int32",
                       count=len(flat)).reshape(-1, 1)
