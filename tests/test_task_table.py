"""Each template's literal output head and loss agree with the task table."""

import inspect

import keras
import numpy as np
import pytest

from conftest import make_frame
from templates import binary, multiclass, regression
from templates.model import build_model
from templates.tasks import TASKS

TEMPLATES = {"regression": regression, "binary": binary, "multiclass": multiclass}


def built(task, **values):
    frame = make_frame(task)
    return build_model(task, frame.drop(columns="target"), TASKS[task].encode_labels(frame["target"]),
                       **values)


@pytest.mark.parametrize("task", list(TEMPLATES))
def test_each_templates_output_activation_and_loss_are_the_tables(task):
    model = built(task, hidden=(4,))
    head = model.get_layer("output")
    assert head.activation.__name__ == TASKS[task].output_activation
    assert head.units == TASKS[task].units(3)  # make_frame's classes: low, mid, high
    assert model.loss.name == TASKS[task].loss
    assert not model.loss.get_config().get("from_logits", False)


@pytest.mark.parametrize("task", list(TEMPLATES))
def test_the_head_and_loss_are_written_literally_in_the_template(task):
    source = inspect.getsource(TEMPLATES[task].build_model)
    assert f'activation="{TASKS[task].output_activation}", name="output"' in source
    loss_class = "".join(part.title() for part in TASKS[task].loss.split("_"))
    assert f"keras.losses.{loss_class}()" in source


def test_one_hot_labels_get_categorical_cross_entropy():
    frame = make_frame("multiclass")
    one_hot = TASKS["multiclass"].encode_labels(np.eye(3)[np.arange(len(frame)) % 3])
    model = build_model("multiclass", frame.drop(columns="target"), one_hot, hidden=(4,))
    assert model.loss.name == TASKS["multiclass"].one_hot_loss


@pytest.mark.parametrize("activation, initializer", [
    ("sigmoid", keras.initializers.GlorotUniform),
    ("tanh", keras.initializers.GlorotUniform),
    ("relu", keras.initializers.HeNormal),
    ("leaky_relu", keras.initializers.HeNormal),
])
def test_hidden_layers_get_the_initializer_that_suits_their_activation(activation, initializer):
    model = built("regression", hidden=(4, 4), activation=activation)
    hidden = [layer for layer in model.layers if layer.name.startswith("hidden_")]
    assert len(hidden) == 2
    for layer in hidden:
        assert layer.activation.__name__ == activation
        assert isinstance(layer.kernel_initializer, initializer)


@pytest.mark.parametrize("name, optimizer_class, momentum", [
    ("sgd", keras.optimizers.SGD, 0.0),
    ("momentum", keras.optimizers.SGD, 0.9),
    ("rmsprop", keras.optimizers.RMSprop, None),
    ("adam", keras.optimizers.Adam, None),
])
def test_optimizers_are_chosen_by_name(name, optimizer_class, momentum):
    optimizer = built("binary", hidden=(4,), optimizer=name, learning_rate=0.05).optimizer
    assert isinstance(optimizer, optimizer_class)
    assert float(optimizer.learning_rate) == pytest.approx(0.05)
    if momentum is not None:
        assert optimizer.momentum == momentum


def test_the_model_records_its_task_and_class_names():
    info = built("multiclass", hidden=(4,)).get_layer("model_info")
    assert (info.task, info.class_names, info.from_logits) == ("multiclass", ["high", "low", "mid"], False)


def test_regression_learns_a_unit_scale_target_and_predicts_in_its_units():
    frame = make_frame("regression")
    frame["target"] = 1e5 + 2e4 * frame["signal"]
    labels = TASKS["regression"].encode_labels(frame["target"])
    model = build_model("regression", frame.drop(columns="target"), labels, hidden=(4,))
    rescaling = model.get_layer("to_target_units")
    assert rescaling.offset == pytest.approx(frame["target"].mean(), rel=1e-4)
    assert rescaling.scale == pytest.approx(frame["target"].std(ddof=0), rel=1e-4)
    assert model.loss.name == "mean_squared_error"


def test_auc_of_a_single_class_test_set_is_nan_not_an_error():
    auc = TASKS["binary"].test_metrics["auc"]
    assert np.isnan(auc(np.array([1, 1, 1]), np.array([0.9, 0.2, 0.7])))
    assert auc(np.array([0, 1]), np.array([0.1, 0.9])) == 1.0
