"""Specification of `templates.ensemble`: one model that averages template models."""

import numpy as np
import pandas as pd
import pytest

from templates.data import load_bundled
from templates.ensemble import average_models, ensemble_members
from templates.errors import TemplateError
from templates.model import build_model
from templates.predict import load_model, predict_frame
from templates.preprocessing import column_kinds, frame_to_inputs, text_vocabularies
from templates.recipe import model_info, predict
from templates.tasks import get_task


def members(task, count, features=None, hidden=(8,)):
    features = features if features is not None else load_bundled(get_task(task).default_dataset)[0]
    target = load_bundled(get_task(task).default_dataset)[1]
    labels = get_task(task).encode_labels(target)
    return features, [build_model(task, features, labels, hidden=hidden * (index + 1))
                      for index in range(count)]


@pytest.mark.parametrize("task", ["regression", "binary", "multiclass"])
def test_an_ensemble_predicts_the_mean_of_its_members(task):
    features, models = members(task, 3)
    inputs = frame_to_inputs(features.head(20), column_kinds(features), text_vocabularies(features))

    ensemble = average_models(models)

    expected = np.mean([predict(model, inputs) for model in models], axis=0)
    np.testing.assert_allclose(predict(ensemble, inputs), expected, rtol=1e-5, atol=1e-6)
    assert model_info(ensemble).task == task


# These members were never trained, so their optimizers hold no state to reload.
@pytest.mark.filterwarnings("ignore:Skipping variable loading for optimizer")
def test_a_saved_ensemble_predicts_raw_rows_like_a_template_model(tmp_path):
    features, models = members("multiclass", 2)
    ensemble = average_models(models)
    before = predict_frame(ensemble, features.head(5))

    ensemble.save(tmp_path / "ensemble.keras")
    loaded = load_model(str(tmp_path / "ensemble.keras"))

    assert len(ensemble_members(loaded)) == 2
    pd.testing.assert_frame_equal(predict_frame(loaded, features.head(5)), before)


def test_one_model_is_its_own_ensemble():
    _, models = members("binary", 1)
    assert average_models(models) is models[0]
    assert ensemble_members(models[0]) == models


def test_models_on_different_columns_are_refused():
    features, models = members("regression", 1)
    _, others = members("regression", 1, features=features.drop(columns=features.columns[0]))
    with pytest.raises(TemplateError, match="expected models trained on the same columns"):
        average_models([models[0], others[0]])


def test_no_models_are_refused():
    with pytest.raises(TemplateError, match="Received no models"):
        average_models([])


def test_a_model_without_named_columns_is_refused():
    import keras

    _, models = members("binary", 1)
    columns = keras.Input((3,))
    plain = keras.Model(columns, keras.layers.Dense(1, activation="sigmoid")(columns))
    with pytest.raises(TemplateError, match="does not take named columns"):
        average_models([models[0], plain])
