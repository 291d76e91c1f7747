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
    any others, such as Hyperband's `tuner/epochs`), `score` (best validation
    loss), `best_epoch`, `seconds` and `reason` (why a trial failed).

    Args:
        oracle: a KerasTuner `Oracle`.
        names: sequence of str, hyperparameter columns to put first.
    """
    rows = []
    for trial_id in sorted(oracle.trials):
        trial = oracle.trials[trial_id]
        metrics = {name: trial.metrics.get_last_value(name) if trial.metrics.exists(name) else None
                   for name in (BEST_EPOCH, SECONDS)}
        rows.append({
            "trial": trial_id, "status": trial.status, **trial.hyperparameters.values,
            "score": trial.score, **metrics, "reason": failure_reason(trial),
        })
    frame = pd.DataFrame(rows, columns=None if rows else list(COLUMNS))
    others = [c for c in frame.columns if c not in COLUMNS and c not in names]
    present = [name for name in names if name in frame.columns]
    return frame[["trial", "status", *present, *others, *COLUMNS[2:]]]
