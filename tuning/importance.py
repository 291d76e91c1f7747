"""How much each hyperparameter mattered, from the finished trials.

A random forest predicts each trial's score rank from its hyperparameters
(log-scaled settings by their logarithm, choices one-hot); a setting's
importance is the forest's impurity importance summed over its columns,
normalised to 1. With fewer than `MIN_TRIALS` completed trials there is
nothing to learn from, and no importances are given.

Example:

>>> import pandas as pd
>>> from tuning.space import narrow_space
>>> board = pd.DataFrame({"status": ["COMPLETED"] * 6, "width": [16, 32, 64, 128, 16, 256],
...                       "score": [6.0, 5, 4, 3, 6, 2]})
>>> importance(board, {"width": narrow_space()["width"]})
{'width': 1.0}
"""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.ensemble import RandomForestRegressor  # noqa: E402

from templates.artifacts import replace_atomically  # noqa: E402
from tuning.hypermodel import OBJECTIVE  # noqa: E402

MIN_TRIALS = 5


def _completed(board):
    return board[(board["status"] == "COMPLETED") & np.isfinite(board["score"].astype(float))]


def _tuned(board, space):
    return [name for name, h in space.items()
            if not h.fixed and name in board and board[name].nunique() > 1]


def _encode(column, hyperparameter):
    if hyperparameter.values:
        return pd.get_dummies(column.astype(str), prefix=column.name, dtype=float)
    values = column.astype(float)
    return pd.DataFrame({column.name: np.log10(values) if hyperparameter.log else values})


def importance(board, space, seed=0):
    """Returns `{name: importance}` for the tuned hyperparameters.

    Args:
        board: DataFrame from `tuning.leaderboard.leaderboard`.
        space: dict of `tuning.space.Hyperparameter`.
        seed: int, the forest's seed. Defaults to `0`.

    Returns:
        dict summing to 1 over the hyperparameters that varied between
        completed trials; empty with fewer than `MIN_TRIALS` of them.
    """
    done = _completed(board)
    names = _tuned(done, space)
    if len(done) < MIN_TRIALS or not names:
        return {}
    parts = {name: _encode(done[name], space[name]) for name in names}
    features = pd.concat(parts.values(), axis=1)
    forest = RandomForestRegressor(n_estimators=200, random_state=seed)
    forest.fit(features.to_numpy(), done["score"].rank().to_numpy())
    weights = dict(zip(features.columns, forest.feature_importances_))
    scores = {name: float(sum(weights[c] for c in part.columns)) for name, part in parts.items()}
    total = sum(scores.values()) or 1.0
    return {name: round(score / total, 4) for name, score in
            sorted(scores.items(), key=lambda item: -item[1])}


def plot_sensitivity(board, space, path, objective=OBJECTIVE):
    """Draws each tuned hyperparameter's trial scores against its values into a PNG.

    One panel per hyperparameter that varied; the best trial is marked red.
    """
    done = _completed(board)
    names = _tuned(done, space) or ["score"]
    columns = min(4, len(names))
    rows = -(-len(names) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(3.5 * columns, 3 * rows), squeeze=False)
    best = done["score"].idxmin() if len(done) else None
    for axis, name in zip(axes.flat, names):
        if name == "score":
            axis.text(0.5, 0.5, "no tuned hyperparameter varied", ha="center")
            continue
        hyperparameter = space[name]
        if hyperparameter.values:
            order = [v for v in hyperparameter.values if v in set(done[name])]
            x = done[name].map({v: i for i, v in enumerate(order)})
            axis.set_xticks(range(len(order)), [str(v) for v in order])
        else:
            x = done[name].astype(float)
            if hyperparameter.log:
                axis.set_xscale("log")
        axis.scatter(x, done["score"], alpha=0.7)
        if best is not None:
            axis.scatter([x[best]], [done["score"][best]], color="red", label="best")
        axis.set_xlabel(name)
        axis.set_ylabel(objective)
    for axis in list(axes.flat)[len(names):]:
        axis.axis("off")
    figure.tight_layout()
    replace_atomically(path, figure.savefig)
    plt.close(figure)
