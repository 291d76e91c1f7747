"""Batches of in-memory rows for `fit`, `evaluate` and `predict`: the fastest feed per backend.

`make_batches` is what the templates feed Keras. On TensorFlow it is a
`tf.data.Dataset` (`make_dataset`): with `steps_per_execution=32`, about
1.4x the throughput of handing Keras the numpy arrays. On JAX it is
`ArrayBatches`, numpy slices of arrays shuffled once per epoch: fed through
`tf.data`, JAX converts every batch and loses its lead over TensorFlow
(benchmarks/README.md). Training batches all have the same size, so JAX
compiles the training step once, not twice for a last, smaller batch.

Example:

>>> import numpy as np
>>> batches = ArrayBatches({"numeric_columns": np.zeros((10, 2), "float32")}, np.arange(10),
...                        batch_size=4, shuffle=True)
>>> len(batches), [len(batches[i][1]) for i in range(len(batches))]
(2, [4, 4])
"""

import keras
import numpy as np

# `make_dataset` slices rows up to this size and gathers batches above it:
# the break-even of a 30-epoch fit measured here lies between 3,000 and
# 10,000 rows, with and without text columns.
ROW_SLICING_MAX_ROWS = 5000


def make_batches(inputs, targets=None, *, batch_size=32, shuffle=False, seed=0):
    """Batches of column arrays (and targets) for the backend Keras runs on.

    Args:
        inputs: dict of arrays from `templates.preprocessing.frame_to_inputs`.
        targets: optional array of encoded labels.
        batch_size: int, rows per batch.
        shuffle: bool, training batches: reshuffled every epoch, and (on
            backends other than TensorFlow) all of one size.
        seed: int, the shuffle seed.

    Returns:
        A `tf.data.Dataset` on TensorFlow, else `ArrayBatches`.
    """
    if keras.backend.backend() == "tensorflow":
        return make_dataset(inputs, targets, batch_size=batch_size, shuffle=shuffle, seed=seed)
    return ArrayBatches(inputs, targets, batch_size=batch_size, shuffle=shuffle, seed=seed)


class ArrayBatches(keras.utils.PyDataset):
    """Numpy batches of in-memory rows, reshuffled every epoch when `shuffle` is set.

    With `shuffle`, every batch holds `batch_size` rows (or all rows, when
    there are fewer): the rows left over by the last full batch wait for the
    next epoch's order, as with `drop_remainder` in `tf.data`. One shape
    means one compilation of the training step on JAX; a second shape costs
    as much again (about 0.5 s a fit on two cores). Without `shuffle`
    (evaluation, prediction), every row is served once, in order.

    Args:
        inputs: dict of arrays, one row per target.
        targets: optional array of targets.
        batch_size: int, rows per batch.
        shuffle: bool. Defaults to `False`.
        seed: int, the shuffle seed. Defaults to `0`.
    """

    def __init__(self, inputs, targets=None, *, batch_size=32, shuffle=False, seed=0):
        super().__init__()
        self.inputs, self.targets = dict(inputs), targets
        self.num_rows = len(next(iter(self.inputs.values())))
        self.batch_size = min(int(batch_size), self.num_rows)
        self.shuffle = shuffle
        self.seed = seed
        self._rng = np.random.default_rng(seed)
        self._epoch_inputs, self._epoch_targets = self.inputs, self.targets
        self.order = None  # this epoch's permutation of the rows, when shuffled
        if shuffle:
            self.on_epoch_end()

    def __len__(self):
        if self.shuffle:
            return self.num_rows // self.batch_size
        return -(-self.num_rows // self.batch_size)

    def __getitem__(self, index):
        rows = slice(index * self.batch_size, (index + 1) * self.batch_size)
        inputs = {name: values[rows] for name, values in self._epoch_inputs.items()}
        if self.targets is None:
            return inputs
        return inputs, self._epoch_targets[rows]

    def on_epoch_end(self):
        """Draws the next epoch's order (contiguous copies: each batch is then a view)."""
        if self.shuffle:
            self._serve(self._rng.permutation(self.num_rows))

    def next_orders(self, epochs):
        """The orders of the next `epochs` epochs, as `on_epoch_end` would draw them.

        Returns an int array of shape `(epochs, num_rows)`, and leaves the
        batches as after the last of those `on_epoch_end` calls, without
        copying the rows for the epochs in between (`tuning.fused_fit`
        gathers them itself).
        """
        orders = np.stack([self._rng.permutation(self.num_rows) for _ in range(epochs)])
        if epochs:
            self._serve(orders[-1])
        return orders

    def _serve(self, order):
        self.order = order
        self._epoch_inputs = {name: values[order] for name, values in self.inputs.items()}
        if self.targets is not None:
            self._epoch_targets = np.asarray(self.targets)[order]


def make_dataset(inputs, targets=None, *, batch_size=32, shuffle=False, seed=0):
    """Wraps column arrays (and targets) in a batched `tf.data.Dataset`.

    Up to `ROW_SLICING_MAX_ROWS` rows, the pipeline slices rows from the
    tensors, in the training thread; above it, it shuffles and batches row
    indices and gathers whole batches in parallel and ahead of training,
    which costs less per row but about 3 ms more for each new iterator
    (Keras makes a new one for every epoch and every validation).

    Args:
        inputs: dict of arrays from `frame_to_inputs`.
        targets: optional array of encoded labels.
        batch_size: int, rows per batch.
        shuffle: bool, reshuffle the rows every epoch.
        seed: int, the shuffle seed.

    Returns:
        A `tf.data.Dataset`.

    Example:

    >>> data = make_dataset({"numeric_columns": np.zeros((5, 2), "float32")}, np.arange(5), batch_size=2)
    >>> [len(targets) for _, targets in data]
    [2, 2, 1]
    """
    import tensorflow as tf

    tensors = {name: tf.constant(values) for name, values in inputs.items()}
    if targets is not None:
        tensors = (tensors, tf.constant(targets))
    num_rows = len(next(iter(inputs.values())))
    if num_rows <= ROW_SLICING_MAX_ROWS:
        rows = tf.data.Dataset.from_tensor_slices(tensors)
        if shuffle:
            rows = rows.shuffle(num_rows, seed=seed, reshuffle_each_iteration=True)
        # Without tf.data's autotuning: with two training processes on two
        # cores, it left each one waiting about a quarter of the time.
        options = tf.data.Options()
        options.autotune.enabled = False
        return rows.batch(batch_size).prefetch(2).with_options(options)
    indices = tf.data.Dataset.range(num_rows)
    if shuffle:
        indices = indices.shuffle(num_rows, seed=seed, reshuffle_each_iteration=True)
    return indices.batch(batch_size).map(
        lambda index: tf.nest.map_structure(lambda tensor: tf.gather(tensor, index), tensors),
        num_parallel_calls=tf.data.AUTOTUNE,
    ).prefetch(tf.data.AUTOTUNE)
