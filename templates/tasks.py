"""The task table: what each learning task needs from the model and the data.

What differs between regression, binary and multi-class classification and
is not edited per model lives in `TASKS`: how labels are read, the metrics
reported on the test split, how predictions are decoded, the baselines and
the bundled data set. The model itself (layers, output head, loss) is
written in each template; the table names the output activation and loss
the template pairs (a test keeps the two in agreement), which predictions
of a logits head also apply.

Example:

>>> from templates.tasks import TASKS
>>> TASKS["binary"].output_activation, TASKS["binary"].loss
('sigmoid', 'binary_crossentropy')
"""

import dataclasses
from collections.abc import Callable

import numpy as np
from sklearn import ensemble, linear_model
from sklearn import metrics as sk_metrics

from templates import labels
from templates.errors import TemplateError


@dataclasses.dataclass(frozen=True)
class Task:
    """One row of the task table.

    Attributes:
        name: str, the task's name.
        output_activation: str, the activation of the template's output
            layer; applied to a logits head's outputs when predicting.
        output_units: int or None, units of the template's output layer;
            `None` means one unit per class.
        loss: str, the template's loss for labels given as one integer or
            number per row.
        one_hot_loss: str or None, the template's loss for one-hot labels,
            where the task accepts them.
        curve_metric: str, the metric drawn beside the loss in `curves.png`.
        score_metric: str, the one test metric (higher is better) by which
            models of this task are compared.
        linear_baseline: callable returning the scikit-learn linear model
            the templates are measured against.
        boosting_baseline: callable returning scikit-learn's histogram
            gradient boosting for the task, the strong tabular baseline.
        test_metrics: dict mapping a metric name to `fn(y_true, prediction)`,
            computed on the test split.
        encode_labels: callable turning raw labels into `labels.Labels`.
        decode_predictions: callable `fn(prediction, class_names)` returning
            a dict of output columns (`prediction`, and `probability` of the
            predicted class for classifiers).
        stratify: bool, whether splits keep the class proportions.
        default_dataset: str, the bundled data set the template trains on when
            given no data.
    """

    name: str
    output_activation: str
    output_units: "int | None"
    loss: str
    one_hot_loss: "str | None"
    curve_metric: str
    score_metric: str
    linear_baseline: Callable
    boosting_baseline: Callable
    test_metrics: dict
    encode_labels: Callable
    decode_predictions: Callable
    stratify: bool
    default_dataset: str

    def units(self, num_classes):
        """Returns the number of output units for `num_classes` classes."""
        return self.output_units or num_classes


def _positive_probability(prediction):
    return np.asarray(prediction).reshape(-1)


def _binary_decision(prediction):
    return (_positive_probability(prediction) >= 0.5).astype(int)


def _class_index(prediction):
    return np.argmax(prediction, axis=-1)


def _decode_value(prediction, class_names):
    return {"prediction": np.ravel(prediction)}


def _decode_binary(prediction, class_names):
    positive = _positive_probability(prediction)
    decision = positive >= 0.5
    return {
        "prediction": np.where(decision, class_names[1], class_names[0]),
        "probability": np.where(decision, positive, 1.0 - positive),
    }


def _decode_classes(prediction, class_names):
    return {
        "prediction": np.asarray(class_names, dtype=object)[_class_index(prediction)],
        "probability": np.max(prediction, axis=-1),
    }


def _auc(y_true, probability):
    # AUC is undefined when the test rows hold one class (a small separate
    # test set can); report NaN instead of failing after training.
    if len(np.unique(y_true)) < 2:
        return float("nan")
    return sk_metrics.roc_auc_score(y_true, probability)


def _sparse_truth(y_true):
    y_true = np.asarray(y_true)
    return np.argmax(y_true, axis=-1) if y_true.ndim == 2 else y_true


TASKS = {
    "regression": Task(
        name="regression",
        output_units=1,
        output_activation="linear",
        loss="mean_squared_error",
        one_hot_loss=None,
        curve_metric="mae",
        score_metric="r2",
        linear_baseline=lambda: linear_model.RidgeCV(alphas=np.logspace(-3, 3, 13)),
        boosting_baseline=lambda: ensemble.HistGradientBoostingRegressor(random_state=0),
        test_metrics={
            "mse": lambda y, p: sk_metrics.mean_squared_error(y, np.ravel(p)),
            "mae": lambda y, p: sk_metrics.mean_absolute_error(y, np.ravel(p)),
            "r2": lambda y, p: sk_metrics.r2_score(y, np.ravel(p)),
        },
        encode_labels=labels.encode_regression_target,
        decode_predictions=_decode_value,
        stratify=False,
        default_dataset="diabetes",
    ),
    "binary": Task(
        name="binary",
        output_units=1,
        output_activation="sigmoid",
        loss="binary_crossentropy",
        one_hot_loss=None,
        curve_metric="accuracy",
        score_metric="accuracy",
        linear_baseline=lambda: linear_model.LogisticRegression(max_iter=5000),
        boosting_baseline=lambda: ensemble.HistGradientBoostingClassifier(random_state=0),
        test_metrics={
            "accuracy": lambda y, p: sk_metrics.accuracy_score(y, _binary_decision(p)),
            "auc": lambda y, p: _auc(y, _positive_probability(p)),
            "precision": lambda y, p: sk_metrics.precision_score(
                y, _binary_decision(p), zero_division=0
            ),
            "recall": lambda y, p: sk_metrics.recall_score(
                y, _binary_decision(p), zero_division=0
            ),
        },
        encode_labels=labels.encode_binary_labels,
        decode_predictions=_decode_binary,
        stratify=True,
        default_dataset="breast_cancer",
    ),
    "multiclass": Task(
        name="multiclass",
        output_units=None,
        output_activation="softmax",
        loss="sparse_categorical_crossentropy",
        one_hot_loss="categorical_crossentropy",
        curve_metric="accuracy",
        score_metric="accuracy",
        linear_baseline=lambda: linear_model.LogisticRegression(max_iter=5000),
        boosting_baseline=lambda: ensemble.HistGradientBoostingClassifier(random_state=0),
        test_metrics={
            "accuracy": lambda y, p: sk_metrics.accuracy_score(
                _sparse_truth(y), _class_index(p)
            ),
        },
        encode_labels=labels.encode_class_labels,
        decode_predictions=_decode_classes,
        stratify=True,
        default_dataset="wine",
    ),
}


def get_task(name):
    """Returns the `Task` called `name`.

    Args:
        name: str, one of `TASKS`.

    Raises:
        TemplateError: if `name` is not a known task.

    Example:

    >>> get_task("regression").loss
    'mean_squared_error'
    """
    if name not in TASKS:
        raise TemplateError(
            f"Unknown task '{name}'; expected one of: {', '.join(TASKS)}."
        )
    return TASKS[name]
