"""KerasTuner's state files, written so that a kill leaves the old or the new file.

KerasTuner writes `oracle.json`, `tuner0.json` and every `trial.json` by
truncating the file and writing it again. A search killed between the two
(kill -9, a power cut) left an empty `oracle.json`, and the next run, meant
to resume, failed on it with `JSONDecodeError`. Here each file is written
to a temporary file beside it and renamed over it (`os.replace`, atomic).

Example:

>>> import keras_tuner
>>> class Oracle(AtomicOracleState, keras_tuner.oracles.RandomSearchOracle):
...     pass
>>> Oracle(objective="val_loss", max_trials=1).save  # doctest: +ELLIPSIS
<bound method AtomicOracleState.save of ...>
"""

from templates.artifacts import write_json
from tuning.keras_tuner_internals import (
    SaveTrialHook,
    oracle_state_path,
    retry_trials_a_kill_left,
    trial_state_path,
)


def save_state(path, stateful):
    """Writes `stateful.get_state()` (a KerasTuner `Stateful`) to `path`, atomically."""
    write_json(stateful.get_state(), path)


class AtomicOracleState(SaveTrialHook):
    """Oracle mixin: `oracle.json` and each `trial.json` are replaced atomically.

    A kill between a new trial's `trial.json` and `oracle.json` leaves that
    trial RUNNING where KerasTuner would never run it: reloaded, it is
    retried (`retry_trials_a_kill_left`).
    """

    def reload(self):
        super().reload()
        retry_trials_a_kill_left(self)

    def save(self):
        save_state(oracle_state_path(self), self)

    def save_trial(self, trial):
        save_state(trial_state_path(self, trial.trial_id), trial)
