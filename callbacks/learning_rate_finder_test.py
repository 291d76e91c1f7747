import copy
import json
import warnings

import keras
import numpy as np
import pytest

from callbacks.learning_rate_finder import LearningRateFinder, suggest_learning_rates

BATCH_SIZE = 16

# Short sweeps in these tests barely move the loss; the warning has its test.
pytestmark = pytest.mark.filterwarnings(
    "ignore:LearningRateFinder sees no clear descent:UserWarning"
)


@pytest.fixture(scope="module")
def regression_data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 4)).astype("float32")
    coefficients = np.array([1.0, -2.0, 0.5, 3.0])
    noise = 0.1 * rng.normal(size=256)
    y = (x @ coefficients + noise).astype("float32")[:, None]
    return x, y


def linear_model(optimizer="sgd", **compile_kwargs):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer=optimizer, loss="mse", **compile_kwargs)
    return model


def model_state(model):
    return {
        "weights": [w.copy() for w in model.get_weights()],
        "optimizer": [v.numpy().copy() for v in model.optimizer.variables],
        "learning_rate": float(model.optimizer.learning_rate),
    }


def assert_same_state(actual, expected):
    assert actual["learning_rate"] == expected["learning_rate"]
    for key in ("weights", "optimizer"):
        assert len(actual[key]) == len(expected[key])
        for a, e in zip(actual[key], expected[key]):
            np.testing.assert_array_equal(a, e)


def synthetic_curve(bump_at=None):
    """A range test's curve: flat, a sigmoid descent centred on 1e-3, a blow-up.

    Rates from 1e-6 to 10, 20 points a decade. The loss falls from 2.0 to
    its minimum 0.51 at 10**-1.15, falls fastest at 1e-3, and has made 10%
    of that drop at 10**-3.75. `bump_at` raises one point by 0.03.
    """
    exponents = np.round(np.linspace(-6, 1, 141), 10)
    losses = 2 - 1.5 / (1 + np.exp(-3 * (exponents + 3))) + 0.5 * np.exp(
        4 * exponents
    )
    if bump_at is not None:
        losses[np.isclose(exponents, bump_at)] += 0.03
    return 10**exponents, losses


@pytest.mark.parametrize("bump_at", [None, -2.0], ids=["smooth", "bump"])
def test_suggestions_land_where_the_synthetic_curve_says(bump_at):
    rates, losses = synthetic_curve(bump_at)

    exponents = {
        name: np.log10(rate)
        for name, rate in suggest_learning_rates(rates, losses).items()
    }

    # One decade below the minimum at 10**-1.15.
    assert exponents["minimum"] == pytest.approx(-2.15, abs=1e-6)
    # The sigmoid's centre, to a point of the grid (0.05 decades).
    assert exponents["steepest"] == pytest.approx(-3.0, abs=0.05)
    # Halfway, in decades, through the descent from 10**-3.75 to the
    # minimum; the bump does not cut the valley short.
    assert exponents["valley"] == pytest.approx((-3.75 - 1.15) / 2, abs=1e-6)


@pytest.mark.parametrize(
    "rates, losses, received",
    [
        ([1e-3], [1.0], "Received 1 learning rates and 1 losses"),
        ([1e-3, 1e-2], [1.0], "Received 2 learning rates and 1 losses"),
        ([1e-3, 1e-2], [1.0, np.nan], "Received nan at position 1"),
    ],
)
def test_suggest_learning_rates_names_bad_input(rates, losses, received):
    with pytest.raises(ValueError, match=received):
        suggest_learning_rates(rates, losses)


def test_suggestions_are_within_10x_of_the_best_rate_of_a_grid_search(
    regression_data,
):
    x, y = regression_data
    model = linear_model()
    initial_weights = model.get_weights()
    with warnings.catch_warnings():
        # A clear descent: no warning.
        warnings.filterwarnings("error", message="LearningRateFinder")
        finder = LearningRateFinder.find(model, x, y, batch_size=BATCH_SIZE)

    # Plain SGD keeps no slots: resetting weights and the iteration count
    # gives a fresh copy of the model, without retracing per rate.
    final_losses = {}
    for rate in 10.0 ** np.arange(-4.0, 0.5, 0.5):
        model.set_weights(initial_weights)
        model.optimizer.iterations.assign(0)
        model.optimizer.learning_rate.assign(rate)
        history = model.fit(x, y, batch_size=BATCH_SIZE, epochs=3, verbose=0)
        final_losses[rate] = history.history["loss"][-1]
    best_rate = min(final_losses, key=final_losses.get)

    assert finder.suggested_learning_rate == finder.suggestions["minimum"]
    for name, rate in finder.suggestions.items():
        assert 0.1 <= rate / best_rate <= 10, (name, rate, final_losses)


def test_each_point_trains_at_its_own_learning_rate():
    # The loss is the kernel w (x = 1) and its gradient is 1, so plain SGD
    # lowers the next batch's loss by exactly the rate of this one. On JAX,
    # rates written from a callback and lost mid-epoch (keras#19054) would
    # show as equal steps.
    model = keras.Sequential(
        [
            keras.Input((1,)),
            keras.layers.Dense(1, use_bias=False, kernel_initializer="ones"),
        ]
    )
    model.compile(
        optimizer="sgd", loss=lambda y_true, y_pred: keras.ops.mean(y_pred)
    )
    x = np.ones((64, 1), "float32")
    finder = LearningRateFinder(min_lr=1e-3, max_lr=1e-1, num_steps=6)

    model.fit(x, x, batch_size=8, epochs=1, callbacks=[finder], verbose=0)

    np.testing.assert_allclose(
        -np.diff(finder.losses), finder.learning_rates[:-1], rtol=1e-3
    )


def test_warns_when_the_curve_shows_no_clear_descent(regression_data):
    x, y = regression_data

    # The whole data set in every batch, at rates too low to move the
    # loss: a flat curve.
    with pytest.warns(UserWarning, match="no clear descent"):
        finder = LearningRateFinder.find(
            linear_model(),
            x,
            y,
            batch_size=len(x),
            min_lr=1e-7,
            max_lr=1e-6,
            num_steps=10,
        )

    assert max(finder.losses) < 1.001 * min(finder.losses)
    assert set(finder.suggestions) == {"minimum", "steepest", "valley"}


def test_private_learning_rate_attribute_holds_the_schedule():
    # LearningRateFinder swaps a schedule through `optimizer._learning_rate`
    # (the public setter refuses to): this fails when Keras renames it.
    schedule = keras.optimizers.schedules.ExponentialDecay(0.1, 10, 0.5)

    assert keras.optimizers.SGD(schedule)._learning_rate is schedule


@pytest.mark.parametrize(
    "optimizer",
    [
        lambda: keras.optimizers.SGD(0.01, momentum=0.9),
        lambda: keras.optimizers.Adam(0.001),
    ],
    ids=["sgd_momentum", "adam"],
)
def test_sweep_leaves_weights_optimizer_state_and_rate_untouched(
    regression_data, optimizer
):
    x, y = regression_data
    model = linear_model(optimizer())
    model.fit(x, y, batch_size=BATCH_SIZE, epochs=1, verbose=0)
    before = model_state(model)

    finder = LearningRateFinder(min_lr=1e-4, max_lr=1.0, num_steps=20)
    model.fit(
        x, y, batch_size=BATCH_SIZE, epochs=5, callbacks=[finder], verbose=0
    )

    assert finder.losses
    assert_same_state(model_state(model), before)


def test_learning_rates_grow_exponentially_from_min_lr_to_max_lr(
    regression_data,
):
    x, y = regression_data
    finder = LearningRateFinder(min_lr=1e-4, max_lr=1e-2, num_steps=5)
    linear_model().fit(
        x, y, batch_size=BATCH_SIZE, epochs=1, callbacks=[finder], verbose=0
    )

    np.testing.assert_allclose(
        finder.learning_rates, [1e-4, 10**-3.5, 1e-3, 10**-2.5, 1e-2]
    )


def test_sweep_stops_training_after_num_steps(regression_data):
    x, y = regression_data
    finder = LearningRateFinder(min_lr=1e-4, max_lr=1e-2, num_steps=20)
    history = linear_model().fit(
        x, y, batch_size=BATCH_SIZE, epochs=50, callbacks=[finder], verbose=0
    )

    assert len(finder.losses) == 20
    assert len(finder.learning_rates) == 20
    # 16 batches per epoch: the 20th batch is in the second epoch.
    assert len(history.epoch) == 2


def test_sweep_stops_early_when_the_loss_diverges(regression_data):
    x, y = regression_data
    finder = LearningRateFinder.find(
        linear_model(), x, y, batch_size=BATCH_SIZE, min_lr=1e-3, max_lr=1e3
    )

    assert len(finder.losses) < finder.num_steps
    assert finder.learning_rates[-1] < 1e3
    assert finder.smoothed_losses[-1] > 4 * min(finder.smoothed_losses)
    assert finder.suggested_learning_rate < finder.learning_rates[-1]


def test_learning_rate_schedule_is_replaced_for_the_sweep_and_restored(
    regression_data,
):
    x, y = regression_data
    frozen = keras.optimizers.schedules.PiecewiseConstantDecay([10], [0.0, 0.0])
    model = linear_model(keras.optimizers.SGD(frozen))
    variable_count = len(model.optimizer.variables)
    initial_weights = model.get_weights()

    finder = LearningRateFinder.find(
        model, x, y, batch_size=BATCH_SIZE, min_lr=1e-3, max_lr=1.0
    )
    model.fit(x, y, batch_size=BATCH_SIZE, epochs=1, verbose=0)

    # The sweep trained at its own rates (the loss moved) ...
    assert min(finder.losses) < 0.5 * finder.losses[0]
    # ... and afterwards the schedule (rate 0) drives training again.
    assert model.optimizer.get_config()["learning_rate"]["class_name"] == (
        "PiecewiseConstantDecay"
    )
    assert len(model.optimizer.variables) == variable_count
    for actual, expected in zip(model.get_weights(), initial_weights):
        np.testing.assert_array_equal(actual, expected)


@pytest.mark.skipif(
    keras.backend.backend() == "torch",
    reason="Keras needs steps_per_execution=1 on PyTorch",
)
def test_steps_per_execution_records_one_point_per_execution(
    regression_data,
):
    x, y = regression_data
    model = linear_model(steps_per_execution=4)
    before = model_state(model)
    seen_batches = []
    probe = keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda batch, logs: seen_batches.append(batch)
    )

    finder = LearningRateFinder(min_lr=1e-4, max_lr=1e-1, num_steps=3)
    model.fit(
        x,
        y,
        batch_size=BATCH_SIZE,
        epochs=5,
        callbacks=[finder, probe],
        verbose=0,
    )

    assert len(finder.losses) == 3
    assert seen_batches == [3, 7, 11]
    assert_same_state(model_state(model), before)


def test_is_reusable_across_fit_calls(regression_data):
    x, y = regression_data
    model = linear_model()
    finder = LearningRateFinder(min_lr=1e-4, max_lr=1e-1, num_steps=10)
    for _ in range(2):
        model.fit(
            x, y, batch_size=BATCH_SIZE, epochs=5, callbacks=[finder], verbose=0
        )

        assert len(finder.losses) == 10
        assert len(finder.learning_rates) == 10


def test_deep_copy_runs_its_own_sweep(regression_data):
    x, y = regression_data
    finder = LearningRateFinder(min_lr=1e-4, max_lr=1e-1, num_steps=10)
    duplicate = copy.deepcopy(finder)
    linear_model().fit(
        x, y, batch_size=BATCH_SIZE, epochs=5, callbacks=[duplicate], verbose=0
    )

    assert len(duplicate.losses) == 10
    assert finder.losses == []
    assert duplicate.get_config() == finder.get_config()


def test_get_config_is_json_and_rebuilds_the_finder():
    finder = LearningRateFinder(min_lr=1e-5, max_lr=3.0, num_steps=50)
    config = json.loads(json.dumps(finder.get_config()))

    assert LearningRateFinder(**config).get_config() == config
    assert config["num_steps"] == 50


@pytest.mark.parametrize(
    "kwargs, received",
    [
        ({"min_lr": 0.0}, "min_lr=0.0"),
        ({"min_lr": 1.0, "max_lr": 0.1}, "max_lr=0.1"),
        ({"num_steps": 1}, "num_steps=1"),
        ({"num_steps": 10.5}, "num_steps=10.5"),
        ({"divergence_threshold": 1.0}, "divergence_threshold=1.0"),
        ({"smoothing": 1.0}, "smoothing=1.0"),
    ],
)
def test_invalid_argument_raises_naming_the_received_value(kwargs, received):
    with pytest.raises(ValueError, match=f"Received .*{received}"):
        LearningRateFinder(**kwargs)


def test_warns_when_fit_ends_before_the_sweep(regression_data):
    x, y = regression_data
    finder = LearningRateFinder(num_steps=100)

    with pytest.warns(UserWarning, match="ran 16 of 100 steps"):
        linear_model().fit(
            x, y, batch_size=BATCH_SIZE, epochs=1, callbacks=[finder], verbose=0
        )


@pytest.mark.parametrize(
    "max_lr", [1e-2, 1e3], ids=["complete_sweep", "diverged_sweep"]
)
def test_plot_writes_a_png(regression_data, tmp_path, max_lr):
    x, y = regression_data
    finder = LearningRateFinder.find(
        linear_model(), x, y, batch_size=BATCH_SIZE, min_lr=1e-3, max_lr=max_lr
    )
    path = tmp_path / "lr_finder.png"
    finder.plot(path)

    assert path.read_bytes().startswith(b"\x89PNG")


@pytest.mark.parametrize(
    "min_lr, max_lr, batch_size, title",
    [
        (1e-3, 1.0, BATCH_SIZE, ""),
        # All rows in every batch, rates too low to move the loss: flat.
        (1e-6, 1e-5, 256, "no clear descent: suggestions unreliable"),
    ],
    ids=["descent", "no_descent"],
)
def test_plot_draws_the_three_suggestions(
    regression_data, tmp_path, monkeypatch, min_lr, max_lr, batch_size, title
):
    from matplotlib.figure import Figure

    saved = []
    save = Figure.savefig
    monkeypatch.setattr(
        Figure,
        "savefig",
        lambda self, *args, **kwargs: (
            saved.append(self),
            save(self, *args, **kwargs),
        ),
    )
    x, y = regression_data
    finder = LearningRateFinder.find(
        linear_model(),
        x,
        y,
        batch_size=batch_size,
        min_lr=min_lr,
        max_lr=max_lr,
        num_steps=20,
    )
    finder.plot(tmp_path / "lr_finder.png")

    (axes,) = saved[0].axes
    labels = [text.get_text() for text in axes.get_legend().get_texts()]
    for name, label in [
        ("minimum", "minimum / 10"),
        ("steepest", "steepest slope"),
        ("valley", "valley"),
    ]:
        assert f"{label} {finder.suggestions[name]:.2g}" in labels
    assert axes.get_title() == title


def test_plot_before_a_sweep_raises(tmp_path):
    with pytest.raises(RuntimeError, match="needs a sweep"):
        LearningRateFinder().plot(tmp_path / "lr_finder.png")
