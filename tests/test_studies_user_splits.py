"""A user's table split into arrays for the studies that accept --csv."""

import numpy as np
import pytest

from studies import common, epochs
from studies.user_splits import user_splits
from templates.errors import TemplateError
from tests.conftest import make_frame


@pytest.mark.parametrize("task, head", [
    ("regression", (1, None, "mean_squared_error")),
    ("binary", (1, "sigmoid", "binary_crossentropy")),
    ("multiclass", (3, "softmax", "sparse_categorical_crossentropy")),
])
def test_splits_every_row_once_with_the_tasks_head(tmp_path, task, head):
    path = tmp_path / "data.csv"
    make_frame(task).to_csv(path, index=False)
    data = common.load_user_data(str(path), "target", task)
    splits, got_head = user_splits(data, seed=0)
    assert got_head == head
    assert sum(len(x) for x, _ in splits.values()) == len(data.target)
    x_train, y_train = splits["train"]
    assert x_train.dtype == np.float32 and y_train.shape == (len(x_train), 1)
    # Standardised on the training rows only.
    np.testing.assert_allclose(x_train[:, 0].mean(), 0, atol=1e-5)


def test_too_few_rows_is_a_template_error(tmp_path):
    path = tmp_path / "data.csv"
    make_frame("regression", rows=10).to_csv(path, index=False)
    data = common.load_user_data(str(path), "target", "regression")
    with pytest.raises(TemplateError, match="has 10 rows; the studies need at least 20"):
        user_splits(data, seed=0)


def test_epochs_study_runs_on_a_users_multiclass_csv(tmp_path, csv_for):
    path = csv_for("multiclass")
    assert epochs.main(["--quick", "--csv", path, "--target", "target", "--task", "multiclass",
                        "--output", str(tmp_path / "out")]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(common.FILES)
