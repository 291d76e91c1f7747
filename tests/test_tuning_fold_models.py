"""Specification of `tuning.fold_models`: the folds of a trial share one compiled model."""

import keras
import keras_tuner
import numpy as np
import pandas as pd
import pytest

from templates import binary, regression
from templates.data import load_bundled
from templates.recipe import prepare_data
from tuning import fold_models
from tuning.hypermodel import TemplateHyperModel
from tuning.space import narrow_space, template_space

SETTINGS = ["depth=1", "width=8", "batch_size=32", "dropout=0.2", "learning_rate=0.01"]


class ModelsSeen(keras.callbacks.Callback):
    """Records the model each `fit` trains."""

    def __init__(self):
        super().__init__()
        self.models = []

    def on_train_begin(self, logs=None):
        self.models.append(self.model)


def cross_validated_trial(template, task, rows, fixes=SETTINGS):
    features, target = load_bundled({"binary": "breast_cancer", "regression": "diabetes"}[task])
    data = prepare_data(task, features.head(rows), target.head(rows))
    space = narrow_space(fixes, template_space(template, data))
    hypermodel = TemplateHyperModel(template, data, space=space, max_epochs=3, patience=3,
                                    folds=3)
    hp = keras_tuner.HyperParameters()
    hypermodel.declare_hyperparameters(hp)
    return hypermodel, hp


def fold_pair(template, task, rows=120, fixes=SETTINGS):
    """Two compiled models of the same trial, built on the rows of two folds."""
    hypermodel, hp = cross_validated_trial(template, task, rows, fixes)
    train = hypermodel.data.split.train
    return [hypermodel.build_on(hp, hypermodel.data.with_rows(train[train_rows],
                                                               train[validation_rows]))
            for train_rows, validation_rows in hypermodel.fold_rows[:2]]


def test_the_folds_of_a_trial_train_in_one_model_and_score_as_separate_models_would(
        monkeypatch):
    hypermodel, hp = cross_validated_trial(binary, "binary", rows=150)
    seen = ModelsSeen()
    model = hypermodel.build(hp)
    shared = hypermodel.fit(hp, model, callbacks=[seen])

    # Each fold trained in the trial's model, so its compiled steps served all three.
    assert len(seen.models) == 3 and all(each is model for each in seen.models)

    monkeypatch.setattr(fold_models, "can_share", lambda model, other: False)
    separate_seen = ModelsSeen()
    separate = hypermodel.fit(hp, hypermodel.build(hp), callbacks=[separate_seen])

    assert len({id(each) for each in separate_seen.models}) == 3
    # Same initial weights, statistics, dropout seeds and optimizer state:
    # the same scores, to float32 round-off.
    assert separate.keys() == shared.keys()
    for name, value in separate.items():
        assert shared[name] == pytest.approx(value, rel=1e-5, abs=1e-7), name


def test_a_copied_state_predicts_as_its_source_and_saves_its_statistics():
    first, second = fold_pair(binary, "binary")
    assert fold_models.can_share(first, second)
    data = prepare_data("binary", *(part.head(120) for part in load_bundled("breast_cancer")))
    inputs, labels = data.inputs(np.arange(32))
    # `first` has trained: its weights and optimizer state are no longer a fresh model's.
    first.fit(inputs, labels, epochs=1, verbose=0)
    assert int(first.optimizer.iterations.numpy()) > 0

    fold_models.copy_state(second, first)

    np.testing.assert_allclose(first.predict(inputs, verbose=0),
                               second.predict(inputs, verbose=0), rtol=1e-6)
    statistics = [model.get_layer("normalize_numeric").get_config()["mean"]
                  for model in (first, second)]
    assert statistics[0] == statistics[1]
    # Fresh optimizer state: the step count starts again from zero.
    assert int(first.optimizer.iterations.numpy()) == 0


def test_models_of_other_widths_do_not_share():
    narrow = fold_pair(binary, "binary")[0]
    wide = fold_pair(binary, "binary", fixes=[*SETTINGS, "width=16"])[0]
    assert not fold_models.can_share(narrow, wide)


def test_the_regression_templates_folds_do_not_share_their_target_scaling_differs():
    first, second = fold_pair(regression, "regression")
    assert not fold_models.can_share(first, second)
    # It differs only in settings a compiled JAX program takes as arguments.
    assert fold_models.same_program(first, second)


def test_models_of_other_widths_run_other_programs():
    narrow = fold_pair(regression, "regression")[0]
    wide = fold_pair(regression, "regression", fixes=[*SETTINGS, "width=16"])[0]
    assert not fold_models.same_program(narrow, wide)


def test_folds_with_different_text_vocabularies_do_not_share():
    features, target = load_bundled("breast_cancer")
    features = features.head(120).copy()
    # A text column whose values differ between the first and last rows.
    features["region"] = pd.Series([f"r{row // 40}" for row in range(120)], dtype=object)
    data = prepare_data("binary", features, target.head(120))
    space = narrow_space(SETTINGS, template_space(binary, data))
    hp = keras_tuner.HyperParameters()
    hypermodel = TemplateHyperModel(binary, data, space=space)
    hypermodel.declare_hyperparameters(hp)
    train = data.split.train
    first = hypermodel.build_on(hp, data.with_rows(train[:30], train[30:40]))
    second = hypermodel.build_on(hp, data.with_rows(train[-30:], train[:10]))
    assert not fold_models.can_share(first, second)


def test_subclassed_and_lambda_models_never_share():
    class Subclassed(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(1)

        def call(self, inputs):
            return self.dense(inputs)

    def compiled(model):
        model.compile("adam", "mse")
        model(np.zeros((1, 2), "float32"))
        return model

    assert not fold_models.can_share(compiled(Subclassed()), compiled(Subclassed()))

    def with_lambda(offset):
        inputs = keras.Input((2,))
        return compiled(keras.Model(inputs, keras.layers.Lambda(lambda x: x + offset)(inputs)))

    assert not fold_models.can_share(with_lambda(1.0), with_lambda(2.0))
