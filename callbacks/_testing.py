"""Test support: the same rows fed to `fit` in each of the ways Keras takes them."""

import keras

FEEDS = ("arrays", "generator", "pydataset", "tf_data")


def fit_arguments(kind, x, y, batch_size):
    """Returns `fit` keyword arguments that feed `(x, y)` in batches, as `kind` says.

    Args:
        kind: str, one of `FEEDS`: numpy arrays with `batch_size`, a Python
            generator of batches, a `keras.utils.PyDataset`, or a
            `tf.data.Dataset` (needs TensorFlow).
        x: an array, or a dict of arrays, of model inputs.
        y: an array of targets.
        batch_size: int, rows per batch.

    Example:

    >>> import numpy as np
    >>> arguments = fit_arguments("generator", np.zeros((4, 2)), np.zeros(4), batch_size=2)
    >>> [batch_x.shape for batch_x, _ in arguments["x"]]
    [(2, 2), (2, 2)]
    """
    if kind == "arrays":
        return {"x": x, "y": y, "batch_size": batch_size}
    batches = [
        (keras.tree.map_structure(lambda column, start=start: column[start:start + batch_size], x),
         y[start:start + batch_size])
        for start in range(0, len(y), batch_size)
    ]
    if kind == "generator":
        return {"x": (batch for batch in batches)}
    if kind == "pydataset":
        class Batches(keras.utils.PyDataset):
            def __len__(self):
                return len(batches)

            def __getitem__(self, index):
                return batches[index]

        return {"x": Batches()}
    if kind == "tf_data":
        import tensorflow as tf

        return {"x": tf.data.Dataset.from_tensor_slices((x, y)).batch(batch_size)}
    raise ValueError(f"Received kind={kind!r}; expected one of: {', '.join(FEEDS)}.")
