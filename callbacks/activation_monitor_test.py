import copy
import json
import warnings

import keras
import numpy as np
import pytest

from callbacks._testing import fit_arguments
from callbacks.activation_monitor import ActivationMonitor

ROWS = 128
FEATURES = 8
BACKEND = keras.backend.backend()
tensorflow_only = pytest.mark.skipif(
    BACKEND != "tensorflow", reason="tf.data and the templates need the TensorFlow backend"
)


def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(ROWS, FEATURES)).astype("float32")
    y = (x[:, :1] > 0).astype("float32")
    return x, y


def model_with(activation, bias=0.0):
    """One monitored hidden layer, `watched`, before a sigmoid head."""
    return keras.Sequential(
        [
            keras.Input((FEATURES,)),
            keras.layers.Dense(
                16,
                activation=activation,
                bias_initializer=keras.initializers.Constant(bias),
                name="watched",
            ),
            keras.layers.Dense(1, activation="sigmoid", name="output"),
        ]
    )


def train(model, monitor, epochs=1, x=None, y=None):
    default_x, default_y = data()
    model.compile(optimizer=keras.optimizers.SGD(1e-3), loss="binary_crossentropy")
    return model.fit(
        default_x if x is None else x,
        default_y if y is None else y,
        batch_size=32,
        epochs=epochs,
        callbacks=[monitor],
        verbose=0,
    ).history


def probe():
    return data()[0][:64]


@pytest.mark.parametrize(
    "activation, bias, saturated, dead",
    [
        ("relu", -100.0, [], ["watched"]),
        ("sigmoid", 20.0, ["watched"], []),
        ("tanh", 20.0, ["watched"], []),
        ("relu", 0.0, [], []),
        ("sigmoid", 0.0, [], []),
        ("tanh", 0.0, [], []),
    ],
    ids=["killed-relu", "saturated-sigmoid", "saturated-tanh",
         "healthy-relu", "healthy-sigmoid", "healthy-tanh"],
)
def test_flags_killed_and_saturated_layers_and_not_healthy_ones(
    activation, bias, saturated, dead
):
    keras.utils.set_random_seed(0)
    monitor = ActivationMonitor(probe=probe())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        train(model_with(activation, bias), monitor)

    assert monitor.saturated_layers == saturated
    assert monitor.dead_layers == dead
    messages = [str(w.message) for w in caught if "ActivationMonitor" in str(w.message)]
    assert bool(messages) == bool(saturated or dead)


def test_dead_fraction_counts_units_zero_for_every_sample():
    keras.utils.set_random_seed(0)
    model = model_with("relu")
    monitor = ActivationMonitor(probe=probe())
    model.compile(optimizer="sgd", loss="binary_crossentropy")
    bias = np.zeros(16, "float32")
    bias[:4] = -100.0  # kill 4 of the 16 units
    model.get_layer("watched").bias.assign(bias)
    x, y = data()
    model.fit(x, y, epochs=1, callbacks=[monitor], verbose=0)

    assert monitor.history["dead_fraction/watched"][0] == pytest.approx(4 / 16)
    assert monitor.dead_layers == []


def test_output_layer_is_not_monitored():
    history = train(model_with("relu"), ActivationMonitor(probe=probe()))

    assert not any(key.endswith("/output") for key in history)


def test_message_names_layer_fraction_and_remedy():
    monitor = ActivationMonitor(probe=probe())
    with pytest.warns(UserWarning, match=r"dead units .* watched \(100%\)") as caught:
        train(model_with("relu", bias=-100.0), monitor)

    assert "LeakyReLU" in str(caught[0].message)


def two_inputs_two_outputs():
    a = keras.Input((5,), name="a")
    b = keras.Input((3,), name="b")
    relu = keras.layers.Dense(8, activation="relu", name="relu")(a)
    tanh = keras.layers.Dense(8, activation="tanh", name="tanh")(b)
    joined = keras.layers.Concatenate()([relu, tanh])
    score = keras.layers.Dense(1, name="score")(joined)
    label = keras.layers.Dense(1, activation="sigmoid", name="label")(joined)
    return keras.Model({"a": a, "b": b}, {"score": score, "label": label})


class Subclassed(keras.Model):
    def __init__(self):
        super().__init__()
        self.relu = keras.layers.Dense(8, activation="relu", name="relu")
        self.tanh = keras.layers.Dense(8, activation="tanh", name="tanh")
        self.head = keras.layers.Dense(1, activation="sigmoid", name="head")

    def call(self, inputs):
        return self.head(self.tanh(self.relu(inputs)))


def test_functional_model_with_two_inputs_and_two_outputs():
    x, y = data()
    inputs = {"a": x[:, :5], "b": x[:, 5:]}
    model = two_inputs_two_outputs()
    model.compile(optimizer="sgd", loss={"score": "mse", "label": "binary_crossentropy"})
    monitor = ActivationMonitor(probe={k: v[:32] for k, v in inputs.items()})
    history = model.fit(inputs, {"score": x[:, :1], "label": y}, epochs=1,
                        callbacks=[monitor], verbose=0).history

    assert "dead_fraction/relu" in history
    assert "saturated_fraction/tanh" in history
    assert not any(key.endswith("/label") for key in history)


def test_subclassed_model_with_steps_per_execution():
    monitor = ActivationMonitor(probe=probe(), every_n_batches=2)
    model = Subclassed()
    # Keras allows steps_per_execution > 1 on TF and JAX only.
    model.compile(optimizer="sgd", loss="binary_crossentropy",
                  steps_per_execution=1 if BACKEND == "torch" else 2)
    x, y = data()
    history = model.fit(x, y, batch_size=32, epochs=1, callbacks=[monitor], verbose=0)

    assert monitor.history["step"] == [0, 2, 4]
    assert "dead_fraction/relu" in history.history
    assert "saturated_fraction/tanh" in history.history
    assert not any(key.endswith("/head") for key in history.history)


@pytest.mark.parametrize("on_dead", ["stop", "raise"])
def test_on_dead_stops_or_raises(on_dead):
    monitor = ActivationMonitor(probe=probe(), on_dead=on_dead)
    model = model_with("relu", bias=-100.0)
    if on_dead == "raise":
        with pytest.raises(RuntimeError, match="dead units.*watched"):
            train(model, monitor, epochs=3)
    else:
        with pytest.warns(UserWarning, match="Stopping training"):
            history = train(model, monitor, epochs=3)
        assert len(history["loss"]) == 1


def test_logs_reach_history_every_epoch():
    history = train(model_with("tanh"), ActivationMonitor(probe=probe()), epochs=2)

    assert len(history["saturated_fraction/watched"]) == 2
    assert len(history["saturated_fraction/max"]) == 2


def test_the_compiled_probe_pass_gives_the_numbers_of_the_eager_one(monkeypatch):
    # On JAX and TensorFlow the probe pass is compiled once
    # (`_backend.compiled`), on PyTorch it runs eagerly. Wide weights put units on both sides of every
    # threshold; new weights between two measurements check that the
    # compiled pass reads the current ones.
    from callbacks import _backend

    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((FEATURES,))]
        + [
            keras.layers.Dense(
                32,
                activation=activation,
                kernel_initializer=keras.initializers.RandomNormal(stddev=1.5),
            )
            for activation in ("sigmoid", "tanh", "relu")
        ]
        + [keras.layers.Dense(1, activation="sigmoid")]
    )
    first = model.get_weights()
    second = [0.5 * w for w in first]

    def measured():
        monitor = ActivationMonitor(probe=4 * probe())
        monitor.set_model(model)
        model.set_weights(first)
        measure = monitor._build_measure(monitor.probe)
        before = measure()
        model.set_weights(second)
        return before, measure()

    compiled = measured()
    monkeypatch.setattr(
        _backend.get("ActivationMonitor"), "compiled", lambda model, function: function
    )
    eager = measured()

    assert compiled == eager
    assert compiled[0] != compiled[1]
    assert 0 < compiled[0]["saturated_fraction/max"] < 1


def test_deepcopy_and_reuse_across_two_fits():
    monitor = ActivationMonitor(probe=probe())
    model = model_with("relu")
    unused_copy = copy.deepcopy(monitor)
    train(model, monitor, epochs=2)
    trained_copy = copy.deepcopy(monitor)
    train(model, monitor, epochs=1)

    assert monitor.history["step"] == [0, 4]
    assert trained_copy.history["step"] == [0, 4, 8]
    assert unused_copy.history == {}
    train(model_with("relu"), trained_copy, epochs=1)
    assert trained_copy.history["step"] == [0, 4]


def test_get_config_round_trips_through_json():
    monitor = ActivationMonitor(probe={"age": np.ones((2, 1), "float32")},
                                max_dead_fraction=0.2, on_saturated="stop")
    config = json.loads(json.dumps(monitor.get_config()))

    assert ActivationMonitor.from_config(config).get_config() == monitor.get_config()


def test_plot_writes_a_png(tmp_path):
    monitor = ActivationMonitor(probe=probe())
    train(model_with("relu"), monitor)
    path = tmp_path / "activations.png"
    monitor.plot(path)

    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_model_without_monitored_activations_warns():
    model = keras.Sequential([keras.Input((FEATURES,)), keras.layers.Dense(1)])
    monitor = ActivationMonitor(probe=probe())
    with pytest.warns(UserWarning, match="found no hidden layer"):
        history = train(model, monitor)

    assert list(history) == ["loss"]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"probe": np.float32(1.0)}, "found a scalar"),
        ({"probe": [np.zeros((4, 2)), np.zeros((3, 2))]}, "same, non-zero number of rows"),
        ({"probe": np.zeros((4, 2)), "every_n_batches": 1.5}, "every_n_batches=1.5"),
        ({"probe": np.zeros((4, 2)), "max_dead_fraction": 0}, "max_dead_fraction=0"),
        ({"probe": np.zeros((4, 2)), "max_saturated_fraction": 2}, "max_saturated_fraction=2"),
        ({"probe": np.zeros((4, 2)), "on_dead": "log"}, "on_dead='log'"),
    ],
)
def test_invalid_arguments_name_the_received_value(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ActivationMonitor(**kwargs)


def test_unsupported_backend_raises_naming_it(monkeypatch):
    monkeypatch.setattr(keras.backend, "backend", lambda: "numpy")
    with pytest.raises(RuntimeError, match="active backend is 'numpy'"):
        ActivationMonitor(probe=probe())


def feed(kind):
    """`fit` arguments feeding the same 4 batches of 32 rows in four ways."""
    x, y = data()
    return fit_arguments(kind, x, y, batch_size=32)


@pytest.mark.parametrize(
    "kind",
    ["arrays", "generator", "pydataset", pytest.param("tf_data", marks=tensorflow_only)],
)
def test_without_probe_measures_the_first_training_batch(kind):
    keras.utils.set_random_seed(0)
    monitor = ActivationMonitor()
    model = model_with("relu", bias=-100.0)
    model.compile(optimizer=keras.optimizers.SGD(1e-3), loss="binary_crossentropy")
    with pytest.warns(UserWarning, match="dead units"):
        history = model.fit(**feed(kind), epochs=1, shuffle=False, callbacks=[monitor],
                            verbose=0).history

    assert monitor.dead_layers == ["watched"]
    assert monitor.history["step"] == [1, 4]
    assert history["dead_fraction/watched"] == [1.0]


def test_without_probe_a_healthy_two_input_model_is_not_flagged():
    x, y = data()
    inputs = {"a": x[:, :5], "b": x[:, 5:]}
    model = two_inputs_two_outputs()
    model.compile(optimizer="sgd", loss={"score": "mse", "label": "binary_crossentropy"})
    monitor = ActivationMonitor()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = model.fit(inputs, {"score": x[:, :1], "label": y}, epochs=1,
                            callbacks=[monitor], verbose=0).history

    assert not [w for w in caught if "ActivationMonitor" in str(w.message)]
    assert {"dead_fraction/relu", "saturated_fraction/tanh"} <= history.keys()


@tensorflow_only
def test_plugs_into_the_binary_template(template_data):
    from templates import binary
    from templates.training import TrainingConfig

    features, target, x = template_data
    monitor = ActivationMonitor(probe=x)
    run = binary.train(features, target,
                       config=TrainingConfig(hidden=(8, 8), activation="tanh", epochs=2),
                       callbacks=[monitor], verbose=0)

    assert len(run.history["saturated_fraction/hidden_1"]) == 2
    assert "saturated_fraction/hidden_2" in run.history
    assert not any(key.endswith("/output") for key in run.history)
