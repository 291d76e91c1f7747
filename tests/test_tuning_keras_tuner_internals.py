"""Specification of `tuning.keras_tuner_internals`: KerasTuner's private hooks still work as assumed.

One test per hook. When a KerasTuner release changes one, its test fails
with a message naming the hook and the installed version.
"""

import inspect
import os
from concurrent import futures

import grpc
import keras
import keras_tuner
import pytest
from keras_tuner.engine.trial import TrialStatus

from tuning import keras_tuner_internals as internals

VERSION = keras_tuner.__version__


def changed(hook, what):
    return (f"KerasTuner {VERSION}: the private hook {hook} no longer works as "
            f"tuning/keras_tuner_internals.py assumes: {what}")


def parameters(function):
    return list(inspect.signature(function).parameters)


class TinyHyperModel(keras_tuner.HyperModel):
    def build(self, hp):
        model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(hp.Int("units", 1, 4))])
        model.compile(loss="mse")
        return model

    def fit(self, hp, model, *args, **kwargs):
        return {"val_loss": 0.5}


@pytest.fixture
def oracle(tmp_path):
    oracle = keras_tuner.oracles.RandomSearchOracle(objective="val_loss", max_trials=2)
    internals.set_project_dir(oracle, str(tmp_path), "trials")
    return oracle


@pytest.fixture
def tuner(tmp_path):
    oracle = keras_tuner.oracles.RandomSearchOracle(objective="val_loss", max_trials=2)
    return keras_tuner.Tuner(oracle=oracle, hypermodel=TinyHyperModel(), directory=str(tmp_path),
                             project_name="trials")


@pytest.mark.parametrize("hook", sorted(internals.SIGNATURES))
def test_each_private_hook_exists_with_the_parameters_used(hook):
    owner, name, expected = internals.SIGNATURES[hook]
    assert hasattr(owner, name), changed(hook, "it does not exist")
    found = parameters(getattr(owner, name))
    assert found == expected, changed(hook, f"its parameters are {found}, expected {expected}")


def test_set_project_dir_and_oracle_state_path(oracle, tmp_path):
    hook = "Oracle._set_project_dir(directory, project_name) / Oracle._get_oracle_fname()"
    oracle.update_space(keras_tuner.HyperParameters())
    oracle.save()
    path = internals.oracle_state_path(oracle)
    assert path == os.path.join(str(tmp_path), "trials", "oracle.json"), changed(hook, path)
    assert os.path.isfile(path), changed(hook, "Oracle.save() does not write that file")


def test_trial_state_path(oracle):
    hook = "Oracle._get_trial_dir(trial_id)"
    oracle.update_space(keras_tuner.HyperParameters())
    trial = oracle.create_trial("chief")
    path = internals.trial_state_path(oracle, trial.trial_id)
    assert os.path.isfile(path), changed(hook, f"create_trial wrote no {path}")
    loaded = keras_tuner.engine.trial.Trial.load(path)
    assert loaded.trial_id == trial.trial_id, changed(hook, "the file holds another trial")


def test_save_trial_hook_is_called_for_every_trial_kerastuner_saves(tmp_path):
    hook = "Oracle._save_trial(trial)"
    saved = []

    class Oracle(internals.SaveTrialHook, keras_tuner.oracles.RandomSearchOracle):
        def save_trial(self, trial):
            saved.append((trial.trial_id, trial.status))
            super().save_trial(trial)

    oracle = Oracle(objective="val_loss", max_trials=2)
    internals.set_project_dir(oracle, str(tmp_path), "trials")
    oracle.update_space(keras_tuner.HyperParameters())
    trial = oracle.create_trial("chief")
    trial.status = TrialStatus.COMPLETED
    oracle.update_trial(trial.trial_id, {"val_loss": 0.5})
    oracle.end_trial(trial)
    assert saved and saved[0] == (trial.trial_id, TrialStatus.RUNNING), changed(
        hook, f"not called when a trial is created (calls: {saved})")
    assert saved[-1] == (trial.trial_id, TrialStatus.COMPLETED), changed(
        hook, f"not called when a trial ends (calls: {saved})")
    assert os.path.isfile(internals.trial_state_path(oracle, trial.trial_id)), changed(
        hook, "the default save_trial wrote no trial.json")


def test_is_worker(tuner, monkeypatch):
    hook = "BaseTuner._is_worker()"
    assert internals.is_worker(tuner) is False, changed(hook, "true without distributed mode")
    monkeypatch.setenv("KERASTUNER_ORACLE_IP", "127.0.0.1")
    monkeypatch.setenv("KERASTUNER_ORACLE_PORT", "8000")
    monkeypatch.setenv("KERASTUNER_TUNER_ID", "tuner0")
    assert internals.is_worker(tuner) is True, changed(hook, "false for KERASTUNER_TUNER_ID=tuner0")
    monkeypatch.setenv("KERASTUNER_TUNER_ID", "chief")
    assert internals.is_worker(tuner) is False, changed(hook, "true for KERASTUNER_TUNER_ID=chief")


def test_tuner_state_path(tuner, tmp_path):
    hook = "BaseTuner._get_tuner_fname()"
    path = internals.tuner_state_path(tuner)
    expected = os.path.join(str(tmp_path), "trials", f"{tuner.tuner_id}.json")
    assert path == expected, changed(hook, f"{path}, expected {expected}")


def test_populate_space_hook_is_called_once_by_the_tuners_constructor(tmp_path):
    hook = "BaseTuner._populate_initial_space()"
    calls = []

    class Tuner(internals.PopulateSpaceHook, keras_tuner.Tuner):
        def populate_initial_space(self):
            calls.append(True)
            super().populate_initial_space()

    oracle = keras_tuner.oracles.RandomSearchOracle(objective="val_loss", max_trials=1)
    tuner = Tuner(oracle=oracle, hypermodel=TinyHyperModel(), directory=str(tmp_path))
    assert calls == [True], changed(hook, f"called {len(calls)} times by the constructor")
    assert "units" in tuner.oracle.get_space(), changed(hook, "the default no longer declares the space")


def test_trial_callbacks_are_deep_copies_with_a_tensorboard_folder_per_trial(tuner, tmp_path):
    hook = "Tuner._deepcopy_callbacks(callbacks) / Tuner._configure_tensorboard_dir(callbacks, trial)"
    tuner.oracle.update_space(keras_tuner.HyperParameters())
    trial = tuner.oracle.create_trial(tuner.tuner_id)
    stop = keras.callbacks.EarlyStopping()
    board = keras.callbacks.TensorBoard(log_dir=str(tmp_path / "logs"))
    copies = internals.trial_callbacks(tuner, trial, [stop, board])
    assert isinstance(copies[0], keras.callbacks.EarlyStopping) and copies[0] is not stop, changed(
        hook, "the callbacks are not copied")
    assert copies[1].log_dir.startswith(os.path.join(str(tmp_path / "logs"), trial.trial_id)), changed(
        hook, f"TensorBoard writes to {copies[1].log_dir}")
    assert board.log_dir == str(tmp_path / "logs"), changed(hook, "the caller's callback was changed")


def test_checkpoint_path_is_in_the_trials_folder(tuner):
    hook = "Tuner._get_checkpoint_fname(trial_id)"
    path = internals.checkpoint_path(tuner, "07")
    assert os.path.dirname(path) == tuner.get_trial_dir("07"), changed(hook, path)
    assert path.endswith(".weights.h5"), changed(hook, f"{path} is not a Keras 3 weights file")


def test_build_and_fit_builds_the_trials_model_and_returns_its_results(tuner):
    hook = "Tuner._build_and_fit_model(trial, *args, **kwargs)"
    tuner.oracle.update_space(keras_tuner.HyperParameters())
    trial = tuner.oracle.create_trial(tuner.tuner_id)
    build_and_fit = internals.build_and_fit(tuner)
    assert parameters(build_and_fit) == ["trial", "args", "kwargs"], changed(
        hook, f"its parameters are {parameters(build_and_fit)}")
    assert build_and_fit(trial, callbacks=[]) == {"val_loss": 0.5}, changed(
        hook, "it does not return the hypermodel's results")


def random_oracle(tmp_path, space, max_trials):
    oracle = keras_tuner.oracles.RandomSearchOracle(objective="val_loss", max_trials=max_trials,
                                                    seed=3)
    internals.set_project_dir(oracle, str(tmp_path), "trials")
    oracle.update_space(space)
    return oracle


def run_trial(oracle, index):
    trial = oracle.create_trial(f"tuner{index}")
    oracle.update_trial(trial.trial_id, {"val_loss": float(index)})
    oracle.end_trial(trial)
    return trial


def test_next_random_values_and_ids_are_those_of_the_next_trials(tmp_path):
    hook = "Oracle._random_values(), _seed_state, _tried_so_far and _compute_values_hash"
    space = keras_tuner.HyperParameters()
    space.Int("units", 1, 4)  # 8 values: later draws collide with values already tried
    space.Choice("activation", ["relu", "tanh"])
    oracle = random_oracle(tmp_path, space, max_trials=12)
    for index in range(7):
        expected = internals.next_random_values(oracle, count=3)
        expected_ids = internals.next_trial_ids(oracle, count=3)
        assert internals.next_random_values(oracle, count=3) == expected, changed(
            hook, "looking ahead changed the next values")
        trial = run_trial(oracle, index)
        assert trial.hyperparameters.values == expected[0], changed(
            hook, f"trial {index} drew {trial.hyperparameters.values}, expected {expected[0]}")
        assert trial.trial_id == expected_ids[0], changed(
            "Oracle.create_trial's trial IDs", f"{trial.trial_id!r}, expected {expected_ids[0]!r}")
        following = internals.next_random_values(oracle, count=2)
        assert following == expected[1:len(following) + 1], changed(
            hook, f"after trial {index}, the next values are {following}, expected {expected[1:]}")
        assert internals.next_trial_ids(oracle, count=2) == expected_ids[1:]


def test_next_random_values_stop_where_every_value_was_tried(tmp_path):
    space = keras_tuner.HyperParameters()
    space.Choice("activation", ["relu", "tanh", "gelu"])
    oracle = random_oracle(tmp_path, space, max_trials=5)
    run_trial(oracle, 0)
    ahead = internals.next_random_values(oracle, count=3)
    assert len(ahead) == 2 and {values["activation"] for values in ahead} | {
        oracle.trials["0"].hyperparameters.values["activation"]} == {"relu", "tanh", "gelu"}
    run_trial(oracle, 1)
    run_trial(oracle, 2)
    assert internals.next_random_values(oracle, count=2) == []


def test_hyperband_constructor_does_only_what_the_oracle_bypass_skips(tmp_path):
    hook = "Hyperband.__init__ (skipped for keras_tuner.Tuner.__init__)"
    source = inspect.getsource(keras_tuner.Hyperband.__init__)
    assert "HyperbandOracle(" in source and "super().__init__(oracle=oracle" in source, changed(
        hook, "it does more than build a HyperbandOracle and call Tuner.__init__")
    oracle = keras_tuner.oracles.HyperbandOracle(objective="val_loss", max_epochs=4)
    bypassed = internals.HyperbandTunerWithOracle(oracle, TinyHyperModel(),
                                                  directory=str(tmp_path), project_name="a")
    built = keras_tuner.Hyperband(TinyHyperModel(), objective="val_loss", max_epochs=4,
                                  directory=str(tmp_path), project_name="b")
    assert bypassed.oracle is oracle
    assert set(vars(bypassed)) == set(vars(built)), changed(
        hook, f"attributes differ: {sorted(set(vars(bypassed)) ^ set(vars(built)))}")


def test_chief_service_serves_the_oracle_and_reports_the_end(oracle):
    hook = "distribute.oracle_chief (OracleServicer, exit_chief) and protos"
    oracle.update_space(keras_tuner.HyperParameters())
    servicer = internals.oracle_servicer(oracle)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    internals.add_servicer(servicer, server)
    assert internals.stop_requested(servicer) is False, changed(hook, "stop requested before any trial")
    assert "stop_triggered = True" in inspect.getsource(type(servicer).CreateTrial), changed(
        hook, "CreateTrial no longer sets stop_triggered when the oracle stops")
    oracle.tuner_ids.add("tuner0")
    assert not internals.workers_done(oracle), changed(hook, "done while a worker is registered")
    oracle.tuner_ids.clear()
    assert internals.workers_done(oracle), changed(hook, "not done with no worker and no trial")
    assert internals.CHIEF_TIMEOUT_SECONDS > 0, changed(hook, "oracle_client.TIMEOUT")
