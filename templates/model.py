"""The network: hidden layers, the task's output head, optimizer, compile.

Example:

>>> import pandas as pd
>>> from templates.labels import encode_binary_labels
>>> frame = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0]})
>>> model = build_model("binary", frame, encode_binary_labels([0, 0, 1, 1]), hidden=(8,))
>>> model.layers[-1].activation.__name__, model.loss
('sigmoid', 'binary_crossentropy')
"""

import keras

from templates.data_loss import DataLoss
from templates.errors import TemplateError
from templates.layers import LabeledDense
from templates.preprocessing import build_preprocessing, raw_column_keys
from templates.tasks import get_task

# Glorot keeps the variance of sigmoid/tanh layers steady; He does it for the
# ReLU family, whose negative half is (nearly) zero.
ACTIVATION_INITIALIZERS = {
    "sigmoid": "glorot_uniform",
    "tanh": "glorot_uniform",
    "relu": "he_normal",
    "leaky_relu": "he_normal",
}

OPTIMIZERS = {
    "sgd": lambda learning_rate: keras.optimizers.SGD(learning_rate),
    "momentum": lambda learning_rate: keras.optimizers.SGD(learning_rate, momentum=0.9),
    "rmsprop": lambda learning_rate: keras.optimizers.RMSprop(learning_rate),
    "adam": lambda learning_rate: keras.optimizers.Adam(learning_rate),
}

# Runs this many training steps per call into the compiled graph instead of
# one: with small tabular models, Python overhead otherwise dominates.
STEPS_PER_EXECUTION = 32


def _choice(kind, value, table):
    if value not in table:
        raise TemplateError(f"Unknown {kind} '{value}'; expected one of: {', '.join(table)}.")
    return table[value]


def make_optimizer(name, learning_rate):
    """Returns the optimizer called `name` at `learning_rate`.

    Args:
        name: str, one of `sgd`, `momentum` (SGD with momentum 0.9),
            `rmsprop`, `adam`.
        learning_rate: float > 0, the step size in `w <- w - lr * grad`.

    Example:

    >>> make_optimizer("momentum", 0.01).momentum
    0.9
    """
    check_optimizer(name, learning_rate)
    return OPTIMIZERS[name](float(learning_rate))


def check_optimizer(name, learning_rate):
    """Validates an optimizer name and learning rate without building anything."""
    _choice("optimizer", name, OPTIMIZERS)
    if not learning_rate > 0:
        raise TemplateError(f"Received learning_rate={learning_rate}; expected a number > 0.")


def check_hyperparameters(hidden, activation, dropout, l2):
    """Validates the architecture arguments of `build_model`."""
    _choice("activation", activation, ACTIVATION_INITIALIZERS)
    if any(int(units) != units or units < 1 for units in hidden):
        raise TemplateError(
            f"Received hidden={list(hidden)}; expected positive integers, e.g. 64,64."
        )
    if not 0 <= dropout < 1:
        raise TemplateError(f"Received dropout={dropout}; expected 0 <= dropout < 1.")
    if not l2 >= 0:
        raise TemplateError(f"Received l2={l2}; expected a number >= 0.")


def build_model(task, train_features, labels, *, hidden=(64, 64), activation="relu",
                dropout=0.0, l2=0.0, optimizer="adam", learning_rate=1e-3,
                steps_per_execution=STEPS_PER_EXECUTION, data_loss=False):
    """Builds and compiles a model that takes raw columns.

    Args:
        task: str, a key of `templates.tasks.TASKS`.
        train_features: DataFrame of the training split's feature columns
            (preprocessing is adapted on it).
        labels: `templates.labels.Labels` of the training split (class names
            and whether labels are one-hot).
        hidden: sequence of int, units of each hidden layer. Defaults to
            `(64, 64)`.
        activation: str, `sigmoid`, `tanh`, `relu` or `leaky_relu`; the
            matching initializer is chosen for you. Defaults to `"relu"`.
        dropout: float, dropout rate after each hidden layer. Defaults to `0`.
        l2: float, L2 penalty on the hidden kernels. Defaults to `0`.
        optimizer: str, `sgd`, `momentum`, `rmsprop` or `adam`. Defaults to
            `"adam"`.
        learning_rate: float. Defaults to `1e-3`.
        steps_per_execution: int, training steps per graph call. Defaults to
            `STEPS_PER_EXECUTION`.
        data_loss: bool, whether to also watch `data_loss`, the loss without
            the L2 penalty (`templates.data_loss.DataLoss`), by which models
            with different `l2` compare fairly. Defaults to `False`.

    Returns:
        A compiled `keras.Model` whose inputs are a dict keyed by column.
    """
    spec = get_task(task)
    check_hyperparameters(hidden, activation, dropout, l2)
    inputs, x = build_preprocessing(train_features)
    regularizer = keras.regularizers.L2(l2) if l2 else None
    for depth, units in enumerate(hidden, start=1):
        x = keras.layers.Dense(
            int(units),
            activation=activation,
            kernel_initializer=ACTIVATION_INITIALIZERS[activation],
            kernel_regularizer=regularizer,
            name=f"hidden_{depth}",
        )(x)
        if dropout:
            x = keras.layers.Dropout(dropout, name=f"dropout_{depth}")(x)
    offset, scale = spec.target_scaling(labels.values)
    outputs = LabeledDense(
        spec.units(len(labels.class_names)),
        activation=spec.output_activation,
        class_names=labels.class_names,
        offset=offset,
        scale=scale,
        name="output",
    )(x)
    with raw_column_keys():
        model = keras.Model(inputs, outputs, name=f"{task}_template")
    loss = spec.loss_for(labels)
    # With the output in target units, this weight makes the loss the one of
    # a unit-scale target, so step sizes do not depend on those units.
    loss_weight = 1.0 / scale**2
    metrics = spec.train_metrics()
    if data_loss:
        metrics.append(DataLoss(loss, weight=loss_weight))
    model.compile(
        optimizer=make_optimizer(optimizer, learning_rate),
        loss=loss,
        loss_weights=loss_weight,
        metrics=metrics,
        steps_per_execution=steps_per_execution,
    )
    return model
