import copy
import json

import keras
import numpy as np
import pandas as pd
import pytest

from callbacks._testing import fit_arguments
from callbacks.output_loss_check import (
    OutputLossCheck,
    OutputLossMismatchError,
    check_output_loss,
)

ROWS = 32
RNG = np.random.default_rng(0)
X = RNG.normal(size=(ROWS, 4)).astype("float32")
CLASS_IDS = RNG.integers(0, 3, size=ROWS)
ONE_HOT = np.eye(3)[CLASS_IDS]
BINARY = RNG.integers(0, 2, size=(ROWS, 1))
REAL = RNG.normal(size=(ROWS, 1))


class Head(keras.layers.Dense):
    """An output head subclassing Dense, as templates may define."""


def model_with_head(*head):
    inputs = keras.Input((4,))
    outputs = inputs
    for layer in head:
        outputs = layer(outputs)
    return keras.Model(inputs, outputs)


def compiled(loss, *head):
    model = model_with_head(*head)
    model.compile(optimizer="sgd", loss=loss)
    return model


def dense(units, activation=None):
    return keras.layers.Dense(units, activation=activation, name="head")


MISMATCHES = {
    "softmax_over_one_unit": (
        lambda: [dense(1, "softmax")],
        "binary_crossentropy",
        None,
        "single unit",
    ),
    "softmax_layer_over_one_unit": (
        lambda: [dense(1), keras.layers.Softmax()],
        "binary_crossentropy",
        None,
        "single unit",
    ),
    "softmax_with_mse": (
        lambda: [dense(3, "softmax")],
        "mse",
        None,
        "regression",
    ),
    "sigmoid_with_mse_on_binary_labels": (
        lambda: [dense(1, "sigmoid")],
        keras.losses.MeanSquaredError(),
        BINARY,
        "use binary_crossentropy",
    ),
    "softmax_with_binary_crossentropy": (
        lambda: [dense(3, "softmax")],
        "binary_crossentropy",
        None,
        "softmax makes them compete",
    ),
    "activation_layer_softmax_with_binary_crossentropy_function": (
        lambda: [dense(3), keras.layers.Activation("softmax")],
        keras.losses.binary_crossentropy,
        None,
        "softmax makes them compete",
    ),
    "linear_with_binary_crossentropy_on_probabilities": (
        lambda: [dense(1)],
        keras.losses.BinaryCrossentropy(),
        None,
        r"BinaryCrossentropy\(from_logits=True\)",
    ),
    "linear_with_sparse_crossentropy_string": (
        lambda: [dense(3)],
        "sparse_categorical_crossentropy",
        None,
        "activation='softmax'",
    ),
    "sigmoid_with_from_logits": (
        lambda: [dense(1, "sigmoid")],
        keras.losses.BinaryCrossentropy(from_logits=True),
        None,
        "applies sigmoid again",
    ),
    "sparse_crossentropy_with_one_hot_labels": (
        lambda: [dense(3, "softmax")],
        "sparse_categorical_crossentropy",
        ONE_HOT,
        "look one-hot",
    ),
    "sparse_crossentropy_with_fractional_labels": (
        lambda: [dense(3, "softmax")],
        "sparse_categorical_crossentropy",
        CLASS_IDS / 2,
        "integer class ids",
    ),
    "sparse_crossentropy_with_labels_beyond_units": (
        lambda: [dense(3, "softmax")],
        "sparse_categorical_crossentropy",
        CLASS_IDS + 1,
        r"class ids in \[0, 3\)",
    ),
    "categorical_crossentropy_with_class_ids": (
        lambda: [dense(3, "softmax")],
        "categorical_crossentropy",
        CLASS_IDS,
        r"to_categorical\(y, 3\)",
    ),
    "categorical_crossentropy_with_wrong_width": (
        lambda: [dense(3, "softmax")],
        keras.losses.CategoricalCrossentropy(),
        np.eye(4)[CLASS_IDS],
        r"shape \(n, 3\)",
    ),
}

MATCHES = {
    "binary": (lambda: [dense(1, "sigmoid")], "binary_crossentropy", BINARY),
    "binary_logits": (
        lambda: [dense(1)],
        keras.losses.BinaryCrossentropy(from_logits=True),
        BINARY,
    ),
    "regression": (lambda: [dense(1)], "mse", REAL),
    "sigmoid_regression_on_fractions": (
        lambda: [dense(1, "sigmoid")],
        "mse",
        RNG.uniform(size=(ROWS, 1)),
    ),
    "multiclass_sparse": (
        lambda: [Head(3, activation="softmax")],
        "sparse_categorical_crossentropy",
        CLASS_IDS,
    ),
    "multiclass_sparse_column": (
        lambda: [dense(3, "softmax")],
        keras.losses.SparseCategoricalCrossentropy(),
        CLASS_IDS[:, None],
    ),
    "multiclass_one_hot": (
        lambda: [dense(3), keras.layers.Softmax()],
        "categorical_crossentropy",
        ONE_HOT,
    ),
    "multiclass_logits": (
        lambda: [dense(3)],
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        CLASS_IDS,
    ),
    "custom_loss": (
        lambda: [dense(3, "softmax")],
        lambda y_true, y_pred: keras.ops.mean(y_pred),
        None,
    ),
}


@pytest.mark.parametrize(
    "head, loss, y, message", MISMATCHES.values(), ids=MISMATCHES.keys()
)
def test_mismatch_raises_naming_output_loss_and_fix(head, loss, y, message):
    model = compiled(loss, *head())

    with pytest.raises(OutputLossMismatchError, match=message) as error:
        check_output_loss(model, y)

    assert "Fix:" in str(error.value) or "received labels" in str(error.value)
    assert model.output_names[0] in str(error.value)


@pytest.mark.parametrize("head, loss, y", MATCHES.values(), ids=MATCHES.keys())
def test_matching_output_and_loss_pass(head, loss, y):
    check_output_loss(compiled(loss, *head()), y)


def test_mismatch_error_is_a_value_error():
    assert issubclass(OutputLossMismatchError, ValueError)


def test_callback_raises_before_any_training_step():
    model = compiled("binary_crossentropy", dense(3, "softmax"))
    weights = model.get_weights()

    with pytest.raises(OutputLossMismatchError, match="compete"):
        model.fit(X, ONE_HOT, callbacks=[OutputLossCheck()], verbose=0)

    for actual, expected in zip(model.get_weights(), weights):
        np.testing.assert_array_equal(actual, expected)


def test_callback_checks_labels_given_to_it():
    model = compiled("categorical_crossentropy", dense(3, "softmax"))

    with pytest.raises(OutputLossMismatchError, match="to_categorical"):
        model.fit(
            X,
            ONE_HOT,
            callbacks=[OutputLossCheck(y=CLASS_IDS)],
            verbose=0,
        )


def test_callback_checks_sequential_built_during_fit():
    model = keras.Sequential(
        [keras.layers.Dense(1), keras.layers.Activation("softmax")]
    )
    model.compile(optimizer="sgd", loss="binary_crossentropy")

    with pytest.raises(OutputLossMismatchError, match="single unit"):
        model.fit(X, BINARY, callbacks=[OutputLossCheck()], verbose=0)


@pytest.mark.parametrize(
    "loss",
    [
        {"kind": "binary_crossentropy", "value": "mse"},
        ["binary_crossentropy", "mse"],
    ],
    ids=["dict", "list"],
)
def test_multi_output_losses_are_matched_to_their_outputs(loss):
    inputs = keras.Input((4,))
    outputs = {
        "kind": keras.layers.Dense(3, activation="softmax", name="kind")(
            inputs
        ),
        "value": keras.layers.Dense(1, name="value")(inputs),
    }
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="sgd", loss=loss)

    with pytest.raises(OutputLossMismatchError) as error:
        check_output_loss(model, {"kind": CLASS_IDS, "value": REAL})

    assert "Output 'kind'" in str(error.value)
    assert "Output 'value'" not in str(error.value)


def test_multi_output_labels_must_be_given_per_output():
    inputs = keras.Input((4,))
    model = keras.Model(
        inputs, [keras.layers.Dense(1)(inputs), keras.layers.Dense(1)(inputs)]
    )
    model.compile(optimizer="sgd", loss="mse")

    with pytest.raises(ValueError, match="Received y of type ndarray"):
        check_output_loss(model, REAL)


def test_check_requires_a_compiled_model():
    with pytest.raises(ValueError, match="compiled=False"):
        check_output_loss(model_with_head(dense(1)))


def test_subclassed_model_passes_unchecked():
    class Subclassed(keras.Model):
        def __init__(self):
            super().__init__()
            self.head = keras.layers.Dense(1, activation="softmax")

        def call(self, inputs):
            return self.head(inputs)

    model = Subclassed()
    model.compile(optimizer="sgd", loss="binary_crossentropy")

    check_output_loss(model, BINARY)


def test_callback_is_reusable_across_fit_calls():
    check = OutputLossCheck(y=CLASS_IDS)
    good = compiled("sparse_categorical_crossentropy", dense(3, "softmax"))
    bad = compiled("categorical_crossentropy", dense(3, "softmax"))

    good.fit(X, CLASS_IDS, epochs=1, callbacks=[check], verbose=0)
    with pytest.raises(OutputLossMismatchError):
        bad.fit(X, ONE_HOT, epochs=1, callbacks=[check], verbose=0)
    good.fit(X, CLASS_IDS, epochs=1, callbacks=[check], verbose=0)


def test_deep_copy_keeps_the_labels_and_checks():
    duplicate = copy.deepcopy(OutputLossCheck(y=CLASS_IDS))
    model = compiled("categorical_crossentropy", dense(3, "softmax"))

    np.testing.assert_array_equal(duplicate.y, CLASS_IDS)
    with pytest.raises(OutputLossMismatchError):
        model.fit(X, ONE_HOT, callbacks=[duplicate], verbose=0)


@pytest.mark.parametrize(
    "y",
    [None, CLASS_IDS, {"kind": CLASS_IDS, "value": REAL}, [CLASS_IDS, REAL]],
    ids=["none", "array", "dict", "list"],
)
def test_get_config_is_json_and_rebuilds_the_callback(y):
    config = json.loads(json.dumps(OutputLossCheck(y=y).get_config()))

    assert OutputLossCheck(**config).get_config() == config


@pytest.mark.parametrize("y", [3, "labels"])
def test_invalid_labels_raise_naming_the_received_value(y):
    with pytest.raises(ValueError, match=f"Received y={y!r}"):
        OutputLossCheck(y=y)


def test_unsupported_backend_raises_naming_it(monkeypatch):
    monkeypatch.setattr(keras.backend, "backend", lambda: "numpy")

    with pytest.raises(RuntimeError, match="'numpy'"):
        OutputLossCheck()


def feed(kind, y):
    """`fit` arguments feeding X and `y` in batches of 16, in four ways."""
    return fit_arguments(kind, X, y, batch_size=16)


FEEDS = [
    "arrays",
    "generator",
    "pydataset",
    pytest.param(
        "tf_data",
        marks=pytest.mark.skipif(
            keras.backend.backend() != "tensorflow", reason="tf.data needs TensorFlow"
        ),
    ),
]


@pytest.mark.parametrize("kind", FEEDS)
def test_callback_checks_the_first_training_labels_before_any_step(kind):
    # Class ids up to 4 for 3 units: no backend refuses them by itself.
    model = compiled("sparse_categorical_crossentropy", dense(3, "softmax"))
    weights = model.get_weights()

    with pytest.raises(OutputLossMismatchError, match=r"class ids in \[0, 3\)"):
        model.fit(**feed(kind, CLASS_IDS + 2), callbacks=[OutputLossCheck()], verbose=0)

    for actual, expected in zip(model.get_weights(), weights):
        np.testing.assert_array_equal(actual, expected)


@pytest.mark.parametrize("kind", FEEDS)
def test_callback_passes_matching_training_labels(kind):
    model = compiled("sparse_categorical_crossentropy", dense(3, "softmax"))
    history = model.fit(**feed(kind, CLASS_IDS), epochs=2, callbacks=[OutputLossCheck()],
                        verbose=0)

    assert len(history.history["loss"]) == 2


@pytest.mark.parametrize(
    "task, raw_labels",
    [
        ("regression", [0.5, 1.5, 2.5, 3.5, 4.5, 5.5]),
        ("binary", ["no", "yes", "no", "yes", "no", "yes"]),
        ("multiclass", ["cat", "dog", "owl", "cat", "dog", "owl"]),
        ("multiclass", np.eye(3)[[0, 1, 2, 0, 1, 2]]),
    ],
    ids=["regression", "binary", "multiclass", "multiclass_one_hot"],
)
@pytest.mark.skipif(
    keras.backend.backend() != "tensorflow", reason="the templates need TensorFlow"
)
def test_template_models_pass(task, raw_labels):
    # Imported here: the templates import TensorFlow, which collecting the
    # tests on the other backends should not.
    from templates.model import build_model
    from templates.tasks import get_task

    features = pd.DataFrame(
        {"size": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0], "color": list("rgbrgb")}
    )
    labels = get_task(task).encode_labels(raw_labels)
    model = build_model(task, features, labels, hidden=(4,))

    check_output_loss(model, labels.values)
