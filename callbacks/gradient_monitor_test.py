import copy
import json
import warnings

import keras
import numpy as np
import pytest

from callbacks._testing import fit_arguments
from callbacks.gradient_monitor import GradientMonitor

ROWS = 128
FEATURES = 8
BACKEND = keras.backend.backend()
tensorflow_only = pytest.mark.skipif(
    BACKEND != "tensorflow", reason="tf.data and tf.summary need the TensorFlow backend"
)
several_steps_per_call = pytest.mark.skipif(
    BACKEND == "torch", reason="Keras allows steps_per_execution > 1 on TF and JAX only"
)


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
          y=None, steps_per_execution=1, optimizer=None):
    x, labels = data()
    model.compile(
        optimizer=optimizer or keras.optimizers.SGD(learning_rate),
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


def monitor_warnings(caught):
    return [str(w.message) for w in caught if "GradientMonitor" in str(w.message)]


def independent_gradient_norms(model, weights, x, y, layers, training):
    """Kernel gradient norms of the mean binary cross-entropy, by the backend's autograd."""
    kernels = [model.get_layer(name).kernel for name in layers]
    gradients = independent_gradients(model, weights, x, y, kernels, training)
    return [float(np.linalg.norm(g)) for g in gradients]


def independent_gradients(model, weights, x, y, variables, training):
    """Gradients of the mean binary cross-entropy, by the backend's autograd.

    Returns NumPy arrays, one per variable of `variables`, at `weights`.
    """
    model.set_weights(weights)
    kernels = list(variables)

    def loss_of(prediction):
        return keras.ops.mean(keras.losses.binary_crossentropy(y, prediction))

    if BACKEND == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            loss = loss_of(model(x, training=training))
        gradients = tape.gradient(loss, [k.value for k in kernels])
    elif BACKEND == "jax":
        import jax

        trainable = [v.value for v in model.trainable_variables]
        non_trainable = [v.value for v in model.non_trainable_variables]

        def loss_fn(values):
            prediction, _ = model.stateless_call(values, non_trainable, x, training=training)
            return loss_of(prediction)

        all_gradients = jax.grad(loss_fn)(trainable)
        position = {id(v): i for i, v in enumerate(model.trainable_variables)}
        gradients = [all_gradients[position[id(k)]] for k in kernels]
    else:
        import torch

        loss = loss_of(model(x, training=training))
        gradients = torch.autograd.grad(loss, [k.value for k in kernels])
        gradients = [g.detach().cpu().numpy() for g in gradients]
    return [np.asarray(g, dtype="float64") for g in gradients]


LAYERS = ["hidden_1", "hidden_2", "hidden_3", "output"]


def test_real_batch_norms_equal_an_independent_gradient():
    keras.utils.set_random_seed(0)
    model = mlp("tanh", depth=3, units=16)
    initial = model.get_weights()
    monitor = GradientMonitor()
    train(model, monitor)

    # The first measurement is the first step: batch 0, initial weights.
    x, y = data()
    expected = independent_gradient_norms(model, initial, x[:16], y[:16], LAYERS, True)
    measured = [monitor.history[f"grad_norm/{name}"][0] for name in LAYERS]
    np.testing.assert_allclose(measured, expected, rtol=1e-4)
    # SGD moves a kernel by learning_rate * gradient.
    kernels = [initial[2 * i] for i in range(len(LAYERS))]
    expected_ratios = [0.01 * g / np.linalg.norm(k) for g, k in zip(expected, kernels)]
    ratios = [monitor.history[f"update_ratio/{name}"][0] for name in LAYERS]
    np.testing.assert_allclose(ratios, expected_ratios, rtol=1e-3)


@several_steps_per_call
def test_a_call_of_several_steps_reports_the_root_mean_square_over_its_steps():
    keras.utils.set_random_seed(0)
    model = mlp("tanh", depth=3, units=16)
    initial = model.get_weights()
    monitor = GradientMonitor()
    train(model, monitor, steps_per_execution=4)

    # The first call runs steps 1 to 4 (batches 0 to 3) from the initial
    # weights: replay them with plain SGD (learning rate 0.01).
    x, y = data()
    weights = [w.astype("float64") for w in initial]
    norms, global_norms, ratios = [], [], []
    for step in range(4):
        rows = slice(16 * step, 16 * (step + 1))
        gradients = independent_gradients(
            model, weights, x[rows], y[rows], model.trainable_variables, True
        )
        kernels = [2 * i for i in range(len(LAYERS))]  # kernel, bias, ...
        norms.append([np.linalg.norm(gradients[i]) for i in kernels])
        global_norms.append(np.sqrt(sum(np.sum(g * g) for g in gradients)))
        updated = [w - 0.01 * g for w, g in zip(weights, gradients)]
        ratios.append([np.linalg.norm(updated[i] - weights[i]) / np.linalg.norm(weights[i])
                       for i in kernels])
        weights = updated

    def root_mean_square(per_step):
        return np.sqrt(np.mean(np.square(per_step), axis=0))

    assert monitor.history["step"] == [4, 8]
    measured = [monitor.history[f"grad_norm/{name}"][0] for name in LAYERS]
    np.testing.assert_allclose(measured, root_mean_square(norms), rtol=1e-4)
    np.testing.assert_allclose(monitor.history["grad_norm/global"][0],
                               root_mean_square(global_norms), rtol=1e-4)
    measured_ratios = [monitor.history[f"update_ratio/{name}"][0] for name in LAYERS]
    np.testing.assert_allclose(measured_ratios, root_mean_square(ratios), rtol=1e-3)
    # Not the last step's alone: the batches' norms differ by more than rtol.
    assert not np.allclose(measured, norms[-1], rtol=1e-3)


@several_steps_per_call
def test_clipping_counts_every_step_of_a_measured_call():
    keras.utils.set_random_seed(0)
    monitor = GradientMonitor()
    with pytest.warns(UserWarning, match="lower learning rate in disguise"):
        history = train(mlp("relu", "he_normal", depth=2), monitor, steps_per_execution=4,
                        optimizer=keras.optimizers.SGD(0.01, global_clipnorm=1e-3))

    # Two calls of 4 steps, both measured (the first, the epoch's last).
    assert monitor.history["step"] == [4, 8]
    assert monitor._clip["measured"] == 8
    assert history["grad_norm/clipped_fraction"] == [1.0]
    assert monitor.suggested_clipnorm == pytest.approx(
        np.percentile(monitor.history["grad_norm/global"], 90)
    )


def test_probe_norms_equal_an_independent_gradient():
    keras.utils.set_random_seed(0)
    model = mlp("tanh", depth=3, units=16)
    monitor = GradientMonitor(probe=probe())
    train(model, monitor)

    x, y = probe()
    expected = independent_gradient_norms(model, model.get_weights(), x, y, LAYERS, False)
    measured = [monitor.history[f"grad_norm/{name}"][-1] for name in LAYERS]
    np.testing.assert_allclose(measured, expected, rtol=1e-4)


def test_deep_sigmoid_network_is_flagged_vanishing_naming_early_layers():
    keras.utils.set_random_seed(0)
    monitor = GradientMonitor()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = train(mlp("sigmoid"), monitor)

    assert monitor.vanishing_layers[:3] == ["hidden_1", "hidden_2", "hidden_3"]
    assert "output" not in monitor.vanishing_layers
    assert monitor.stalled_layers[:1] == ["hidden_1"]
    assert len(history["grad_norm/hidden_1"]) == 1
    message = next(m for m in monitor_warnings(caught) if "vanishing" in m)
    assert "hidden_1 (" in message
    assert "ReLU or Leaky ReLU with He initialisation" in message
    assert "BatchNormalization" in message


@pytest.mark.parametrize(
    "activation, initializer",
    [("relu", "he_normal"), ("tanh", "glorot_uniform")],
)
def test_deep_relu_or_tanh_network_is_not_flagged(activation, initializer):
    keras.utils.set_random_seed(0)
    monitor = GradientMonitor()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = train(mlp(activation, initializer), monitor)

    assert monitor_warnings(caught) == []
    assert monitor.history["grad_norm/min_ratio"][-1] > 1e-2
    assert len(history["grad_norm/hidden_1"]) == 1


def test_learning_rate_that_blows_up_is_flagged_with_remedies_in_playbook_order():
    keras.utils.set_random_seed(0)
    x, _ = data()
    targets = 100 * x.sum(axis=1, keepdims=True)
    model = keras.Sequential(
        [keras.Input((FEATURES,)), keras.layers.Dense(16, activation="relu"),
         keras.layers.Dense(1)]
    )
    monitor = GradientMonitor(every_n_batches=1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        train(model, monitor, learning_rate=1.0, loss="mse", y=targets)

    messages = monitor_warnings(caught)
    assert any("thrashing layers" in m for m in messages)
    message = next(m for m in messages if "exploding" in m)
    order = ["warm-up", "clipping", "residual", "lower learning rate"]
    assert [message.index(step) for step in order] == sorted(
        message.index(step) for step in order
    )


def test_a_loss_turning_non_finite_between_measurements_is_flagged_in_its_epoch():
    # Measured: steps 1 and 8; the loss overflows in between. The monitor
    # reads the loss of unmeasured calls only once it is computed (it does
    # not wait for the step; on JAX, under load, it may be the measured
    # step 8 that flags it), and at the epoch's end at the latest.
    keras.utils.set_random_seed(0)
    x, _ = data()
    model = keras.Sequential(
        [keras.Input((FEATURES,)), keras.layers.Dense(16, activation="relu"),
         keras.layers.Dense(1)]
    )
    monitor = GradientMonitor()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        train(model, monitor, learning_rate=1.0, loss="mse",
              y=100 * x.sum(axis=1, keepdims=True))

    message = next(m for m in monitor_warnings(caught) if "exploding" in m)
    assert "(epoch 1)" in message
    if BACKEND != "jax":
        # Results come ready: the first unmeasured call after the overflow.
        assert "training loss inf, between measurements" in message


def test_reads_the_loss_between_measurements_a_few_times_an_epoch_not_every_call(monkeypatch):
    # Each read waits for the device; 64 calls an epoch, measured at the first
    # and the last: at most 16 reads between them, and one at the epoch's end.
    reads = []
    check_loss = GradientMonitor._check_loss
    monkeypatch.setattr(GradientMonitor, "_check_loss",
                        lambda self, loss: reads.append(loss) or check_loss(self, loss))
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1024, FEATURES)).astype("float32")
    model = keras.Sequential([keras.Input((FEATURES,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    model.fit(x, x[:, :1], batch_size=16, epochs=1, verbose=0, callbacks=[GradientMonitor()])

    assert 1 <= len(reads) <= 17


def test_names_the_first_layer_whose_output_turned_non_finite():
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((FEATURES,)),
         keras.layers.Dense(4, name="hidden"),
         keras.layers.Lambda(lambda t: keras.ops.exp(1000.0 * t), name="blowup"),
         keras.layers.Dense(1, name="output")]
    )
    monitor = GradientMonitor()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        train(model, monitor, loss="mse")

    message = next(m for m in monitor_warnings(caught) if "exploding" in m)
    assert "first layer whose output was not finite: 'blowup'" in message


def test_clipping_reports_norms_before_clipping_and_suggests_a_threshold():
    keras.utils.set_random_seed(0)
    monitor = GradientMonitor(every_n_batches=1)
    with pytest.warns(UserWarning, match="lower learning rate in disguise"):
        history = train(mlp("relu", "he_normal", depth=2), monitor,
                        optimizer=keras.optimizers.SGD(0.01, global_clipnorm=1e-3))

    assert history["grad_norm/clipped_fraction"] == [1.0]
    norms = monitor.history["grad_norm/global"]
    assert min(norms) > 1e-3  # before clipping
    assert monitor.suggested_clipnorm == pytest.approx(np.percentile(norms, 90))


def test_loss_scale_optimizer_reports_unscaled_gradients():
    def first_norms(optimizer):
        keras.utils.set_random_seed(0)
        monitor = GradientMonitor()
        train(mlp("tanh", depth=2), monitor, optimizer=optimizer)
        return [monitor.history[f"grad_norm/{name}"][0] for name in ("hidden_1", "output")]

    scaled = keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD(0.01))
    np.testing.assert_allclose(
        first_norms(scaled), first_norms(keras.optimizers.SGD(0.01)), rtol=1e-4
    )


def two_inputs():
    a = keras.Input((5,), name="a")
    b = keras.Input((3,), name="b")
    hidden = keras.layers.Dense(8, activation="relu", name="shared")(
        keras.layers.Concatenate()([a, b])
    )
    return keras.Model({"a": a, "b": b}, keras.layers.Dense(1, name="head")(hidden))


def feed(kind, inputs, targets):
    """`fit` arguments feeding the same 8 batches of 16 rows in four ways."""
    return fit_arguments(kind, inputs, targets, batch_size=16)


@pytest.mark.parametrize(
    "kind",
    ["arrays", "generator", "pydataset", pytest.param("tf_data", marks=tensorflow_only)],
)
def test_functional_model_with_two_inputs_on_any_input_pipeline(kind):
    x, y = data()
    inputs = {"a": x[:, :5], "b": x[:, 5:]}
    model = two_inputs()
    model.compile(optimizer="sgd", loss="mse")
    monitor = GradientMonitor()
    history = model.fit(**feed(kind, inputs, y), epochs=1, shuffle=False,
                        callbacks=[monitor], verbose=0).history

    assert history["grad_norm/shared"][0] > 0
    assert history["grad_norm/head"][0] > 0
    # A generator has no known length: its first step is measured.
    assert monitor.history["step"] == ([1] if kind == "generator" else [1, 8])


class Subclassed(keras.Model):
    def __init__(self):
        super().__init__()
        self.hidden = keras.layers.Dense(8, activation="relu", name="hidden")
        self.head = keras.layers.Dense(1, activation="sigmoid", name="head")

    def call(self, inputs):
        return self.head(self.hidden(inputs))


def test_subclassed_model():
    history = train(Subclassed(), GradientMonitor())

    assert history["grad_norm/hidden"][0] > 0
    assert history["grad_norm/head"][0] > 0


def test_measuring_leaves_training_untouched():
    x, y = data()

    def run(callbacks):
        keras.utils.set_random_seed(0)
        model = mlp("relu", "he_normal", depth=2)
        model.compile(optimizer="adam", loss="binary_crossentropy")
        history = model.fit(x, y, batch_size=16, epochs=2, shuffle=False,
                            callbacks=callbacks, verbose=0).history
        return model.get_weights(), history

    weights, history = run([GradientMonitor(every_n_batches=3)])
    expected_weights, expected_history = run([])

    assert history.keys() - expected_history.keys() == {
        key for key in history if key.startswith(("grad_norm/", "update_ratio/"))
    }
    for key in expected_history:
        np.testing.assert_allclose(history[key], expected_history[key], rtol=1e-6)
    for value, expected in zip(weights, expected_weights):
        np.testing.assert_allclose(value, expected, rtol=1e-6)


@several_steps_per_call
@pytest.mark.parametrize("steps_per_execution, steps", [(2, [2, 4, 6, 8]), (8, [8])])
def test_counts_steps_with_steps_per_execution(steps_per_execution, steps):
    # 8 batches; a call of N steps is measured whole, its last step reported:
    # the first call, the calls crossing a multiple of 3, the last call.
    monitor = GradientMonitor(every_n_batches=3)
    history = train(mlp("relu", "he_normal", depth=2), monitor,
                    steps_per_execution=steps_per_execution)

    assert monitor.history["step"] == steps
    assert history["grad_norm/hidden_1"][0] > 0


@pytest.mark.parametrize(
    "steps_per_execution", [1, pytest.param(8, marks=several_steps_per_call)]
)
def test_works_beside_the_other_zero_argument_callbacks(steps_per_execution):
    from callbacks import ActivationMonitor, OutputLossCheck

    model = mlp("relu", "he_normal", depth=2)
    x, y = data()
    model.compile(optimizer="sgd", loss="binary_crossentropy",
                  steps_per_execution=steps_per_execution)
    model.make_train_function()
    own_function = model.train_function
    callbacks = [OutputLossCheck(), GradientMonitor(), ActivationMonitor()]
    history = model.fit(x, y, batch_size=16, epochs=2, callbacks=callbacks,
                        verbose=0).history

    assert len(history["grad_norm/hidden_1"]) == 2
    assert len(history["dead_fraction/hidden_1"]) == 2
    assert callbacks[1].history["step"] == (
        [1, 8, 16] if steps_per_execution == 1 else [8, 16]
    )
    assert model.train_function is own_function


@pytest.mark.parametrize("on_vanishing", ["stop", "raise"])
def test_on_vanishing_stops_or_raises(on_vanishing):
    keras.utils.set_random_seed(0)
    monitor = GradientMonitor(on_vanishing=on_vanishing, on_stalled="warn")
    if on_vanishing == "raise":
        with pytest.raises(RuntimeError, match="vanishing gradients.*hidden_1"):
            train(mlp("sigmoid"), monitor, epochs=3)
    else:
        with pytest.warns(UserWarning, match="Stopping training"):
            history = train(mlp("sigmoid"), monitor, epochs=3)
        assert len(history["loss"]) == 1


def test_deepcopy_and_reuse_across_two_fits():
    monitor = GradientMonitor()
    model = mlp("relu", "he_normal", depth=2)
    unused_copy = copy.deepcopy(monitor)
    train(model, monitor, epochs=2)
    trained_copy = copy.deepcopy(monitor)
    train(model, monitor, epochs=1)

    assert monitor.history["step"] == [1, 8]
    assert trained_copy.history["step"] == [1, 8, 16]
    assert unused_copy.history == {}
    train(mlp("relu", "he_normal", depth=2), trained_copy, epochs=1)
    assert trained_copy.history["step"] == [1, 8]


@tensorflow_only
def test_writes_gradient_histograms_for_tensorboard(tmp_path):
    train(mlp("relu", "he_normal", depth=2), GradientMonitor(histogram_dir=tmp_path))

    assert list(tmp_path.glob("events.out.tfevents.*"))


def test_get_config_round_trips_through_json():
    x = {"age": np.array([[1.5], [2.5]], "float32"), "city": np.array([["Oslo"], ["Rome"]])}
    for monitor in (
        GradientMonitor(probe=(x, np.array([0.0, 1.0])), every_n_batches=5,
                        vanishing_ratio=1e-4, on_exploding="raise"),
        GradientMonitor(min_update_ratio=1e-7, histogram_dir="logs"),
    ):
        config = json.loads(json.dumps(monitor.get_config()))
        restored = GradientMonitor.from_config(config)
        assert restored.get_config() == monitor.get_config()
    assert GradientMonitor.from_config(
        GradientMonitor(probe=(x, np.array([0.0, 1.0]))).get_config()
    ).probe[0]["age"].dtype == np.float32


def test_plot_writes_a_png(tmp_path):
    monitor = GradientMonitor()
    train(mlp("relu", "he_normal", depth=2), monitor)
    path = tmp_path / "gradients.png"
    monitor.plot(path)

    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"probe": np.zeros((4, 2))}, "probe=a ndarray"),
        ({"probe": (np.zeros((4, 2)), np.zeros(3))}, r"same, non-zero number of rows"),
        ({"every_n_batches": 0}, "every_n_batches=0"),
        ({"vanishing_ratio": 1.5}, "vanishing_ratio=1.5"),
        ({"exploding_factor": 0.5}, "exploding_factor=0.5"),
        ({"min_update_ratio": 0.5}, "min_update_ratio=0.5, max_update_ratio=0.1"),
        ({"on_vanishing": "ignore"}, "on_vanishing='ignore'"),
    ],
)
def test_invalid_arguments_name_the_received_value(kwargs, match):
    with pytest.raises(ValueError, match=match):
        GradientMonitor(**kwargs)


def test_unsupported_backend_raises_naming_it(monkeypatch):
    monkeypatch.setattr(keras.backend, "backend", lambda: "numpy")
    with pytest.raises(RuntimeError, match="active backend is 'numpy'"):
        GradientMonitor()


@tensorflow_only
def test_plugs_into_the_binary_template(template_data):
    from templates import binary
    from templates.training import TrainingConfig

    features, target, _ = template_data
    run = binary.train(features, target, config=TrainingConfig(hidden=(8,), epochs=2),
                       callbacks=[GradientMonitor()], verbose=0)

    assert run.history["grad_norm/hidden_1"][-1] > 0
    assert run.history["grad_norm/output"][-1] > 0
