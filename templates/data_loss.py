"""`DataLoss`: the loss of the data alone, without the regularization penalty.

Keras adds every layer's penalty (the templates' L2 on hidden kernels) to
`loss` and `val_loss`. Two models with different L2 strengths then differ in
`val_loss` by their penalties, not only by how well they fit the validation
rows: with the templates' default `l2=0.1` on breast_cancer, the penalty is
eleven times the cross-entropy after 30 epochs, and about equal to it at the
best epoch. `DataLoss` reports the compiled loss without it, so models can be
compared by their fit; tuning ranks trials by its validation value.

Example:

>>> import numpy as np
>>> metric = DataLoss("mean_squared_error", weight=0.5)
>>> _ = metric.update_state(np.array([1.0, 3.0]), np.array([[0.0], [1.0]]))
>>> float(metric.result())  # (1 + 4) / 2 * 0.5
1.25
"""

import keras

NAME = "data_loss"


@keras.saving.register_keras_serializable(package="keras_templates")
class DataLoss(keras.metrics.Mean):
    """Mean of a Keras loss over the rows seen, times the compiled loss weight.

    Args:
        loss: the loss given to `compile`: a `keras.losses.Loss` (e.g.
            `keras.losses.BinaryCrossentropy(from_logits=True)`), the
            snake-case name of one (e.g. `"binary_crossentropy"`), or a
            function returning one value per row.
        weight: float, the `loss_weights` given to `compile`. Defaults to `1.0`.
        name: str, the metric's name (`val_` is prefixed on validation).
            Defaults to `"data_loss"`.
        dtype: optional dtype of the result.

    Example:

    >>> import numpy as np
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(
    ...     1, kernel_regularizer=keras.regularizers.L2(10.0))])
    >>> model.compile("sgd", "mean_squared_error", metrics=[DataLoss("mean_squared_error")])
    >>> logs = model.evaluate(np.ones((4, 2)), np.ones(4), return_dict=True, verbose=0)
    >>> logs["loss"] > logs["data_loss"]  # the loss includes the L2 penalty
    True
    """

    def __init__(self, loss, weight=1.0, name=NAME, dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.loss = loss
        self.weight = float(weight)
        self._per_row = _per_row_loss(loss)
        self._direction = "down"

    def update_state(self, y_true, y_pred, sample_weight=None):
        return super().update_state(self._per_row(y_true, y_pred) * self.weight,
                                    sample_weight=sample_weight)

    def get_config(self):
        loss = self.loss if isinstance(self.loss, str) else keras.losses.serialize(self.loss)
        return {"loss": loss, "weight": self.weight, "name": self.name, "dtype": self.dtype}

    @classmethod
    def from_config(cls, config):
        loss = config["loss"]
        if isinstance(loss, dict):
            loss = keras.losses.deserialize(loss)
        return cls(**{**config, "loss": loss})


def _per_row_loss(loss):
    """`loss` as a function giving one value per row."""
    if isinstance(loss, keras.losses.Loss):
        return loss.__class__.from_config({**loss.get_config(), "reduction": None})
    if callable(loss) and not isinstance(loss, str):
        return loss
    name = loss
    try:
        if not isinstance(name, str):
            raise ValueError(name)
        class_name = "".join(part.title() for part in name.split("_"))
        return keras.losses.get({"class_name": class_name, "config": {"reduction": None}})
    except (AttributeError, ValueError):
        raise ValueError(
            f"Received loss={name!r}; expected a Keras loss, or the snake-case name of a Keras loss class, "
            "e.g. 'mean_squared_error', 'binary_crossentropy' or 'sparse_categorical_crossentropy'."
        ) from None
