"""The leaderboard: one row per trial, from a KerasTuner oracle.

Example:

>>> import keras_tuner
>>> oracle = keras_tuner.oracles.RandomSearchOracle(objective="val_loss")
>>> list(leaderboard(oracle).columns)
['trial', 'status', 'score', 'best_epoch', 'seconds', 'reason']
"""

import pandas as pd

from tuning.progress_oracle import BEST_EPOCH, SECONDS, failure_reason

COLUMNS = ("trial", "status", "score", "best_epoch", "seconds", "reason")


def leaderboard(oracle, names=()):
    """Returns a DataFrame with one row per trial the oracle has started.

    Columns: `trial` (id), `status` (`COMPLETED`, `FAILED`, or `RUNNING` for
    an interrupted trial), one column per hyperparameter (`names` first, then
    any others, such as Hyperband's `tuner/epochs`), `score` (the objective:
    the best validation loss without the L2 penalty), the trial's other
    validation metrics at that epoch (e.g. `val_accuracy`; means over the
    folds of a cross-validated trial), `best_epoch`, `seconds` and `reason`
    (why a trial failed).

    Args:
        oracle: a KerasTuner `Oracle`.
        names: sequence of str, hyperparameter columns to put first.
    """
    rows, validation = [], {}
    for trial_id in sorted(oracle.trials):
        trial = oracle.trials[trial_id]
        metrics = {name: trial.metrics.get_last_value(name) if trial.metrics.exists(name) else None
                   for name in (BEST_EPOCH, SECONDS)}
        scores = {name: trial.metrics.get_last_value(name) for name in trial.metrics.metrics
                  if name.startswith("val_") and name != oracle.objective.name}
        validation.update(dict.fromkeys(scores))
        rows.append({
            "trial": trial_id, "status": trial.status, **trial.hyperparameters.values,
            "score": trial.score, **scores, **metrics, "reason": failure_reason(trial),
        })
    frame = pd.DataFrame(rows, columns=None if rows else list(COLUMNS))
    others = [c for c in frame.columns if c not in COLUMNS and c not in names and c not in validation]
    present = [name for name in names if name in frame.columns]
    return frame[["trial", "status", *present, *others, "score", *validation, *COLUMNS[3:]]]
