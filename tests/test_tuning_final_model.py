"""Specification of `tuning.final_model.retrain_ensemble`: the search's final model."""

import pytest

from templates.data import load_bundled
from templates.ensemble import ensemble_members
from templates.errors import TemplateError
from templates.recipe import prepare

GOOD = {"learning_rate": 0.01, "optimizer": "adam", "activation": "relu", "depth": 1,
        "width": 8, "dropout": 0.0, "l2": 0.0, "batch_size": 32}
DIVERGING = {**GOOD, "optimizer": "sgd", "learning_rate": 1e12, "activation": "tanh"}


@pytest.fixture(scope="module")
def diabetes():
    return prepare("regression", *load_bundled("diabetes"))


def retrain(data, configurations):
    from tuning.final_model import retrain_ensemble

    frame, labels, split, _ = data
    return retrain_ensemble("regression", frame, labels, split, configurations)


def test_the_final_model_averages_every_configuration(diabetes):
    final = retrain(diabetes, [(GOOD, 2), ({**GOOD, "width": 16}, 3)])
    assert final.members == [0, 1] and final.failures == {}
    assert len(ensemble_members(final.model)) == 2
    assert set(final.test) == {"mse", "mae", "r2"}


def test_a_configuration_that_diverges_is_left_out(diabetes):
    final = retrain(diabetes, [(DIVERGING, 2), (GOOD, 2)])
    assert final.members == [1] and list(final.failures) == [0]
    assert "became" in final.failures[0]
    assert ensemble_members(final.model) == [final.model]


def test_the_final_model_fails_clearly_when_every_configuration_diverges(diabetes):
    with pytest.raises(TemplateError, match="Retraining the best configurations diverged"):
        retrain(diabetes, [(DIVERGING, 2)])
