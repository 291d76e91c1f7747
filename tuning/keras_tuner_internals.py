"""Every use of KerasTuner's private API, each behind one small function or mixin.

KerasTuner's public API covers hypermodels, oracles and tuners; the search
here also needs a few of its private parts: where it writes its state files,
the hooks it calls to save a trial and to declare the search space, how it
prepares a trial's callbacks, and its gRPC chief. They may change in any
release, so nothing else in this project names them, and
`tests/test_tuning_keras_tuner_internals.py` checks each one against the
installed KerasTuner, naming the hook and the version when one has changed.
`setup.cfg` pins keras-tuner to the releases those tests pass on.

Example:

>>> import keras_tuner
>>> oracle = keras_tuner.oracles.RandomSearchOracle(objective="val_loss", max_trials=1)
>>> set_project_dir(oracle, "search", "trials")
>>> oracle_state_path(oracle).replace(os.sep, "/")
'search/trials/oracle.json'
"""

import os

import keras_tuner
from keras_tuner.src import protos
from keras_tuner.src.distribute import oracle_chief, oracle_client
from keras_tuner.src.engine.trial import TrialStatus

# How long a worker waits for its chief by default: KerasTuner's own limit.
CHIEF_TIMEOUT_SECONDS = oracle_client.TIMEOUT

# Each private method used here: its class, name and parameters, as the
# tests check them against the installed KerasTuner.
SIGNATURES = {
    "Oracle._set_project_dir": (keras_tuner.Oracle, "_set_project_dir",
                                ["self", "directory", "project_name"]),
    "Oracle._get_oracle_fname": (keras_tuner.Oracle, "_get_oracle_fname", ["self"]),
    "Oracle._get_trial_dir": (keras_tuner.Oracle, "_get_trial_dir", ["self", "trial_id"]),
    "Oracle._save_trial": (keras_tuner.Oracle, "_save_trial", ["self", "trial"]),
    "BaseTuner._is_worker": (keras_tuner.Tuner, "_is_worker", ["self"]),
    "BaseTuner._get_tuner_fname": (keras_tuner.Tuner, "_get_tuner_fname", ["self"]),
    "BaseTuner._populate_initial_space": (keras_tuner.Tuner, "_populate_initial_space", ["self"]),
    "Tuner._deepcopy_callbacks": (keras_tuner.Tuner, "_deepcopy_callbacks", ["self", "callbacks"]),
    "Tuner._configure_tensorboard_dir": (keras_tuner.Tuner, "_configure_tensorboard_dir",
                                         ["self", "callbacks", "trial", "execution"]),
    "Tuner._get_checkpoint_fname": (keras_tuner.Tuner, "_get_checkpoint_fname",
                                    ["self", "trial_id"]),
    "Tuner._build_and_fit_model": (keras_tuner.Tuner, "_build_and_fit_model",
                                   ["self", "trial", "args", "kwargs"]),
    "Oracle._random_values": (keras_tuner.Oracle, "_random_values", ["self"]),
    "Oracle._record_values": (keras_tuner.Oracle, "_record_values", ["self", "trial"]),
    "Oracle._compute_values_hash": (keras_tuner.Oracle, "_compute_values_hash",
                                    ["self", "values"]),
    "Hyperband.__init__": (keras_tuner.Hyperband, "__init__",
                           ["self", "hypermodel", "objective", "max_epochs", "factor",
                            "hyperband_iterations", "seed", "hyperparameters",
                            "tune_new_entries", "allow_new_entries", "max_retries_per_trial",
                            "max_consecutive_failed_trials", "kwargs"]),
    "distribute.oracle_chief.OracleServicer": (oracle_chief, "OracleServicer", ["oracle"]),
    # Wrapped by KerasTuner's `synchronized`, which hides the parameter `oracle`.
    "distribute.oracle_chief.exit_chief": (oracle_chief, "exit_chief", ["args", "kwargs"]),
}


# Oracle: state files.

def set_project_dir(oracle, directory, project_name):
    """Points an oracle that no tuner owns at `directory/project_name` (`Oracle._set_project_dir`)."""
    oracle._set_project_dir(directory, project_name)


def oracle_state_path(oracle):
    """The path of the oracle's `oracle.json` (`Oracle._get_oracle_fname`)."""
    return oracle._get_oracle_fname()


def trial_state_path(oracle, trial_id):
    """The path of a trial's `trial.json`, its folder made (`Oracle._get_trial_dir`)."""
    return os.path.join(oracle._get_trial_dir(trial_id), "trial.json")


def retry_trials_a_kill_left(oracle):
    """Mends a reloaded oracle's retry queue where a kill fell between two state files.

    - KerasTuner's `create_trial` writes a new trial's `trial.json` before
      `oracle.json`: killed in between, the trial reloads RUNNING but not
      among the ongoing ones KerasTuner retries, so it would never run (the
      resumed search one trial short). It is queued for retry, its values
      recorded as tried and its start as `create_trial` had done.
    - `end_trial` saves `oracle.json` before it forgets the trial as
      ongoing: killed before the next save, the reloaded oracle would run
      that finished trial again. It leaves the queue.

    (`Oracle._retry_queue`, `_record_values`, `start_order`.)

    Returns:
        list of str, the IDs queued for retry.
    """
    ended = (TrialStatus.COMPLETED, TrialStatus.FAILED)
    oracle._retry_queue[:] = [trial_id for trial_id in oracle._retry_queue
                              if oracle.trials[trial_id].status not in ended]
    queued = []
    for trial_id, trial in sorted(oracle.trials.items()):
        if trial.status == TrialStatus.RUNNING and trial_id not in oracle._retry_queue:
            oracle._record_values(trial)
            if trial_id not in oracle.start_order:
                oracle.start_order.append(trial_id)
            oracle._retry_queue.append(trial_id)
            queued.append(trial_id)
    return queued


class SaveTrialHook:
    """Oracle mixin: KerasTuner's `Oracle._save_trial(trial)` calls `self.save_trial(trial)`.

    KerasTuner saves a trial through `_save_trial` whenever it creates,
    updates or ends one; a subclass defines `save_trial` to change how.
    """

    def _save_trial(self, trial):
        self.save_trial(trial)

    def save_trial(self, trial):
        super()._save_trial(trial)


def next_random_values(oracle, count=1):
    """The values a random search's next new trials will take, without drawing them.

    `RandomSearchOracle.populate_space` draws a trial's values with
    `Oracle._random_values`, which advances the oracle's `_seed_state` (one
    step per hyperparameter) and skips values already tried
    (`_tried_so_far`, to which `create_trial` adds them). Both are put back,
    so the next trials draw these very values (unless a failed trial is
    retried first).

    Args:
        oracle: a `keras_tuner.oracles.RandomSearchOracle` with at least
            one trial (a first trial may take the defaults instead).
        count: int, how many trials to look ahead. Defaults to `1`.

    Returns:
        list of dicts of values by hyperparameter name, one per trial; fewer
        than `count` when the space runs out of untried values.
    """
    seed_state, tried = oracle._seed_state, set(oracle._tried_so_far)
    drawn = []
    try:
        while len(drawn) < count:
            values = oracle._random_values()
            if values is None:
                break
            drawn.append(values)
            oracle._tried_so_far.add(oracle._compute_values_hash(values))
        return drawn
    finally:
        oracle._seed_state, oracle._tried_so_far = seed_state, tried


def next_trial_ids(oracle, count=1):
    """The IDs `Oracle.create_trial` will give the next `count` new trials.

    Each is the number of trials created before it, zero-padded to as many
    digits as `max_trials` has (`"07"` for the eighth of 10 to 99).
    """
    width = len(str(oracle.max_trials))
    return [f"{{:0{width}d}}".format(len(oracle.trials) + index) for index in range(count)]


# Tuner: state, space and trials.

def is_worker(tuner):
    """Whether `tuner` is a worker of a distributed search, not its chief (`BaseTuner._is_worker`)."""
    return tuner._is_worker()


def tuner_state_path(tuner):
    """The path of the tuner's `tunerK.json` (`BaseTuner._get_tuner_fname`)."""
    return tuner._get_tuner_fname()


class PopulateSpaceHook:
    """Tuner mixin: KerasTuner's `BaseTuner._populate_initial_space()` calls `self.populate_initial_space()`.

    KerasTuner calls it once, from the tuner's constructor, to declare the
    search space; its own version also builds a model.
    """

    def _populate_initial_space(self):
        self.populate_initial_space()

    def populate_initial_space(self):
        super()._populate_initial_space()


def trial_callbacks(tuner, trial, callbacks):
    """A trial's own copies of `callbacks`, as KerasTuner's `Tuner.run_trial` prepares them.

    Deep copies (`Tuner._deepcopy_callbacks`), with each `TensorBoard`
    callback pointed at a folder of the trial's (`Tuner._configure_tensorboard_dir`).
    """
    callbacks = tuner._deepcopy_callbacks(callbacks)
    tuner._configure_tensorboard_dir(callbacks, trial)
    return callbacks


def checkpoint_path(tuner, trial_id):
    """Where a trial's weights go, for Hyperband and `get_best_models` (`Tuner._get_checkpoint_fname`)."""
    return tuner._get_checkpoint_fname(trial_id)


def build_and_fit(tuner):
    """`Tuner._build_and_fit_model(trial, *args, **kwargs)`: builds the trial's model, fits it, returns the results."""
    return tuner._build_and_fit_model


class HyperbandTunerWithOracle(keras_tuner.Hyperband):
    """`keras_tuner.Hyperband` driven by a given oracle.

    Hyperband's tuner passes each trial's epoch budget to `fit` and starts
    promoted trials from their parent's weights; its constructor does nothing
    else but build a plain `HyperbandOracle`, so it is skipped for
    `keras_tuner.Tuner`'s.

    Args:
        oracle: a `keras_tuner.oracles.HyperbandOracle` (or a subclass).
        hypermodel: a `keras_tuner.HyperModel`.
        **kwargs: passed to `keras_tuner.Tuner`.
    """

    def __init__(self, oracle, hypermodel, **kwargs):
        keras_tuner.Tuner.__init__(self, oracle=oracle, hypermodel=hypermodel, **kwargs)


# Distributed search: the chief's gRPC service.

def oracle_servicer(oracle):
    """KerasTuner's gRPC servicer of `oracle`, for the chief (`distribute.oracle_chief.OracleServicer`)."""
    return oracle_chief.OracleServicer(oracle)


def add_servicer(servicer, server):
    """Registers `servicer` with a `grpc.server` (`protos.get_service_grpc()`)."""
    protos.get_service_grpc().add_OracleServicer_to_server(servicer, server)


def stop_requested(servicer):
    """Whether the servicer has told a worker that no trial is left (`OracleServicer.stop_triggered`)."""
    return servicer.stop_triggered


def workers_done(oracle):
    """Whether every worker was told to stop and no trial is running (`distribute.oracle_chief.exit_chief`)."""
    return oracle_chief.exit_chief(oracle)
