"""Probe data shared by the monitors: validation, tensors and plain configs.

A probe is a small, fixed set of rows the monitors push through the model at
every measurement. Its inputs follow the model's input structure: one array, a
list of arrays or a dict of arrays keyed by input name (numeric or string
columns). Targets follow the model's output structure.
"""

import keras
import numpy as np

_ARRAY_TAG = "__ndarray__"


def validate_probe(callback_name, argument, value):
    """Checks that `value` is a non-empty nest of arrays of equal length.

    Lists and tuples are structure (several inputs or outputs), never rows.

    Args:
        callback_name: str, the callback asking, used in error messages.
        argument: str, how the value was passed (e.g. `"probe"`), used in
            error messages.
        value: an array, or a list, tuple or dict nesting arrays.

    Returns:
        The same nest with every leaf converted to a NumPy array.

    Raises:
        ValueError: if a leaf has no leading (row) dimension, the nest is
            empty, or the leaves disagree on the number of rows.

    Example:

    >>> validate_probe("GradientMonitor", "probe", {"age": np.ones((2, 1))})
    {'age': array([[1.],
           [1.]])}
    """
    arrays = keras.tree.map_structure(np.asarray, value)
    leaves = keras.tree.flatten(arrays)
    if not leaves:
        raise ValueError(
            f"{callback_name} needs at least one array in `{argument}`. "
            f"Received: {argument}={value!r}"
        )
    rows = set()
    for leaf in leaves:
        if leaf.ndim == 0:
            raise ValueError(
                f"{callback_name} expects arrays with one row per sample in "
                f"`{argument}`; found a scalar. Received: {argument} holding "
                f"{leaf!r}"
            )
        rows.add(leaf.shape[0])
    if len(rows) > 1 or 0 in rows:
        raise ValueError(
            f"{callback_name} expects every array in `{argument}` to hold the "
            f"same, non-zero number of rows. Received arrays with "
            f"{sorted(rows)} rows"
        )
    return arrays


def to_tensors(value):
    """Converts a nest of arrays to backend tensors, keeping its structure.

    String arrays (text columns) become TensorFlow string tensors: only the
    TensorFlow backend has them.
    """

    def convert(array):
        if array.dtype.kind in "OSU":
            import tensorflow as tf

            return tf.convert_to_tensor(array)
        return keras.ops.convert_to_tensor(array)

    return keras.tree.map_structure(convert, value)


def probe_to_config(value):
    """Turns a nest of arrays into plain Python values (JSON-serializable).

    Example:

    >>> probe_to_config({"age": np.array([1.5], "float32")})
    {'age': {'__ndarray__': [1.5], 'dtype': 'float32'}}
    """
    if isinstance(value, dict):
        return {key: probe_to_config(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [probe_to_config(item) for item in value]
    return {_ARRAY_TAG: value.tolist(), "dtype": str(value.dtype)}


def probe_from_config(config):
    """Inverse of `probe_to_config`: rebuilds the nest of arrays.

    Example:

    >>> probe_from_config({"age": {"__ndarray__": [1.5], "dtype": "float32"}})
    {'age': array([1.5], dtype=float32)}
    """
    if isinstance(config, dict) and _ARRAY_TAG in config:
        return np.asarray(config[_ARRAY_TAG], dtype=config["dtype"])
    if isinstance(config, dict):
        return {key: probe_from_config(item) for key, item in config.items()}
    return [probe_from_config(item) for item in config]
