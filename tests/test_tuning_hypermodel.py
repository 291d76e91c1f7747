"""Specification of `tuning.hypermodel.TemplateHyperModel`: how a trial is scored."""

import keras
import keras_tuner
import numpy as np
import pytest

from templates.data import load_bundled
from templates.model import template_module
from templates.recipe import prepare_data
from templates.tasks import get_task
from tuning.hypermodel import OBJECTIVE, TemplateHyperModel
from tuning.space import narrow_space, template_space


def hypermodel_for(task, fixes, rows=None, **kwargs):
    features, target = load_bundled(get_task(task).default_dataset)
    if rows:
        features, target = features.head(rows), target.head(rows)
    data = prepare_data(task, features, target)
    template = template_module(task)
    space = narrow_space(fixes, template_space(template, data))
    hypermodel = TemplateHyperModel(template, data, space=space, **kwargs)
    hp = keras_tuner.HyperParameters()
    hypermodel.declare_hyperparameters(hp)
    return hypermodel, hp


@pytest.mark.parametrize("task", ["regression", "binary", "multiclass"])
def test_a_trial_is_scored_by_its_validation_loss_without_the_l2_penalty(task):
    hypermodel, hp = hypermodel_for(task, ["l2=0.1", "depth=1", "width=8", "batch_size=32"],
                                    rows=150, max_epochs=3, patience=3)
    model = hypermodel.build(hp)

    result = hypermodel.fit(hp, model)

    # The best epoch's weights are restored, so evaluating them again on the
    # validation rows gives the score back; the penalty is in `loss` only.
    logs = model.evaluate(hypermodel.data.validation_batches(), return_dict=True, verbose=0)
    assert 1 <= result["best_epoch"] <= 3
    assert result[OBJECTIVE] == pytest.approx(logs["data_loss"], rel=1e-4)
    # The other validation metrics are reported at the same epoch.
    assert result["val_loss"] == pytest.approx(logs["loss"], rel=1e-4)
    assert {f"val_{name}" for name in logs} <= set(result)
    penalty = sum(float(loss) for loss in model.losses)
    assert penalty > 0
    assert logs["loss"] == pytest.approx(logs["data_loss"] + penalty, rel=1e-3)


class BestValidationLossPerFit(keras.callbacks.Callback):
    """Records each `fit`'s best `val_data_loss` and its epoch."""

    def __init__(self):
        super().__init__()
        self.fits = []

    def on_train_begin(self, logs=None):
        self.fits.append([])

    def on_epoch_end(self, epoch, logs=None):
        self.fits[-1].append(logs[OBJECTIVE])


def test_a_cross_validated_trial_is_scored_by_the_mean_over_its_folds():
    hypermodel, hp = hypermodel_for("multiclass", ["depth=1", "width=8", "batch_size=32",
                                                   "learning_rate=0.01"],
                                    max_epochs=4, patience=2, folds=3)
    recorder = BestValidationLossPerFit()

    result = hypermodel.fit(hp, hypermodel.build(hp), callbacks=[recorder])

    assert len(recorder.fits) == 3
    assert result[OBJECTIVE] == pytest.approx(np.mean([min(fit) for fit in recorder.fits]))
    epochs = [int(np.argmin(fit)) + 1 for fit in recorder.fits]
    assert result["best_epoch"] == max(1, round(np.mean(epochs)))
    validation_rows = np.concatenate([rows for _, rows in hypermodel.fold_rows])
    assert sorted(validation_rows) == list(range(len(hypermodel.data.split.train)))


def test_a_second_fit_of_the_same_trial_model_starts_every_fold_afresh():
    # The trial's model is the first fold's, built fresh; once trained it is
    # no fresh start, and a second fit builds that fold again.
    hypermodel, hp = hypermodel_for("binary", ["depth=1", "width=8", "batch_size=32"],
                                    rows=150, max_epochs=3, patience=3, folds=3)
    model = hypermodel.build(hp)

    first = hypermodel.fit(hp, model)

    assert hypermodel.fit(hp, model) == pytest.approx(first, rel=1e-5)


@pytest.mark.parametrize("folds", [1, 3])
def test_a_trials_program_serves_its_fits_and_the_final_retraining_on_every_row(folds):
    hypermodel, _ = hypermodel_for("binary", [], rows=150, folds=folds)
    split = hypermodel.data.split
    every_row = (len(split.train) + len(split.validation), 0)  # nothing left to validate on
    fits = hypermodel.fold_row_counts() or [(len(split.train), len(split.validation))]
    assert len(fits) == folds
    assert hypermodel.program_row_counts() == [*fits, every_row]


def test_the_space_is_the_templates_own_declarations_in_their_order():
    hypermodel, hp = hypermodel_for("binary", [], rows=150)
    assert list(hypermodel.space) == ["activation", "l2", "dropout", "width", "depth",
                                      "learning_rate", "optimizer", "batch_size"]
    assert hp.values["l2"] == 0.1 and hp.values["batch_size"] == 32


def test_a_template_without_data_loss_fails_its_trials_with_a_message():
    import types

    from templates import binary

    def build_without_data_loss(hp, data):
        inputs, features = data.preprocessing()
        model = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(features))
        model.compile(optimizer="adam", loss="binary_crossentropy")
        return model

    template = types.SimpleNamespace(TASK="binary", build_model=build_without_data_loss,
                                     fit_model=binary.fit_model)
    data = prepare_data("binary", *(part.head(80) for part in load_bundled("breast_cancer")))
    hypermodel = TemplateHyperModel(template, data, max_epochs=1)
    hp = keras_tuner.HyperParameters()
    with pytest.raises(keras_tuner.errors.FailedTrialError, match="DataLoss"):
        hypermodel.fit(hp, hypermodel.build(hp))
