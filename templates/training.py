"""Training settings and the fit loop: gradient-descent mode, early stopping, seeds.

Example:

>>> batch_size_for("batch", batch_size=32, num_train=500)
500
>>> batch_size_for("stochastic", batch_size=32, num_train=500)
1
"""

import dataclasses

import keras
import numpy as np
import tensorflow as tf

from templates.errors import TemplateError

# The explainer's three flavours of gradient descent, as the batch size each
# one uses: the whole training set, one sample, or a mini-batch.
GD_MODES = {
    "batch": lambda batch_size, num_train: num_train,
    "stochastic": lambda batch_size, num_train: 1,
    "minibatch": lambda batch_size, num_train: batch_size,
}


@dataclasses.dataclass
class TrainingConfig:
    """Every setting of a template run, with the defaults the templates use.

    Attributes:
        hidden: tuple of int, units per hidden layer.
        activation: str, hidden activation (`sigmoid|tanh|relu|leaky_relu`).
        dropout: float, dropout rate after each hidden layer.
        l2: float, L2 penalty on hidden kernels.
        optimizer: str, `sgd|momentum|rmsprop|adam`.
        learning_rate: float.
        gd: str, gradient-descent mode, `batch|stochastic|minibatch`.
        batch_size: int, rows per step in `minibatch` mode.
        epochs: int, upper bound on epochs (early stopping ends sooner).
        patience: int, epochs without validation-loss improvement before
            stopping; the best epoch's weights are restored.
        validation_fraction: float, share of the training rows for validation.
        test_fraction: float, share of all rows for the test split when no
            separate test set is given.
        positive_class: optional label of the positive class (binary only).
        seed: int, seeds the split, the weights and the shuffling.

    Example:

    >>> TrainingConfig(hidden=(32,), epochs=5).optimizer
    'adam'
    """

    hidden: tuple = (64, 64)
    activation: str = "relu"
    dropout: float = 0.0
    l2: float = 0.1
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    gd: str = "minibatch"
    batch_size: int = 32
    epochs: int = 300
    patience: int = 20
    validation_fraction: float = 0.2
    test_fraction: float = 0.2
    positive_class: "str | None" = None
    seed: int = 42

    def check(self):
        """Validates the settings that do not depend on the data."""
        if self.gd not in GD_MODES:
            raise TemplateError(
                f"Unknown gradient-descent mode '{self.gd}'; expected one of: "
                f"{', '.join(GD_MODES)}."
            )
        for name in ("epochs", "patience"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise TemplateError(f"Received {name}={value}; expected an integer >= 1.")
        if not isinstance(self.batch_size, (int, np.integer)) or self.batch_size < 1:
            raise TemplateError(
                f"Received batch_size={self.batch_size}; expected an integer >= 1."
            )
        for name in ("validation_fraction", "test_fraction"):
            value = getattr(self, name)
            if not 0 < value < 1 and not (name == "test_fraction" and value == 0):
                raise TemplateError(f"Received {name}={value}; expected 0 < {name} < 1.")


def batch_size_for(gd, batch_size, num_train):
    """Returns the batch size of gradient-descent mode `gd`.

    Args:
        gd: str, `batch`, `stochastic` or `minibatch`.
        batch_size: int, the mini-batch size.
        num_train: int, rows in the training split.

    Raises:
        TemplateError: if the mini-batch is larger than the training split.
    """
    if gd not in GD_MODES:
        raise TemplateError(
            f"Unknown gradient-descent mode '{gd}'; expected one of: {', '.join(GD_MODES)}."
        )
    if batch_size < 1 or (gd == "minibatch" and batch_size > num_train):
        raise TemplateError(
            f"Received batch_size={batch_size}; expected 1 <= batch_size <= "
            f"{num_train}, the number of training rows."
        )
    return GD_MODES[gd](batch_size, num_train)


def seed_everything(seed):
    """Makes a CPU run repeatable: same seed, same weights, splits and metrics."""
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def fit(model, train_data, validation_data, *, epochs, patience, callbacks=(), verbose=2):
    """Trains with early stopping on validation loss, restoring the best weights.

    Args:
        model: a compiled `keras.Model`.
        train_data: `tf.data.Dataset` of `(inputs, targets)` batches.
        validation_data: `tf.data.Dataset` for validation.
        epochs: int, upper bound on epochs.
        patience: int, epochs without improvement before stopping.
        callbacks: extra Keras callbacks.
        verbose: int, Keras' verbosity.

    Returns:
        `(history, best_epoch)`: the `History.history` dict and the 1-based
        epoch whose weights the model holds.
    """
    early_stopping = keras.callbacks.EarlyStopping(
        monitor="val_loss", patience=patience, restore_best_weights=True
    )
    history = model.fit(
        train_data,
        validation_data=validation_data,
        epochs=epochs,
        callbacks=[early_stopping, *callbacks],
        verbose=verbose,
        shuffle=False,  # the dataset reshuffles itself every epoch

    ).history
    best_epoch = int(np.argmin(history["val_loss"])) + 1
    return history, best_epoch
