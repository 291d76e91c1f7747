"""Reading the target column: checks and encoding for each task.

Each encoder takes the raw labels (a pandas Series, a list or a numpy array)
and returns `Labels`: the values the model trains on plus the class names that
travel with the saved model. Bad labels raise `TemplateError` naming the value
and what was expected.

Example:

>>> encoded = encode_class_labels(["cat", "dog", "cat", "owl"])
>>> encoded.values.tolist(), encoded.class_names
([0, 1, 0, 2], ['cat', 'dog', 'owl'])
"""

import dataclasses

import numpy as np
import pandas as pd

from templates.errors import TemplateError


@dataclasses.dataclass(frozen=True)
class Labels:
    """Encoded labels.

    Attributes:
        values: np.ndarray, what the model trains on: floats for regression,
            0/1 for binary, class indices (or one-hot rows) for multi-class.
        class_names: list of str, the name of each class in index order;
            empty for regression.
        one_hot: bool, whether `values` holds one-hot rows.
        positive_class: str or None, the class encoded as 1 (binary only).
    """

    values: np.ndarray
    class_names: list
    one_hot: bool = False
    positive_class: "str | None" = None


def _as_series(raw, name="target"):
    if isinstance(raw, pd.DataFrame):
        if raw.shape[1] != 1:
            raise TemplateError(
                f"Expected one target column; received {raw.shape[1]} columns."
            )
        raw = raw.iloc[:, 0]
    series = pd.Series(raw) if not isinstance(raw, pd.Series) else raw
    if len(series) == 0:
        raise TemplateError("The target is empty; expected at least one label.")
    missing = int(series.isna().sum())
    if missing:
        raise TemplateError(
            f"Target '{series.name or name}' has {missing} missing value(s); "
            "drop or fill those rows."
        )
    return series.reset_index(drop=True)


def _label_text(value):
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


def _sorted_classes(series):
    """Returns the distinct labels sorted numerically when they are numbers."""
    distinct = pd.unique(series)
    try:
        return sorted(distinct)
    except TypeError:
        return sorted(distinct, key=str)


def _reject_positive_class(positive_class, task):
    if positive_class is not None:
        raise TemplateError(
            f"Received positive_class={positive_class!r}; it applies to the "
            f"binary task only, not {task}."
        )


def encode_regression_target(raw, positive_class=None):
    """Checks that a regression target holds finite numbers.

    Args:
        raw: sequence of numbers (pandas Series, list or numpy array).
        positive_class: must be `None`; accepted so every encoder has the
            same signature.

    Returns:
        `Labels` with float32 values and no class names.

    Raises:
        TemplateError: for a non-numeric or non-finite value.

    Example:

    >>> encode_regression_target([1.5, 2, 3]).values.tolist()
    [1.5, 2.0, 3.0]
    """
    _reject_positive_class(positive_class, "regression")
    series = _as_series(raw)
    numbers = pd.to_numeric(series, errors="coerce")
    not_numeric = numbers.isna()
    if not_numeric.any():
        bad = series[not_numeric].iloc[0]
        raise TemplateError(
            f"Regression target '{series.name or 'target'}' holds the "
            f"non-numeric value {bad!r} (row {not_numeric.idxmax()}); "
            "expected finite numbers."
        )
    values = numbers.to_numpy(dtype="float64")
    not_finite = ~np.isfinite(values)
    if not_finite.any():
        row = int(np.argmax(not_finite))
        raise TemplateError(
            f"Regression target '{series.name or 'target'}' holds the "
            f"non-finite value {float(values[row])!r} (row {row}); expected finite numbers."
        )
    return Labels(values=values.astype("float32"), class_names=[])


def encode_binary_labels(raw, positive_class=None):
    """Encodes two-class labels as 0/1, the positive class as 1.

    Accepts 0/1, booleans, or any two distinct values such as two strings.

    Args:
        raw: sequence of labels.
        positive_class: optional label (or its text) to encode as 1. Defaults
            to the larger of the two sorted labels (1, `True`, or the second
            string in alphabetical order).

    Returns:
        `Labels` with 0/1 values and `class_names == [negative, positive]`.

    Raises:
        TemplateError: for a single class, three or more classes, or a
            `positive_class` that is not one of the labels.

    Example:

    >>> encoded = encode_binary_labels(["spam", "ham", "spam"], positive_class="spam")
    >>> encoded.values.tolist(), encoded.class_names
    ([1, 0, 1], ['ham', 'spam'])
    """
    series = _as_series(raw)
    classes = _sorted_classes(series)
    names = [_label_text(c) for c in classes]
    if len(classes) < 2:
        raise TemplateError(
            f"Binary target holds a single class {names}; expected exactly two "
            "classes."
        )
    if len(classes) > 2:
        shown = ", ".join(names[:10]) + (", ..." if len(names) > 10 else "")
        raise TemplateError(
            f"Binary target holds {len(classes)} classes ({shown}); expected "
            "exactly two. Use the multi-class template (python -m "
            "templates.multiclass) for three or more classes."
        )
    if positive_class is not None:
        if str(positive_class) not in names:
            raise TemplateError(
                f"Received positive_class={positive_class!r}; expected one of "
                f"the labels {names}."
            )
        if names[0] == str(positive_class):
            classes, names = classes[::-1], names[::-1]
    values = (series.to_numpy() == classes[1]).astype("int32")
    return Labels(values=values, class_names=names, positive_class=names[1])


def encode_class_labels(raw, positive_class=None):
    """Encodes multi-class labels as class indices, or keeps one-hot rows.

    Args:
        raw: a sequence of integer or string labels, or a 2-D one-hot array.
        positive_class: must be `None` (binary only).

    Returns:
        `Labels` with class indices (or the one-hot rows) and the class names
        in index order.

    Raises:
        TemplateError: for fractional numbers, a single class, or one-hot rows
            that do not sum to one.

    Example:

    >>> encode_class_labels([2, 0, 2]).class_names
    ['0', '2']
    """
    _reject_positive_class(positive_class, "multiclass")
    array = np.asarray(raw) if not isinstance(raw, (pd.Series, pd.DataFrame)) else None
    if array is not None and array.ndim == 2 and array.shape[1] > 1:
        return _encode_one_hot(array)
    series = _as_series(raw)
    if pd.api.types.is_float_dtype(series) and not np.all(
        np.mod(series.to_numpy(), 1) == 0
    ):
        bad = series[np.mod(series.to_numpy(), 1) != 0].iloc[0]
        raise TemplateError(
            f"Multi-class target holds the fractional value {bad!r}; expected "
            "integer or string class labels (for a numeric target use the "
            "regression template)."
        )
    classes = _sorted_classes(series)
    if len(classes) < 2:
        raise TemplateError(
            f"Multi-class target holds a single class "
            f"{[_label_text(c) for c in classes]}; expected two or more classes."
        )
    index = {value: i for i, value in enumerate(classes)}
    values = series.map(index).to_numpy(dtype="int32")
    return Labels(values=values, class_names=[_label_text(c) for c in classes])


def _encode_one_hot(array):
    if not np.allclose(array.sum(axis=1), 1.0) or not np.isin(array, (0, 1)).all():
        raise TemplateError(
            f"Received a 2-D target of shape {array.shape} that is not one-hot; "
            "expected rows of 0/1 with a single 1, or one label per row."
        )
    return Labels(
        values=array.astype("float32"),
        class_names=[str(i) for i in range(array.shape[1])],
        one_hot=True,
    )
