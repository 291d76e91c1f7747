import copy
import json
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

from callbacks.gradient_monitor import GradientMonitor

ROWS = 128
FEATURES = 8


def data(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(ROWS, FEATURES)).astype("float32")
    y = (x[:, :1] + x[:, 1:2] > 0).astype("float32")
    return x, y


def mlp(activation, initializer="glorot_uniform", depth=10, units=32):
    return keras.Sequential(
        [keras.Input((FEATURES,))]
        + [
            keras.layers.Dense(
                units,
                activation=activation,
                kernel_initializer=initializer,
                name=f"hidden_{i}",
            )
            for i in range(1, depth + 1)
        ]
        + [keras.layers.Dense(1, activation="sigmoid", name="output")]
    )


def train(model, monitor, epochs=1, learning_rate=0.01, loss="binary_crossentropy",
          y=None, steps_per_execution=1):
    x, labels = data()
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate),
        loss=loss,
        steps_per_execution=steps_per_execution,
    )
    return model.fit(
        x,
        labels if y is None else y,
        batch_size=16,
        epochs=epochs,
        shuffle=False,
        callbacks=[monitor],
        verbose=0,
    ).history


def probe():
    x, y = data()
    return x[:64], y[:64]


def test_norms_equal_an_independent_gradient_tape():
    keras.utils.set_random_seed(0)
    model = mlp("tanh", depth=3, units=16)
    monitor = GradientMonitor(probe=probe())
    train(model, monitor)

    x, y = probe()
    with tf.GradientTape() as tape:
        prediction = model(x, training=False)
        loss = keras.ops.mean(keras.losses.binary_crossentropy(y, prediction))
    layers = ["hidden_1", "hidden_2", "hidden_3", "output"]
    kernels = [model.get_layer(name).kernel for name in layers]
    expected = [np.linalg.norm(g) for g in tape.gradient(loss, kernels)]
    measured = [monitor.history[f"grad_norm/{name}"][-1] for name in layers]
    np.testing.assert_allclose(measured, expected, rtol=1e-4)


def test_deep_sigmoid_network_is_flagged_vanishing_naming_early_layers():
    keras.utils.set_random_seed(0)
    monitor = GradientMonitor(probe=probe())
    with pytest.warns(UserWarning, match="vanishing gradients") as caught:
        train(mlp("sigmoid"), monitor)

    assert monitor.vanishing_layers[:3] == ["hidden_1", "hidden_2", "hidden_3"]
    assert "output" not in monitor.vanishing_layers
    assert monitor.history["grad_norm/min_ratio"][-1] < 1e-4
    message = str(caught[0].message)
    assert "hidden_1 (" in message
    assert "ReLU or Leaky ReLU with He initialisation" in message
    assert "BatchNormalization" in message


@pytest.mark.parametrize(
    "activation, initializer",
    [("relu", "he_normal"), ("tanh", "glorot_uniform")],
)
def test_deep_relu_or_tanh_network_is_not_flagged(activation, initializer):
    keras.utils.set_random_seed(0)
    monitor = GradientMonitor(probe=probe())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        train(mlp(activation, initializer), monitor)

    assert monitor.vanishing_layers == []
    assert monitor.exploding_layers == []
    assert monitor.history["grad_norm/min_ratio"][-1] > 1e-2


def test_learning_rate_that_blows_up_the_loss_is_flagged_exploding():
    keras.utils.set_random_seed(0)
    x, _ = data()
    targets = 100 * x.sum(axis=1, keepdims=True)
    model = keras.Sequential(
        [keras.Input((FEATURES,)), keras.layers.Dense(16, activation="relu"),
         keras.layers.Dense(1)]
    )
    monitor = GradientMonitor(probe=(x[:64], targets[:64]))
    with pytest.warns(UserWarning, match="exploding gradients") as caught:
        train(model, monitor, learning_rate=1.0, loss="mse", y=targets)

    assert monitor.exploding_layers
    assert any("clipnorm" in str(w.message) for w in caught)


def two_inputs_two_outputs():
    a = keras.Input((5,), name="a")
    b = keras.Input((3,), name="b")
    hidden = keras.layers.Dense(8, activation="relu", name="shared")(
        keras.layers.Concatenate()([a, b])
    )
    score = keras.layers.Dense(1, name="score")(hidden)
    label = keras.layers.Dense(1, activation="sigmoid", name="label")(hidden)
    return keras.Model({"a": a, "b": b}, {"score": score, "label": label})


class Subclassed(keras.Model):
    def __init__(self):
        super().__init__()
        self.hidden = keras.layers.Dense(8, activation="relu", name="hidden")
        self.head = keras.layers.Dense(1, activation="sigmoid", name="head")

    def call(self, inputs):
        return self.head(self.hidden(inputs))


def test_functional_model_with_two_inputs_and_two_outputs():
    x, y = data()
    inputs = {"a": x[:, :5], "b": x[:, 5:]}
    targets = {"score": x[:, :1], "label": y}
    model = two_inputs_two_outputs()
    monitor = GradientMonitor(
        probe=({k: v[:32] for k, v in inputs.items()},
               {k: v[:32] for k, v in targets.items()})
    )
    model.compile(optimizer="sgd", loss={"score": "mse", "label": "binary_crossentropy"})
    history = model.fit(inputs, targets, epochs=1, callbacks=[monitor], verbose=0)

    for layer in ("shared", "score", "label"):
        assert history.history[f"grad_norm/{layer}"][0] > 0


def test_subclassed_model():
    model = Subclassed()
    monitor = GradientMonitor(probe=probe())
    history = train(model, monitor)

    assert history["grad_norm/hidden"][0] > 0
    assert history["grad_norm/head"][0] > 0


def test_measuring_leaves_training_untouched():
    x, y = data()
    inputs = {"a": x[:, :5], "b": x[:, 5:]}
    targets = {"score": x[:, :1], "label": y}

    def run(callbacks):
        keras.utils.set_random_seed(0)
        model = two_inputs_two_outputs()
        model.compile(optimizer="adam", loss={"score": "mse", "label": "binary_crossentropy"})
        history = model.fit(inputs, targets, batch_size=16, epochs=2, shuffle=False,
                            callbacks=callbacks, verbose=0).history
        return model.get_weights(), {k: v for k, v in history.items() if "grad" not in k}

    monitor = GradientMonitor(probe=(inputs, targets), every_n_batches=3)
    weights, history = run([monitor])
    expected_weights, expected_history = run([])

    assert history.keys() == expected_history.keys()
    for key in history:
        np.testing.assert_allclose(history[key], expected_history[key], rtol=1e-6)
    for value, expected in zip(weights, expected_weights):
        np.testing.assert_allclose(value, expected, rtol=1e-6)


def test_counts_steps_with_steps_per_execution():
    # 128 rows / 16 = 8 batches, reported every 2: measure at the first
    # report past each multiple of 3, and at the end of the epoch.
    monitor = GradientMonitor(probe=probe(), every_n_batches=3)
    train(mlp("relu", "he_normal", depth=2), monitor, steps_per_execution=2)

    assert monitor.history["step"] == [0, 4, 6, 8]


@pytest.mark.parametrize("on_vanishing", ["stop", "raise"])
def test_on_vanishing_stops_or_raises(on_vanishing):
    keras.utils.set_random_seed(0)
    monitor = GradientMonitor(probe=probe(), on_vanishing=on_vanishing)
    if on_vanishing == "raise":
        with pytest.raises(RuntimeError, match="vanishing gradients.*hidden_1"):
            train(mlp("sigmoid"), monitor, epochs=3)
    else:
        with pytest.warns(UserWarning, match="Stopping training"):
            history = train(mlp("sigmoid"), monitor, epochs=3)
        assert len(history["loss"]) == 1


def test_logs_reach_history_every_epoch():
    history = train(mlp("relu", "he_normal", depth=2), GradientMonitor(probe=probe()), epochs=2)

    for key in ("grad_norm/hidden_1", "grad_norm/output", "grad_norm/max",
                "grad_norm/min_ratio"):
        assert len(history[key]) == 2


def test_deepcopy_and_reuse_across_two_fits():
    monitor = GradientMonitor(probe=probe())
    model = mlp("relu", "he_normal", depth=2)
    unused_copy = copy.deepcopy(monitor)
    train(model, monitor, epochs=2)
    trained_copy = copy.deepcopy(monitor)
    train(model, monitor, epochs=1)

    assert monitor.history["step"] == [0, 8]
    assert trained_copy.history["step"] == [0, 8, 16]
    assert unused_copy.history == {}
    train(mlp("relu", "he_normal", depth=2), trained_copy, epochs=1)
    assert trained_copy.history["step"] == [0, 8]


def test_get_config_round_trips_through_json():
    x = {"age": np.array([[1.5], [2.5]], "float32"), "city": np.array([["Oslo"], ["Rome"]])}
    monitor = GradientMonitor(probe=(x, np.array([0.0, 1.0])), every_n_batches=5,
                              vanishing_ratio=1e-4, on_exploding="raise")
    config = json.loads(json.dumps(monitor.get_config()))
    restored = GradientMonitor.from_config(config)

    assert restored.get_config() == monitor.get_config()
    assert restored.probe[0]["city"].tolist() == [["Oslo"], ["Rome"]]
    assert restored.probe[0]["age"].dtype == np.float32


def test_plot_writes_a_png(tmp_path):
    monitor = GradientMonitor(probe=probe())
    train(mlp("relu", "he_normal", depth=2), monitor)
    path = tmp_path / "gradients.png"
    monitor.plot(path)

    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"probe": np.zeros((4, 2))}, "probe=a ndarray"),
        ({"probe": (np.zeros((4, 2)), np.zeros(3))}, r"same, non-zero number of rows"),
        ({"probe": probe(), "every_n_batches": 0}, "every_n_batches=0"),
        ({"probe": probe(), "vanishing_ratio": 1.5}, "vanishing_ratio=1.5"),
        ({"probe": probe(), "exploding_factor": 0.5}, "exploding_factor=0.5"),
        ({"probe": probe(), "on_vanishing": "ignore"}, "on_vanishing='ignore'"),
    ],
)
def test_invalid_arguments_name_the_received_value(kwargs, match):
    with pytest.raises(ValueError, match=match):
        GradientMonitor(**kwargs)


def test_unsupported_backend_raises_naming_it(monkeypatch):
    monkeypatch.setattr(keras.backend, "backend", lambda: "jax")
    with pytest.raises(RuntimeError, match="active backend is 'jax'"):
        GradientMonitor(probe=probe())


def test_plugs_into_the_binary_template(template_data):
    from templates import binary
    from templates.training import TrainingConfig

    features, target, x = template_data
    monitor = GradientMonitor(probe=(x, (target[:64] == "yes").astype("float32")))
    run = binary.train(features, target, config=TrainingConfig(hidden=(8,), epochs=2),
                       callbacks=[monitor], verbose=0)

    assert run.history["grad_norm/hidden_1"][-1] > 0
    assert run.history["grad_norm/output"][-1] > 0
