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

import os

from templates.artifacts import write_json


def save_state(path, stateful):
    """Writes `stateful.get_state()` (a KerasTuner `Stateful`) to `path`, atomically."""
    write_json(stateful.get_state(), path)


class AtomicOracleState:
    """Oracle mixin: `oracle.json` and each `trial.json` are replaced atomically."""

    def save(self):
        save_state(self._get_oracle_fname(), self)

    def _save_trial(self, trial):
        save_state(os.path.join(self._get_trial_dir(trial.trial_id), "trial.json"), trial)
