"""The task table decides the output layer, the loss and the metrics."""

import keras
import numpy as np
import pytest

from templates import labels as label_encoders
from templates.binary import build_model as build_binary
from templates.model import ACTIVATION_INITIALIZERS, build_model, make_optimizer
from templates.tasks import TASKS

from conftest import make_frame

EXPECTED_HEADS = {
    "regression": ("linear", 1, "mean_squared_error"),
    "binary": ("sigmoid", 1, "binary_crossentropy"),
    "multiclass": ("softmax", 3, "sparse_categorical_crossentropy"),
}


def encoded(task, frame):
    return TASKS[task].encode_labels(frame["target"])


@pytest.mark.parametrize("task", list(EXPECTED_HEADS))
def test_output_activation_units_and_loss_follow_the_table(task):
    frame = make_frame(task)
    model = build_model(task, frame.drop(columns="target"), encoded(task, frame), hidden=(4,))
    activation, units, loss = EXPECTED_HEADS[task]
    head = model.layers[-1]
    assert head.activation.__name__ == activation
    assert head.units == units
    assert model.loss == loss


def test_one_hot_labels_get_categorical_cross_entropy():
    frame = make_frame("multiclass")
    one_hot = label_encoders.encode_class_labels(np.eye(3)[np.arange(len(frame)) % 3])
    model = build_model("multiclass", frame.drop(columns="target"), one_hot, hidden=(4,))
    assert model.loss == "categorical_crossentropy"


def test_template_module_builds_its_own_task():
    frame = make_frame("binary")
    model = build_binary(frame.drop(columns="target"), encoded("binary", frame), hidden=(4,))
    assert model.layers[-1].activation.__name__ == "sigmoid"


@pytest.mark.parametrize("activation, initializer", [
    ("sigmoid", keras.initializers.GlorotUniform),
    ("tanh", keras.initializers.GlorotUniform),
    ("relu", keras.initializers.HeNormal),
    ("leaky_relu", keras.initializers.HeNormal),
])
def test_hidden_layers_get_the_initializer_that_suits_their_activation(activation, initializer):
    frame = make_frame("regression")
    model = build_model("regression", frame.drop(columns="target"), encoded("regression", frame),
                        hidden=(4, 4), activation=activation)
    hidden = [layer for layer in model.layers if layer.name.startswith("hidden_")]
    assert len(hidden) == 2
    for layer in hidden:
        assert layer.activation.__name__ == activation
        assert isinstance(layer.kernel_initializer, initializer)
    assert set(ACTIVATION_INITIALIZERS) == {"sigmoid", "tanh", "relu", "leaky_relu"}


@pytest.mark.parametrize("name, optimizer_class, momentum", [
    ("sgd", keras.optimizers.SGD, 0.0),
    ("momentum", keras.optimizers.SGD, 0.9),
    ("rmsprop", keras.optimizers.RMSprop, None),
    ("adam", keras.optimizers.Adam, None),
])
def test_optimizers_are_chosen_by_name(name, optimizer_class, momentum):
    optimizer = make_optimizer(name, 0.05)
    assert isinstance(optimizer, optimizer_class)
    assert float(optimizer.learning_rate) == pytest.approx(0.05)
    if momentum is not None:
        assert optimizer.momentum == momentum


def test_class_names_travel_with_the_output_layer():
    frame = make_frame("multiclass")
    model = build_model("multiclass", frame.drop(columns="target"), encoded("multiclass", frame), hidden=(4,))
    assert model.layers[-1].class_names == ["high", "low", "mid"]


def test_regression_learns_a_unit_scale_target_and_predicts_in_its_units():
    frame = make_frame("regression")
    frame["target"] = 1e5 + 2e4 * frame["signal"]
    model = build_model("regression", frame.drop(columns="target"), encoded("regression", frame), hidden=(4,))
    head = model.layers[-1]
    assert head.offset == pytest.approx(frame["target"].mean(), rel=1e-4)
    assert head.scale == pytest.approx(frame["target"].std(ddof=0), rel=1e-4)
    assert model.loss == "mean_squared_error"


def test_auc_of_a_single_class_test_set_is_nan_not_an_error():
    auc = TASKS["binary"].test_metrics["auc"]
    assert np.isnan(auc(np.array([1, 1, 1]), np.array([0.9, 0.2, 0.7])))
    assert auc(np.array([0, 1]), np.array([0.1, 0.9])) == 1.0
