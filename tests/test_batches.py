"""Array batches, the feed of the backends other than TensorFlow: one shape, every row."""

import numpy as np
import pytest

from templates.batches import ArrayBatches


def numbered_rows(count):
    rows = np.arange(count)
    return {"numeric_columns": np.stack([rows, -rows], axis=1).astype("float32")}, rows


def one_epoch(batches):
    served = [batches[index] for index in range(len(batches))]
    batches.on_epoch_end()
    return served


def test_training_batches_all_have_the_batch_size_and_keep_rows_together():
    inputs, targets = numbered_rows(10)
    for features, target in one_epoch(ArrayBatches(inputs, targets, batch_size=4, shuffle=True)):
        assert len(target) == 4
        np.testing.assert_array_equal(features["numeric_columns"][:, 0], target)
        np.testing.assert_array_equal(features["numeric_columns"][:, 1], -target)


def test_training_rows_are_reshuffled_every_epoch_and_all_rows_take_turns():
    inputs, targets = numbered_rows(10)
    batches = ArrayBatches(inputs, targets, batch_size=4, shuffle=True, seed=3)
    epochs = [np.concatenate([target for _, target in one_epoch(batches)]) for _ in range(20)]
    assert not np.array_equal(epochs[0], epochs[1])
    assert set(np.concatenate(epochs)) == set(range(10))


def test_a_batch_larger_than_the_rows_is_all_the_rows():
    inputs, targets = numbered_rows(5)
    served = one_epoch(ArrayBatches(inputs, targets, batch_size=32, shuffle=True))
    assert [len(target) for _, target in served] == [5]


@pytest.mark.parametrize("count, sizes", [(10, [4, 4, 2]), (8, [4, 4])])
def test_evaluation_batches_serve_every_row_once_in_order(count, sizes):
    inputs, _ = numbered_rows(count)
    served = one_epoch(ArrayBatches(inputs, batch_size=4))
    assert [len(features["numeric_columns"]) for features in served] == sizes
    np.testing.assert_array_equal(
        np.concatenate([features["numeric_columns"][:, 0] for features in served]), np.arange(count))
