"""Specification of `tuning.atomic_state`: a killed save leaves the previous state file."""

import json

import keras_tuner
import pytest

from tuning.keras_tuner_internals import oracle_state_path, set_project_dir, trial_state_path
from tuning.tuners import OBJECTIVE, RandomSearchOracle


@pytest.fixture
def oracle(tmp_path):
    oracle = RandomSearchOracle(objective=OBJECTIVE, max_trials=3, report=lambda line: None)
    set_project_dir(oracle, str(tmp_path), "trials")
    oracle.update_space(keras_tuner.HyperParameters())
    oracle.save()
    return oracle


def test_a_save_that_dies_midway_leaves_the_previous_file(oracle, monkeypatch):
    path = oracle_state_path(oracle)
    with open(path) as file:
        before = file.read()

    def die_midway(payload, file, **kwargs):
        file.write("{")
        raise KeyboardInterrupt  # as a kill would, between truncating and writing

    oracle.seed += 1  # something new to save
    monkeypatch.setattr(json, "dump", die_midway)
    with pytest.raises(KeyboardInterrupt):
        oracle.save()
    with open(path) as file:
        assert file.read() == before
    json.loads(before)


def test_trial_files_reload_after_an_atomic_save(oracle):
    trial = oracle.create_trial("chief")
    reloaded = keras_tuner.engine.trial.Trial.load(trial_state_path(oracle, trial.trial_id))
    assert reloaded.trial_id == trial.trial_id and reloaded.status == trial.status
