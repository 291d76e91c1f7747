"""Training settings: gradient-descent mode, early stopping, seeds.

Example:

>>> batch_size_for("batch", batch_size=32, num_train=500)
500
>>> batch_size_for("stochastic", batch_size=32, num_train=500)
1
"""

import dataclasses
import random

import keras
import numpy as np

from templates.errors import TemplateError

# The explainer's three flavours of gradient descent, as the batch size each
# one uses: the whole training set, one sample, or a mini-batch.
GD_MODES = {
    "batch": lambda batch_size, num_train: num_train,
    "stochastic": lambda batch_size, num_train: 1,
    "minibatch": lambda batch_size, num_train: batch_size,
}


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    """The settings of a template run that are not the model's hyperparameters.

    The model's own settings (layers, activation, L2, optimizer, learning
    rate, batch size) are hyperparameters, declared with their defaults in
    the template's `build_model` and `fit_model`. The fields below left at
    `None` keep those defaults; a value fixes that hyperparameter for the
    run, as the matching command-line option does.

    Attributes:
        epochs: int, upper bound on epochs (early stopping ends sooner).
        patience: int, epochs without improvement of `monitor` before
            stopping; the best epoch's weights are restored.
        monitor: str, the logged quantity early stopping watches.
        validation_fraction: float, share of the training rows for validation.
        test_fraction: float, share of all rows for the test split when no
            separate test set is given.
        positive_class: optional label of the positive class (binary only).
        seed: int, seeds the split, the weights and the shuffling.
        gd: str, gradient-descent mode, `batch|stochastic|minibatch`:
            `batch` sets the batch size to the training rows, `stochastic`
            to one row.
        hidden: optional tuple of int, units per hidden layer, all equal
            (the `depth` and `width` hyperparameters).
        activation, dropout, l2, optimizer, learning_rate, batch_size:
            optional values of the hyperparameters of the same names.

    Example:

    >>> TrainingConfig(epochs=5).replace(seed=1).epochs
    5
    """

    epochs: int = 300
    patience: int = 20
    monitor: str = "val_loss"
    validation_fraction: float = 0.2
    test_fraction: float = 0.2
    positive_class: "str | None" = None
    seed: int = 42
    gd: str = "minibatch"
    hidden: "tuple | None" = None
    activation: "str | None" = None
    dropout: "float | None" = None
    l2: "float | None" = None
    optimizer: "str | None" = None
    learning_rate: "float | None" = None
    batch_size: "int | None" = None

    def replace(self, **changes):
        """Returns a copy with `changes` applied."""
        return dataclasses.replace(self, **changes)

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
        if self.batch_size is not None and (
                not isinstance(self.batch_size, (int, np.integer)) or self.batch_size < 1):
            raise TemplateError(
                f"Received batch_size={self.batch_size}; expected an integer >= 1."
            )
        for name in ("validation_fraction", "test_fraction"):
            value = getattr(self, name)
            if not 0 < value < 1 and not (name == "test_fraction" and value == 0):
                raise TemplateError(f"Received {name}={value}; expected 0 < {name} < 1.")
        if self.hidden is not None:
            hidden = list(self.hidden)
            if any(int(units) != units or units < 1 for units in hidden):
                raise TemplateError(
                    f"Received hidden={hidden}; expected positive integers, e.g. 64,64."
                )
            if len(set(hidden)) > 1:
                raise TemplateError(
                    f"Received hidden={hidden}; expected layers of one width, e.g. 64,64 (the "
                    "template's hidden layers share the 'width' hyperparameter: edit its "
                    "build_model for layers of different widths)."
                )

    def hyperparameter_values(self):
        """The hyperparameter values these settings fix, by name.

        Example:

        >>> TrainingConfig(hidden=(8, 8), l2=0.0).hyperparameter_values()
        {'depth': 2, 'width': 8, 'l2': 0.0}
        """
        values = {}
        if self.hidden is not None:
            values["depth"] = len(self.hidden)
            if self.hidden:
                values["width"] = int(self.hidden[0])
        for name in ("activation", "dropout", "l2", "optimizer", "learning_rate", "batch_size"):
            if getattr(self, name) is not None:
                values[name] = getattr(self, name)
        return values


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
    """Makes a CPU run repeatable: same seed, same weights, splits and metrics.

    `keras.utils.set_random_seed` does it on TensorFlow. On the other
    backends the same is done without it: it would import TensorFlow to
    seed it (about 3 s, and TensorFlow's start-up lines, in every process
    of a search that never uses TensorFlow).
    """
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        keras.utils.set_random_seed(seed)
        tf.config.experimental.enable_op_determinism()
        return
    from keras.src.backend.common import global_state
    from keras.src.random import seed_generator
    from keras.src.utils import rng_utils

    global_state.set_global_attribute(rng_utils.GLOBAL_RANDOM_SEED, seed)
    global_state.set_global_attribute(seed_generator.GLOBAL_SEED_GENERATOR, None)
    random.seed(seed)
    np.random.seed(seed)
