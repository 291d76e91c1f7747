"""scikit-learn baselines on exactly the split and preprocessing of a template run.

A neural network earns its place only if it does at least about as well as a
linear model on the same rows. `baseline_score` fits one on the training and
validation rows the template used and scores it on the same test rows.

Example:

>>> from templates.data import load_bundled
>>> features, target = load_bundled("breast_cancer")
>>> round(baseline_score("binary", features, target), 2) > 0.9
True
"""

import numpy as np
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from templates import preprocessing
from templates.recipe import prepare
from templates.tasks import get_task
from templates.training import TrainingConfig


def preprocessor(frame):
    """The scikit-learn twin of the template's in-model preprocessing."""
    kinds = preprocessing.column_kinds(frame)
    numeric = [name for name, kind in kinds.items() if kind == preprocessing.NUMERIC]
    text = [name for name, kind in kinds.items() if kind == preprocessing.TEXT]
    return ColumnTransformer([
        ("numeric", make_pipeline(StandardScaler(), SimpleImputer(strategy="constant", fill_value=0.0)), numeric),
        ("text", make_pipeline(
            SimpleImputer(strategy="constant", fill_value=preprocessing.MISSING_TEXT),
            OneHotEncoder(handle_unknown="ignore"),
        ), text),
    ])


def baseline_score(task, features, target, *, estimator=None, config=TrainingConfig(),
                   test_features=None, test_target=None):
    """Fits a baseline on a template's train+validation rows; scores the test rows.

    Args:
        task: str, the template's task.
        features, target: the data, as given to the template.
        estimator: optional scikit-learn estimator; defaults to the task's
            linear baseline (ridge or logistic regression).
        config: the template's `TrainingConfig` (its seed and fractions decide
            the split).
        test_features, test_target: optional separate test set.

    Returns:
        float, the task's score metric (`r2` or `accuracy`) on the test rows.
    """
    spec = get_task(task)
    frame, labels, split, _ = prepare(
        task, features, target, test_features=test_features,
        test_target=test_target, config=config,
    )
    fit_rows = np.concatenate([split.train, split.validation])
    values = labels.values.argmax(axis=1) if labels.one_hot else labels.values
    model = make_pipeline(preprocessor(frame), estimator or spec.linear_baseline())
    model.fit(frame.iloc[fit_rows], values[fit_rows])
    # scikit-learn's `score` is accuracy for classifiers and R^2 for
    # regressors: the task table's score metric in each case.
    return float(model.score(frame.iloc[split.test], values[split.test]))
