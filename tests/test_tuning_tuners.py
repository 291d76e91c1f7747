"""Specification of `tuning.tuners`: what a trial leaves behind for the tuners."""

import os

import keras
import numpy as np

from tuning.tuners import TrialCheckpoint, fit_then_save


def small_model(seed):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])


def test_a_trial_saves_its_checkpoint_once_with_the_weights_of_the_fit_that_ended_last(
        tmp_path):
    path = str(tmp_path / "checkpoint.weights.h5")
    saver = TrialCheckpoint(path)
    first_fold, last_fold = small_model(1), small_model(2)
    saved_during_fits = []

    def fit(folds, callbacks):
        for model in folds:  # each fold's fit calls its callbacks' end hook
            for callback in callbacks:
                callback.set_model(model)
                callback.on_train_end()
        saved_during_fits.append(os.path.exists(path))
        return {"val_data_loss": 0.5}

    assert fit_then_save(fit, saver, [first_fold, last_fold], callbacks=[saver]) == {
        "val_data_loss": 0.5}
    assert saved_during_fits == [False]
    restored = small_model(3)
    restored.load_weights(path)
    for restored_weight, weight in zip(restored.get_weights(), last_fold.get_weights(),
                                       strict=True):
        np.testing.assert_array_equal(restored_weight, weight)


def test_a_trial_whose_fit_never_ended_saves_no_checkpoint(tmp_path):
    path = tmp_path / "checkpoint.weights.h5"
    fit_then_save(lambda callbacks: {}, TrialCheckpoint(str(path)), callbacks=[])
    assert not path.exists()
