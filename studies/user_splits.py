"""A user's table (`--csv`) as train, validation and test arrays for a plain MLP.

Used by the studies that run on a user's data (batch_size, epochs,
optimizers, sensitivity): the rows are split once, seeded and stratified for
classification; the features go through `common.features_matrix` with
statistics of the training rows only; a regression target is standardised on
the training rows, so a loss of 1.0 is what predicting the mean gets.

Example:

>>> output_head("multiclass", 3)
(3, 'softmax', 'sparse_categorical_crossentropy')
"""

import numpy as np
from sklearn.model_selection import train_test_split

from studies import common
from templates.errors import TemplateError

MIN_ROWS = 20

HEADS = {
    "regression": (None, "mean_squared_error"),
    "binary": ("sigmoid", "binary_crossentropy"),
    "multiclass": ("softmax", "sparse_categorical_crossentropy"),
}


def output_head(task, classes=2):
    """Returns `(units, activation, loss)` of the task's output layer.

    Args:
        task: str, `"regression"`, `"binary"` or `"multiclass"`.
        classes: int, number of classes (multiclass only). Defaults to `2`.
    """
    activation, loss = HEADS[task]
    return (classes if task == "multiclass" else 1), activation, loss


def user_splits(data, seed, validation_fraction=0.2, test_fraction=0.2):
    """Splits `common.UserData` into float32 arrays.

    Args:
        data: `common.UserData`.
        seed: int, seeds the split.
        validation_fraction: float, share of all rows for validation.
            Defaults to `0.2`.
        test_fraction: float, share of all rows for the test. Defaults to `0.2`.

    Returns:
        `(splits, head)`: `splits` maps `"train"`, `"val"` and `"test"` to
        `(x, y)` arrays, with `y` of shape `(rows, 1)`; `head` is
        `output_head(data.task, classes)`.

    Raises:
        TemplateError: if the table has fewer than `MIN_ROWS` rows.
    """
    target = data.target.to_numpy(dtype="float32")
    if len(target) < MIN_ROWS:
        raise TemplateError(
            f"{data.source or 'The table'} has {len(target)} rows; the studies need at "
            f"least {MIN_ROWS} to split into training, validation and test rows."
        )
    # Stratify classes where each has the two rows a stratified split needs.
    stratify = (data.task != "regression"
                and np.unique(target, return_counts=True)[1].min() >= 2)
    rows = np.arange(len(target))
    held_out = validation_fraction + test_fraction
    train, rest = train_test_split(rows, test_size=held_out, random_state=seed,
                                   stratify=target if stratify else None)
    validation, test = train_test_split(
        rest, test_size=test_fraction / held_out, random_state=seed,
        stratify=target[rest] if stratify else None)
    x = common.features_matrix(data.features, fit_rows=train)
    if data.task == "regression":
        target = (target - target[train].mean()) / (target[train].std() or 1.0)
    splits = {name: (x[part], target[part][:, None])
              for name, part in (("train", train), ("val", validation), ("test", test))}
    classes = max(len(data.class_names), int(target.max()) + 1) if data.task != "regression" else 1
    return splits, output_head(data.task, classes)
