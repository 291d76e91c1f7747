"""Getting tabular data in: CSV files, bundled data sets, checks and splits.

Example:

>>> features, target = load_bundled("wine")
>>> features.shape, target.name
((178, 13), 'target')
"""

import dataclasses
import os

import numpy as np
import pandas as pd
from sklearn import datasets as sk_datasets
from sklearn.model_selection import KFold, StratifiedKFold, train_test_split

from templates.errors import TemplateError, shorten

BUNDLED_DATASETS = {
    "diabetes": sk_datasets.load_diabetes,
    "breast_cancer": sk_datasets.load_breast_cancer,
    "wine": sk_datasets.load_wine,
    "iris": sk_datasets.load_iris,
}


def load_bundled(name):
    """Loads a data set that ships with scikit-learn (no download).

    Args:
        name: str, one of `BUNDLED_DATASETS`.

    Returns:
        `(features, target)`: a DataFrame of raw columns and a Series named
        `"target"`.

    Example:

    >>> features, target = load_bundled("diabetes")
    >>> len(features)
    442
    """
    if name not in BUNDLED_DATASETS:
        raise TemplateError(
            f"Unknown bundled data set '{name}'; expected one of: "
            f"{', '.join(BUNDLED_DATASETS)}."
        )
    bunch = BUNDLED_DATASETS[name](as_frame=True)
    return bunch.data, bunch.target.rename("target")


def read_csv(path):
    """Reads a CSV file, with a clear error when it is missing or empty.

    Args:
        path: str, the file to read.

    Returns:
        A pandas DataFrame with at least one row.

    Example:

    >>> read_csv("no/such/file.csv")
    Traceback (most recent call last):
    ...
    templates.errors.TemplateError: CSV file 'no/such/file.csv' does not exist.
    """
    if not os.path.isfile(path):
        raise TemplateError(f"CSV file '{path}' does not exist.")
    try:
        frame = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise TemplateError(f"CSV file '{path}' is empty; expected a header row and data rows.") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as error:
        raise TemplateError(f"CSV file '{path}' could not be parsed: {error}".splitlines()[0]) from None
    if frame.empty:
        raise TemplateError(f"CSV file '{path}' has a header but no data rows.")
    return frame


def split_target(frame, target, source="the data"):
    """Separates the target column from the feature columns.

    Args:
        frame: DataFrame holding features and the target.
        target: str, the target column's name.
        source: str, how to name the data in error messages.

    Returns:
        `(features, target_series)`.

    Example:

    >>> frame = pd.DataFrame({"x": [1, 2], "y": [0, 1]})
    >>> split_target(frame, "y")[0].columns.tolist()
    ['x']
    """
    if target not in frame.columns:
        raise TemplateError(
            f"Target column '{target}' is not in {source}; its columns are: "
            f"{shorten(frame.columns, limit=40)}."
        )
    features = frame.drop(columns=[target])
    if features.shape[1] == 0:
        raise TemplateError(f"{source} has no feature columns besides the target '{target}'.")
    return features, frame[target]


def as_frame(features):
    """Returns features as a DataFrame with string column names.

    Numpy arrays get columns `x0, x1, ...`.

    Example:

    >>> as_frame(np.zeros((2, 3))).columns.tolist()
    ['x0', 'x1', 'x2']
    """
    if isinstance(features, pd.DataFrame):
        frame = features.copy()
    else:
        array = np.asarray(features)
        if array.ndim == 1:
            array = array.reshape(-1, 1)
        if array.ndim != 2:
            raise TemplateError(
                f"Received features of shape {array.shape}; expected a 2-D "
                "array (rows x columns) or a DataFrame."
            )
        frame = pd.DataFrame(array, columns=[f"x{i}" for i in range(array.shape[1])])
    frame.columns = [str(c) for c in frame.columns]
    if len(frame) == 0:
        raise TemplateError("Received no rows of features; expected at least one.")
    return frame.reset_index(drop=True)


def check_features(features, source="the features"):
    """Rejects feature columns the model cannot learn from.

    Raises:
        TemplateError: for a column where every value is missing.
    """
    empty = [c for c in features.columns if _is_all_missing(features[c])]
    if empty:
        raise TemplateError(
            f"Feature column(s) {shorten(empty)} in {source} "
            "hold no values (every row is empty); drop them or fill them in."
        )


def _is_all_missing(column):
    if column.dtype == object or pd.api.types.is_string_dtype(column):
        return column.isna().all() or column.astype(str).str.strip().eq("").all()
    return column.isna().all()


def check_same_columns(train_columns, test_columns, source):
    """Raises when a test set's columns differ from the training columns."""
    missing = [c for c in train_columns if c not in test_columns]
    extra = [c for c in test_columns if c not in train_columns]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing {shorten(missing)}")
        if extra:
            parts.append(f"unexpected {shorten(extra)}")
        raise TemplateError(
            f"The columns of {source} differ from the training data: "
            f"{'; '.join(parts)}; expected the same columns as the training data."
        )


@dataclasses.dataclass
class Split:
    """Row indices of the train, validation and test parts of a data set."""

    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray


def split_rows(num_rows, stratify_by=None, *, test_fraction=0.2,
               validation_fraction=0.2, seed=0):
    """Splits row indices into train, validation and test, seeded.

    Args:
        num_rows: int, the number of rows.
        stratify_by: optional array of class labels to keep proportions of.
        test_fraction: float, share of all rows held out for the test; `0`
            when a separate test set is given.
        validation_fraction: float, share of the remaining rows for
            validation.
        seed: int, the random seed.

    Returns:
        A `Split`.

    Example:

    >>> parts = split_rows(100, seed=1)
    >>> len(parts.train), len(parts.validation), len(parts.test)
    (64, 16, 20)
    """
    rows = np.arange(num_rows)
    labels = None if stratify_by is None else np.asarray(stratify_by)
    if labels is not None and labels.ndim == 2:
        labels = labels.argmax(axis=1)
    test = np.array([], dtype=int)
    if test_fraction:
        rows, test = _split(rows, labels, test_fraction, seed)
    train, validation = _split(
        rows, None if labels is None else labels[rows], validation_fraction, seed
    )
    return Split(train=np.sort(train), validation=np.sort(validation), test=np.sort(test))


def cross_validation_folds(num_rows, folds, stratify_by=None, *, seed=0):
    """Splits row positions into `folds` seeded train/validation pairs.

    Every row is in exactly one validation part. Folds keep the class
    proportions when `stratify_by` is given and every class has at least
    `folds` rows; otherwise rows are shuffled into folds without strata.

    Args:
        num_rows: int, the number of rows.
        folds: int >= 2, the number of folds.
        stratify_by: optional array of class labels (one-hot allowed).
        seed: int, the random seed.

    Returns:
        list of `(train_positions, validation_positions)` arrays.

    Raises:
        TemplateError: if there are fewer rows than twice the folds.

    Example:

    >>> [len(validation) for _, validation in cross_validation_folds(10, 3)]
    [4, 3, 3]
    """
    if num_rows < 2 * folds:
        raise TemplateError(
            f"Received {num_rows} training and validation rows for {folds} cross-validation "
            f"folds; expected at least {2 * folds} rows, or fewer folds (--folds)."
        )
    rows = np.arange(num_rows)
    labels = None if stratify_by is None else np.asarray(stratify_by)
    if labels is not None and labels.ndim == 2:
        labels = labels.argmax(axis=1)
    if labels is not None and np.unique(labels, return_counts=True)[1].min() >= folds:
        splitter = StratifiedKFold(folds, shuffle=True, random_state=seed)
    else:
        labels, splitter = None, KFold(folds, shuffle=True, random_state=seed)
    return list(splitter.split(rows, labels))


def _split(rows, labels, fraction, seed):
    if len(rows) < 4:
        raise TemplateError(
            f"Received {len(rows)} rows; too few to split into train, "
            "validation and test. Expected at least a few dozen rows."
        )
    stratify = labels if labels is not None and _can_stratify(labels, fraction) else None
    return train_test_split(rows, test_size=fraction, random_state=seed, stratify=stratify)


def _can_stratify(labels, fraction):
    counts = np.unique(labels, return_counts=True)[1]
    held_out = int(np.ceil(len(labels) * fraction))
    return counts.min() >= 2 and held_out >= len(counts)
