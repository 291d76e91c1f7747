"""Specification of `templates.data_loss.DataLoss`: the loss without the L2 penalty."""

import keras
import numpy as np
import pytest

from templates.data_loss import DataLoss


def test_it_survives_a_config_round_trip():
    metric = DataLoss("binary_crossentropy", weight=0.25)
    copy = keras.metrics.deserialize(keras.metrics.serialize(metric))
    y_true, y_pred = np.array([[1.0], [0.0]]), np.array([[0.9], [0.2]])
    metric.update_state(y_true, y_pred)
    copy.update_state(y_true, y_pred)
    assert isinstance(copy, DataLoss) and copy.weight == 0.25
    assert float(copy.result()) == pytest.approx(float(metric.result()))


@pytest.mark.parametrize("loss", ["mse_typo", 3])
def test_an_unknown_loss_is_named(loss):
    with pytest.raises(ValueError, match=f"Received loss={loss!r}; expected a Keras loss, or the snake-case name"):
        DataLoss(loss)
