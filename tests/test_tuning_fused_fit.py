"""Specification of `tuning.fused_fit`: a whole `fit` as one compiled JAX program, as Keras runs it.

The tests that train run on JAX (`tests/test_backends.py` runs this file
with `KERAS_BACKEND=jax`); on TensorFlow, `fused` leaves Keras' `fit` alone.
"""

import gc
import weakref

import keras
import keras_tuner
import numpy as np
import pytest
from keras_tuner.errors import FailedTrialError

from templates import binary, regression
from templates.batches import ArrayBatches
from templates.data import load_bundled
from templates.recipe import FixedHyperParameters, prepare_data
from templates.training import TrainingConfig, seed_everything
from tuning import fold_models, fused_fit, keras_internals
from tuning.fail_on_nan import FailOnNaN
from tuning.hypermodel import OBJECTIVE, TemplateHyperModel

on_jax = pytest.mark.skipif(keras.backend.backend() != "jax", reason="runs on JAX only")
SMALL = {"depth": 1, "width": 8, "batch_size": 32, "learning_rate": 0.05, "dropout": 0.2,
         "l2": 1e-4, "optimizer": "adam", "activation": "relu"}


class WeightsAtEnd(keras.callbacks.Callback):
    """Acts only when training ends, as a trial's checkpoint does."""

    def on_train_end(self, logs=None):
        self.weights = self.model.get_weights()


@pytest.fixture(scope="module")
def data():
    features, target = load_bundled("breast_cancer")
    return prepare_data("binary", features.head(160), target.head(160))


def template_fit(data, fused, *, epochs=40, patience=2, callbacks=(), values=SMALL):
    """Builds the binary template's model and fits it as a trial does."""
    seed_everything(7)
    hp = FixedHyperParameters(values)
    model = binary.build_model(hp, data)
    config = TrainingConfig(epochs=epochs, patience=patience, monitor=OBJECTIVE, seed=7)
    callbacks = [FailOnNaN(), *callbacks]
    if not fused:
        history = binary.fit_model(hp, model, data, config, callbacks=callbacks, progress=False)
        return model, history, None
    with fused_fit.fused(model) as record:
        history = binary.fit_model(hp, model, data, config, callbacks=callbacks, progress=False)
    return model, history, record


def fixed_hyperparameters(values=SMALL):
    hp = keras_tuner.HyperParameters()
    for name, value in values.items():
        hp.Fixed(name, value)
    return hp


def recorded_runs(monkeypatch):
    """The names of the threads that ran each compiled program."""
    import threading

    threads, run = [], fused_fit._run
    monkeypatch.setattr(fused_fit, "_run", lambda *args: threads.append(
        threading.current_thread().name) or run(*args))
    return threads


def assert_same_weights(expected, actual):
    # The program compiles with other XLA options than Keras' own steps
    # (`fused_fit.COMPILER_OPTIONS`), which order some float operations
    # differently: weights near zero then differ in their last bits, below
    # float32's resolution at 1 (1.2e-7), the scale of the weights.
    np.testing.assert_allclose(actual, expected, rtol=1e-6, atol=1e-7)


def assert_same_history(expected, actual):
    assert actual.epoch == expected.epoch
    assert sorted(actual.history) == sorted(expected.history)
    for name, values in expected.history.items():
        np.testing.assert_allclose(actual.history[name], values, rtol=1e-6, err_msg=name)


@on_jax
def test_a_fused_fit_trains_as_keras_fit_does_early_stopping_and_best_weights_included(data):
    at_end = WeightsAtEnd(), WeightsAtEnd()
    keras_model, keras_history, _ = template_fit(data, fused=False, callbacks=[at_end[0]])
    model, history, record = template_fit(data, fused=True, callbacks=[at_end[1]])

    assert record.fused == 1 and record.keras == []
    assert len(history.epoch) < 40  # early stopping ended it, as in Keras' loop
    assert_same_history(keras_history, history)
    # The best epoch's weights are restored before the end-of-training callbacks run.
    for expected, actual in zip(keras_model.get_weights(), model.get_weights(), strict=True):
        assert_same_weights(expected, actual)
    for expected, actual in zip(*(callback.weights for callback in at_end), strict=True):
        assert_same_weights(expected, actual)
    assert int(model.optimizer.iterations) == int(keras_model.optimizer.iterations)
    assert model.history is history and "fit" not in vars(model)


@on_jax
@pytest.mark.parametrize("settings", [
    {"monitor": "val_accuracy", "mode": "max", "min_delta": 0.01, "patience": 2},
    {"monitor": "val_loss", "patience": 1, "start_from_epoch": 3, "baseline": 0.5},
    {"monitor": "loss", "patience": 1, "restore_best_weights": False},
], ids=["max-min_delta", "start_from_epoch-baseline", "train-loss-no-restore"])
def test_early_stopping_settings_stop_and_restore_as_in_keras_loop(data, settings):
    def fit(fused):
        seed_everything(5)
        model = binary.build_model(FixedHyperParameters(SMALL), data)
        stopping = keras.callbacks.EarlyStopping(**{"restore_best_weights": True, **settings})
        arguments = {"x": data.training_batches(32, seed=5),
                     "validation_data": data.validation_batches(), "epochs": 25,
                     "callbacks": [stopping], "verbose": 0, "shuffle": False}
        if not fused:
            return model, model.fit(**arguments), stopping
        with fused_fit.fused(model) as record:
            history = model.fit(**arguments)
        assert record.fused == 1, record.keras
        return model, history, stopping

    (keras_model, expected, in_keras), (model, actual, stopping) = fit(False), fit(True)
    # Each stops early, after its best epoch: the stop and the restore both show.
    assert in_keras.best_epoch < in_keras.stopped_epoch < 24
    assert_same_history(expected, actual)
    for name in ("stopped_epoch", "best_epoch", "wait"):
        assert getattr(stopping, name) == getattr(in_keras, name), name
    assert stopping.best == pytest.approx(in_keras.best, rel=1e-6)
    for expected_weights, weights in zip(keras_model.get_weights(), model.get_weights(),
                                         strict=True):
        assert_same_weights(expected_weights, weights)


@on_jax
def test_a_fit_without_validation_rows_trains_as_keras_fit_does(data):
    def fit(fused):
        seed_everything(3)
        model = binary.build_model(FixedHyperParameters(SMALL), data)
        batches = data.training_batches(32, seed=3)
        if not fused:
            return model.fit(batches, epochs=4, callbacks=[FailOnNaN()], verbose=0, shuffle=False)
        with fused_fit.fused(model) as record:
            history = model.fit(batches, epochs=4, callbacks=[FailOnNaN()], verbose=0,
                                shuffle=False)
        assert record.fused == 1
        return history

    assert_same_history(fit(fused=False), fit(fused=True))


@on_jax
def test_folds_of_different_sizes_share_one_program_and_each_trains_as_keras_fit_does(data):
    rows = data.split.train
    folds = [(rows[:70], rows[70:101]), (rows[:72], rows[72:101]), (rows[:71], rows[71:101])]
    row_counts = [(len(train), len(validation)) for train, validation in folds]
    hp = FixedHyperParameters(SMALL)
    config = TrainingConfig(epochs=5, patience=5, monitor=OBJECTIVE, seed=7)
    seed_everything(7)
    shared = binary.build_model(hp, data)
    for train, validation in folds:
        fold = data.with_rows(train, validation)
        seed_everything(7)
        expected = binary.fit_model(hp, binary.build_model(hp, fold), fold, config,
                                    progress=False)
        seed_everything(7)
        fold_models.copy_state(binary.build_model(hp, fold), shared)  # as a trial does
        with fused_fit.fused(shared, row_counts=row_counts) as record:
            history = binary.fit_model(hp, shared, fold, config, progress=False)
        assert record.fused == 1
        assert_same_history(expected, history)
    assert len(fused_fit._programs[shared]) == 1  # one compiled program


@pytest.fixture
def compilation_cache_hits(tmp_path):
    """Counts the programs JAX reads back from a persistent compilation cache, empty at first."""
    import jax
    from jax.experimental.compilation_cache import compilation_cache

    previous = jax.config.jax_compilation_cache_dir
    compilation_cache.set_cache_dir(str(tmp_path / "jax-cache"))
    compilation_cache.reset_cache()
    hits = []

    def listen(event, **kwargs):
        if event == "/jax/compilation_cache/cache_hits":
            hits.append(event)

    jax.monitoring.register_event_listener(listen)
    yield hits
    jax.monitoring.unregister_event_listener(listen)
    compilation_cache.set_cache_dir(previous)
    compilation_cache.reset_cache()


@on_jax
def test_early_stopping_settings_are_arguments_of_one_compiled_program(data):
    def fit(model, settings, fused):
        arguments = {"x": data.training_batches(32, seed=5),
                     "validation_data": data.validation_batches(), "epochs": 12, "verbose": 0,
                     "shuffle": False, "callbacks": [keras.callbacks.EarlyStopping(**settings)]}
        if not fused:
            return model.fit(**arguments)
        with fused_fit.fused(model) as record:
            history = model.fit(**arguments)
        assert record.fused == 1, record.keras
        return history

    seed_everything(5)
    model = binary.build_model(FixedHyperParameters(SMALL), data)
    initial = [np.array(variable.value) for variable in fold_models.training_state(model)]
    epochs = []
    for settings in ({"monitor": "val_loss", "patience": 1},
                     {"monitor": "val_accuracy", "mode": "max", "patience": 3, "min_delta": 0.01},
                     {"monitor": "loss", "patience": 2, "restore_best_weights": False}):
        for variable, value in zip(fold_models.training_state(model), initial, strict=True):
            variable.assign(value)
        history = fit(model, settings, fused=True)
        seed_everything(5)
        assert_same_history(fit(binary.build_model(FixedHyperParameters(SMALL), data), settings,
                                fused=False), history)
        epochs.append(len(history.epoch))
    assert len(set(epochs)) > 1  # the settings stopped the fits at different epochs
    (program,) = fused_fit._programs[model].values()
    assert len(program.compiled) == 1


@on_jax
def test_a_final_retraining_runs_the_program_its_trial_compiled(data, compilation_cache_hits):
    # A trial: a fold with validation rows and early stopping, 40 epochs at most.
    rows, all_rows = data.split.train, np.concatenate([data.split.train, data.split.validation])
    fold = data.with_rows(rows[:90], rows[90:])
    row_counts = [(90, len(rows) - 90), (len(all_rows), 0)]
    hp = FixedHyperParameters(SMALL)
    config = TrainingConfig(epochs=40, patience=2, monitor=OBJECTIVE, seed=7)
    seed_everything(7)
    trial_model = binary.build_model(hp, fold)
    with fused_fit.fused(trial_model, row_counts=row_counts, max_epochs=40) as record:
        binary.fit_model(hp, trial_model, fold, config, callbacks=[FailOnNaN()], progress=False)
    assert record.fused == 1 and compilation_cache_hits == []

    # Its retraining, in a model of its own (as in another process): every
    # row, no validation, no early stopping, its best epoch count.
    everything = data.with_rows(all_rows)

    def retrain(fused):
        seed_everything(7)
        model = binary.build_model(hp, everything)
        arguments = {"x": everything.training_batches(32, seed=7), "epochs": 6,
                     "callbacks": [FailOnNaN()], "verbose": 0, "shuffle": False}
        if not fused:
            return model, model.fit(**arguments)
        with fused_fit.fused(model, row_counts=row_counts, max_epochs=40) as record:
            history = model.fit(**arguments)
        assert record.fused == 1, record.keras
        return model, history

    (keras_model, expected), (model, history) = retrain(fused=False), retrain(fused=True)
    assert len(compilation_cache_hits) == 1  # the trial's program, read back, not compiled
    assert_same_history(expected, history)
    assert sorted(history.history) == ["accuracy", "data_loss", "loss"]  # no validation
    for expected_weights, weights in zip(keras_model.get_weights(), model.get_weights(),
                                         strict=True):
        np.testing.assert_allclose(weights, expected_weights, rtol=1e-5, atol=1e-7)


@on_jax
def test_settings_computed_from_the_rows_are_arguments_of_one_program(compilation_cache_hits):
    # The regression template scales its target by the training rows' mean and
    # deviation (Rescaling, the loss weight, DataLoss' weight): two folds, each
    # in a model of its own, differ in those numbers and share one program.
    features, target = load_bundled("diabetes")
    data = prepare_data("regression", features.head(150), target.head(150))
    rows = data.split.train
    folds = [data.with_rows(rows[:60], rows[60:90]), data.with_rows(rows[30:90], rows[:30])]
    row_counts = [(60, 30), (60, 30)]
    hp = FixedHyperParameters(SMALL)
    config = TrainingConfig(epochs=8, patience=3, monitor=OBJECTIVE, seed=7)
    settings = []
    for fold in folds:
        seed_everything(7)
        expected = regression.fit_model(hp, regression.build_model(hp, fold), fold, config,
                                        progress=False)
        seed_everything(7)
        model = regression.build_model(hp, fold)
        with fused_fit.fused(model, row_counts=row_counts) as record:
            history = regression.fit_model(hp, model, fold, config, progress=False)
        assert record.fused == 1, record.keras
        assert_same_history(expected, history)
        settings.append(fused_fit.read_settings(model))
        # Traced as arguments, and left as they were.
        scaling = model.get_layer("to_target_units")
        assert (scaling.scale, scaling.offset) == (fold.target_std, fold.target_mean)
    assert len(settings[0]) == 4 and settings[0] != settings[1]
    assert len(compilation_cache_hits) == 1  # the second fold read the first's program


@on_jax
def test_a_model_trained_by_a_fused_fit_is_freed_with_its_program(data):
    model, history, record = template_fit(data, fused=True, epochs=2)
    assert record.fused == 1 and len(fused_fit._programs) >= 1
    freed = weakref.ref(model)
    del model, history
    gc.collect()
    assert freed() is None


@on_jax
def test_a_diverging_fit_fails_the_trial_as_with_keras_fit(data):
    diverging = {**SMALL, "optimizer": "sgd", "learning_rate": 1e6, "l2": 0.1}
    with pytest.raises(FailedTrialError, match="loss became") as in_keras:
        template_fit(data, fused=False, values=diverging)
    with pytest.raises(FailedTrialError) as fused:
        template_fit(data, fused=True, values=diverging)
    assert str(fused.value) == str(in_keras.value)


@on_jax
def test_a_callback_that_acts_every_epoch_runs_in_keras_own_loop(data):
    _, history, record = template_fit(data, fused=True, epochs=2,
                                      callbacks=[keras.callbacks.CSVLogger("/dev/null")])
    assert record.fused == 0 and "CSVLogger" in record.keras[0]
    assert len(history.epoch) == 2


@on_jax
def test_a_cross_validated_trial_scores_as_with_keras_fit(data, monkeypatch):
    hypermodel = TemplateHyperModel(binary, data, max_epochs=4, patience=4, folds=3)
    hp = fixed_hyperparameters()
    runs, builds = [], []
    run, build_on = fused_fit._FusedFit.run, hypermodel.build_on
    monkeypatch.setattr(fused_fit._FusedFit, "run", lambda self: runs.append(self) or run(self))
    monkeypatch.setattr(hypermodel, "build_on", lambda *args: builds.append(args) or build_on(*args))
    fused_scores = hypermodel.fit(hp, hypermodel.build(hp))
    assert len(runs) == 3  # every fold ran as one program
    assert len(builds) == 3  # the trial's model is the first fold's
    assert_scores_as_in_keras_loop(hypermodel, hp, fused_scores, monkeypatch)


def assert_scores_as_in_keras_loop(hypermodel, hp, fused_scores, monkeypatch):
    """The trial scored again with every fit in Keras' own loop gives `fused_scores`."""
    monkeypatch.setattr(fused_fit, "unsupported", lambda model, arguments: "disabled")
    keras_scores = hypermodel.fit(hp, hypermodel.build(hp))
    assert fused_scores.keys() == keras_scores.keys()
    for name, value in keras_scores.items():
        assert fused_scores[name] == pytest.approx(value, rel=1e-5), name


def recorded_fold_scores(monkeypatch):
    """Each fold's scores, in fold order, as the hypermodel reads them from its history."""
    from tuning import hypermodel

    scores, read = [], hypermodel._scores
    monkeypatch.setattr(hypermodel, "_scores", lambda *args: scores.append(read(*args)) or
                        scores[-1])
    return scores


@on_jax
def test_later_folds_run_ahead_beside_the_first_with_the_same_scores(data, monkeypatch):
    hp = fixed_hyperparameters()
    one_at_a_time = TemplateHyperModel(binary, data, max_epochs=6, patience=2, folds=3,
                                       parallel_folds=1)
    threads, fold_scores = recorded_runs(monkeypatch), recorded_fold_scores(monkeypatch)
    expected = one_at_a_time.fit(hp, one_at_a_time.build(hp))
    expected_folds = list(fold_scores)
    assert len(threads) == 3 and not any(name.startswith("fold") for name in threads)
    # The folds score differently: a fold given another's outputs would show.
    assert len({score["val_data_loss"] for score in expected_folds}) == 3

    side_by_side = TemplateHyperModel(binary, data, max_epochs=6, patience=2, folds=3,
                                      parallel_folds=2)
    threads.clear()
    fold_scores.clear()
    assert side_by_side.fit(hp, side_by_side.build(hp)) == expected  # bit for bit
    assert fold_scores == expected_folds  # fold by fold, in order
    # Each fold's program ran once, all of them on the two threads.
    assert len(threads) == 3 and all(name.startswith("fold") for name in threads)


@on_jax
def test_regression_folds_each_in_its_model_run_the_first_folds_program(monkeypatch):
    # The regression template's folds differ in their target scaling, so each
    # trains in a model of its own, with the first fold's program, side by side.
    features, target = load_bundled("diabetes")
    data = prepare_data("regression", features.head(150), target.head(150))
    hp = fixed_hyperparameters()
    hypermodel = TemplateHyperModel(regression, data, max_epochs=6, patience=2, folds=3,
                                    parallel_folds=2)
    threads, traced = recorded_runs(monkeypatch), []
    make_program = fused_fit._make_program
    monkeypatch.setattr(fused_fit, "_make_program", lambda model, shape: traced.append(
        model) or make_program(model, shape))
    fold_scores = recorded_fold_scores(monkeypatch)
    fused_scores = hypermodel.fit(hp, hypermodel.build(hp))
    assert len(traced) == 1  # one program for the three folds
    assert len(threads) == 3 and all(name.startswith("fold") for name in threads)
    assert len({score["val_data_loss"] for score in fold_scores}) == 3
    assert_scores_as_in_keras_loop(hypermodel, hp, fused_scores, monkeypatch)


def test_parallel_folds_below_one_is_refused_with_its_value(data):
    with pytest.raises(ValueError, match="parallel_folds=0"):
        TemplateHyperModel(binary, data, folds=3, parallel_folds=0)


@on_jax
def test_a_fold_whose_fit_differs_from_the_run_ahead_runs_its_own_program(data, monkeypatch):
    hp = fixed_hyperparameters()
    hypermodel = TemplateHyperModel(binary, data, max_epochs=6, patience=2, folds=3,
                                    parallel_folds=1)
    expected = hypermodel.fit(hp, hypermodel.build(hp))
    later_inputs = fused_fit._FusedFit._later_inputs

    def other_orders(self, folds):  # as if the later fits shuffled otherwise
        return [(*inputs[:3], inputs[3][:, ::-1].copy(), *inputs[4:])
                for inputs in later_inputs(self, folds)]

    monkeypatch.setattr(fused_fit._FusedFit, "_later_inputs", other_orders)
    threads = recorded_runs(monkeypatch)
    hypermodel.parallel_folds = 2
    assert hypermodel.fit(hp, hypermodel.build(hp)) == expected
    # Two runs ahead nobody took (cancelled, or finished unused), and three fits.
    assert 3 <= len(threads) <= 5
    assert len([name for name in threads if not name.startswith("fold")]) == 2


@on_jax
def test_the_program_compiles_with_the_quick_options_on_this_xla(data, monkeypatch):
    import jax

    calls = []
    compile_ = jax.stages.Lowered.compile

    def recording(self, *args, **kwargs):
        calls.append(kwargs.get("compiler_options"))
        return compile_(self, *args, **kwargs)

    monkeypatch.setattr(jax.stages.Lowered, "compile", recording)
    _, _, record = template_fit(data, fused=True, epochs=2)
    # Compiled once, with the options, and not retried with XLA's defaults.
    assert record.fused == 1 and calls == [fused_fit.COMPILER_OPTIONS]


@on_jax
def test_an_xla_release_without_the_quick_compile_options_compiles_with_its_defaults(
        data, monkeypatch):
    monkeypatch.setattr(fused_fit, "COMPILER_OPTIONS", {"xla_option_of_another_release": True})
    _, keras_history, _ = template_fit(data, fused=False, epochs=3)
    _, history, record = template_fit(data, fused=True, epochs=3)
    assert record.fused == 1
    assert_same_history(keras_history, history)


def test_fused_blocks_nest_and_leave_keras_fit_in_place():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    with fused_fit.fused(model):
        inner_fit = model.fit
        with fused_fit.fused(model):
            assert model.fit is not inner_fit
        assert model.fit is inner_fit
    assert "fit" not in vars(model) and model.fit.__func__ is type(model).fit


def test_what_the_compiled_program_does_not_reproduce_is_named():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    rows = {"x": np.zeros((8, 2), "float32")}
    train = ArrayBatches(rows, np.zeros(8, "float32"), batch_size=4, shuffle=True)
    arguments = {"x": train, "epochs": 2, "shuffle": False, "callbacks": [], "verbose": 0}
    if keras.backend.backend() != "jax":
        assert fused_fit.unsupported(model, arguments) == f"the {keras.backend.backend()} backend"
        return
    assert fused_fit.unsupported(model, arguments) is None
    cases = {
        "sample_weight=": {"sample_weight": np.ones(8)},
        "shuffle=True": {"shuffle": True},
        "training data other than": {"x": np.zeros((8, 2))},
        "validation data other than": {"validation_data": (np.zeros((2, 2)), np.zeros(2))},
        "the callback ProgbarLogger": {"callbacks": [keras.callbacks.ProgbarLogger()]},
        "the callback History": {"callbacks": [keras.callbacks.History()]},
        "verbose=1": {"verbose": 1},
        "no epoch to train": {"epochs": 2, "initial_epoch": 2},
    }
    for reason, changes in cases.items():
        assert reason in fused_fit.unsupported(model, {**arguments, **changes}), reason


def test_the_private_keras_methods_used_still_exist():
    for name, (owner, method) in keras_internals.PRIVATE_METHODS.items():
        assert callable(getattr(owner, method, None)), (
            f"Keras {keras.__version__} has no {name}: update tuning/keras_internals.py")


def test_the_private_keras_attributes_used_still_work():
    from templates.data_loss import DataLoss

    inputs = keras.Input((2,))
    inner = keras.Sequential([keras.Input((2,)), keras.layers.Dense(3, name="inner_dense")])
    model = keras.Model(inputs, keras.layers.Dense(1, name="output")(inner(inputs)))
    model.compile("adam", "mean_squared_error", loss_weights=0.5,
                  metrics=[DataLoss("mean_squared_error", weight=0.5)])
    keras_internals.build_for_fit(model, (np.ones((4, 2), "float32"), np.ones(4, "float32")))
    names = [layer.name for layer in keras_internals.nested_layers(model)]
    assert "inner_dense" in names and "output" in names
    assert keras_internals.compiled_loss_weights(model) == [0.5]
    keras_internals.set_compiled_loss_weight(model, 0, 0.25)
    assert keras_internals.compiled_loss_weights(model) == [0.25]
    assert [type(metric) for metric in keras_internals.compiled_metrics(model)] == [DataLoss]
    logs = model.evaluate(np.ones((4, 2)), np.zeros(4), return_dict=True, verbose=0)
    assert logs["loss"] == pytest.approx(logs["data_loss"] / 2)  # the weight in use: 0.25
