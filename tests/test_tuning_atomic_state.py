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


def new_oracle(tmp_path):
    oracle = RandomSearchOracle(objective=OBJECTIVE, max_trials=3, seed=1, report=lambda line: None)
    set_project_dir(oracle, str(tmp_path), "trials")
    space = keras_tuner.HyperParameters()
    space.Int("width", 1, 1000)
    oracle.update_space(space)
    return oracle


def finish(oracle, trial, score, then_saved=True):
    """Ends `trial` as a tuner does: the oracle's `end_trial`, then the tuner's save."""
    oracle.update_trial(trial.trial_id, {OBJECTIVE.name: score})
    trial.status = "COMPLETED"
    oracle.end_trial(trial)
    if then_saved:
        oracle.save()


def test_a_trial_whose_start_a_kill_left_half_saved_runs_when_the_search_resumes(tmp_path):
    # KerasTuner writes a new trial's file before `oracle.json`: killed in
    # between, the reloaded oracle would not know the trial was started, and
    # a resumed search would end one trial short, that one never run.
    oracle = new_oracle(tmp_path)
    finish(oracle, oracle.create_trial("chief"), 1.0)
    with open(oracle_state_path(oracle)) as file:
        before_second = file.read()
    second = oracle.create_trial("chief")
    with open(oracle_state_path(oracle), "w") as file:
        file.write(before_second)  # the kill: `oracle.json` as before the second trial

    resumed = new_oracle(tmp_path)
    resumed.reload()
    retried = resumed.create_trial("chief")
    assert (retried.trial_id, retried.hyperparameters.values) == (
        second.trial_id, second.hyperparameters.values)
    finish(resumed, retried, 0.5)
    third = resumed.create_trial("chief")
    assert third.trial_id == "2" and third.hyperparameters.values != second.hyperparameters.values


def test_a_trial_a_kill_caught_just_finished_does_not_run_again(tmp_path):
    # `end_trial` saves `oracle.json` with the trial still ongoing; the
    # tuner's save after it would forget it. Killed before that save:
    oracle = new_oracle(tmp_path)
    first = oracle.create_trial("chief")
    finish(oracle, first, 1.0, then_saved=False)

    resumed = new_oracle(tmp_path)
    resumed.reload()
    assert resumed.create_trial("chief").trial_id == "1"
    assert resumed.trials[first.trial_id].status == "COMPLETED"
