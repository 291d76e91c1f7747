"""scikit-learn baselines on the same split: a linear model and gradient boosting.

Both see the same columns as the network: numbers standardised with mean
imputation, text one-hot encoded. They are fitted on train+validation and
scored with the task's test metrics on the test split.

Example:

>>> from templates.data import load_bundled
>>> from templates.recipe import prepare
>>> frame, labels, split, _ = prepare("multiclass", *load_bundled("wine"))
>>> scores = baseline_scores("multiclass", frame, labels.values, split)
>>> sorted(scores), scores["linear"]["accuracy"] > 0.8
(['hist_gradient_boosting', 'linear'], True)
"""

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from templates.preprocessing import NUMERIC, column_kinds, frame_to_inputs
from templates.tasks import get_task

# Per task: (linear model, boosting model, how to turn a fitted model's
# output into what the task's test metrics expect).
BASELINES = {
    "regression": (lambda: Ridge(), lambda: HistGradientBoostingRegressor(random_state=0),
                   lambda model, x: model.predict(x)),
    "binary": (lambda: LogisticRegression(max_iter=2000),
               lambda: HistGradientBoostingClassifier(random_state=0),
               lambda model, x: model.predict_proba(x)[:, 1]),
    "multiclass": (lambda: LogisticRegression(max_iter=2000),
                   lambda: HistGradientBoostingClassifier(random_state=0),
                   lambda model, x: model.predict_proba(x)),
}


def _preprocessor(kinds):
    numeric = [name for name, kind in kinds.items() if kind == NUMERIC]
    text = [name for name, kind in kinds.items() if kind != NUMERIC]
    return ColumnTransformer([
        ("numbers", make_pipeline(SimpleImputer(), StandardScaler()), numeric),
        ("text", OneHotEncoder(handle_unknown="ignore", sparse_output=False), text),
    ])


def baseline_scores(task, frame, targets, split):
    """Fits both baselines on train+validation and scores them on the test split.

    Args:
        task: str, `regression`, `binary` or `multiclass`.
        frame: DataFrame of all rows' raw feature columns.
        targets: array of encoded labels (one-hot labels are turned into
            class indices).
        split: `templates.data.Split` indexing `frame`.

    Returns:
        `{"linear": metrics, "hist_gradient_boosting": metrics}`, each a dict
        of the task's test metrics.
    """
    spec = get_task(task)
    kinds = column_kinds(frame.iloc[split.train])
    columns = pd.DataFrame({name: values[:, 0] for name, values in
                            frame_to_inputs(frame, kinds).items()})
    targets = np.asarray(targets)
    truth = np.argmax(targets, axis=-1) if targets.ndim == 2 else targets
    fit_rows = np.concatenate([split.train, split.validation])
    linear, boosting, predict = BASELINES[spec.name]
    scores = {}
    for name, make in (("linear", linear), ("hist_gradient_boosting", boosting)):
        model = make_pipeline(_preprocessor(kinds), make())
        model.fit(columns.iloc[fit_rows], truth[fit_rows])
        prediction = predict(model, columns.iloc[split.test])
        scores[name] = {metric: float(fn(targets[split.test], prediction))
                        for metric, fn in spec.test_metrics.items()}
    return scores
