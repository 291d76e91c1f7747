"""OutputLossCheck callback: fails fast when output layers and loss disagree."""

import collections

import keras
import numpy as np

from callbacks import _backend, _train_step_capture

# Task knowledge: loss function name -> (family, loss class, activation of
# the output that goes with it). Families drive the rules below.
_LOSS_FAMILIES = {
    "mean_squared_error": ("regression", "MeanSquaredError", "linear"),
    "mean_absolute_error": ("regression", "MeanAbsoluteError", "linear"),
    "binary_crossentropy": ("binary", "BinaryCrossentropy", "sigmoid"),
    "binary_focal_crossentropy": (
        "binary",
        "BinaryFocalCrossentropy",
        "sigmoid",
    ),
    "categorical_crossentropy": (
        "categorical",
        "CategoricalCrossentropy",
        "softmax",
    ),
    "categorical_focal_crossentropy": (
        "categorical",
        "CategoricalFocalCrossentropy",
        "softmax",
    ),
    "sparse_categorical_crossentropy": (
        "sparse_categorical",
        "SparseCategoricalCrossentropy",
        "softmax",
    ),
}
_CROSS_ENTROPY_FAMILIES = ("binary", "categorical", "sparse_categorical")
_PROBABILITY_ACTIVATIONS = ("sigmoid", "softmax")

_Head = collections.namedtuple(
    "_Head",
    ["name", "activation", "units", "loss", "family", "from_logits", "labels"],
)


class OutputLossMismatchError(ValueError):
    """Raised when an output layer does not fit the loss compiled for it."""


def _softmax_over_one_unit(head):
    if head.activation == "softmax" and head.units == 1:
        return (
            "softmax over a single unit always outputs 1.0, so nothing can "
            "be learned. Fix: for two classes use Dense(1, "
            "activation='sigmoid') with binary_crossentropy; for K classes "
            "use Dense(K, activation='softmax')."
        )


def _probabilities_with_regression_loss(head):
    if head.family != "regression":
        return None
    binary_labels = head.labels is not None and np.isin(
        head.labels, (0, 1)
    ).all()
    if head.activation == "softmax" or (
        head.activation == "sigmoid" and binary_labels
    ):
        fix = (
            "binary_crossentropy"
            if head.activation == "sigmoid"
            else "categorical_crossentropy (one-hot labels) or "
            "sparse_categorical_crossentropy (integer labels)"
        )
        return (
            f"a {head.activation} output predicts class probabilities, but "
            f"{head.loss} is a regression loss: its gradients vanish on "
            f"saturated probabilities. Fix: use {fix}."
        )


def _softmax_with_binary_loss(head):
    if head.activation == "softmax" and head.family == "binary":
        return (
            f"{head.loss} treats each of the {head.units} softmax units as "
            "an independent yes/no, but softmax makes them compete. Fix: use "
            "categorical_crossentropy (one-hot labels) or "
            "sparse_categorical_crossentropy (integer labels), or "
            "Dense(1, activation='sigmoid') for two classes."
        )


def _activation_and_from_logits_disagree(head):
    if head.family not in _CROSS_ENTROPY_FAMILIES:
        return None
    _, loss_class, activation = _LOSS_FAMILIES[head.loss]
    if head.activation == "linear" and not head.from_logits:
        return (
            f"the output is linear (logits), but {head.loss} with "
            "from_logits=False expects probabilities. Fix: compile with "
            f"loss=keras.losses.{loss_class}(from_logits=True), or give the "
            f"output layer activation='{activation}'."
        )
    if head.activation in _PROBABILITY_ACTIVATIONS and head.from_logits:
        return (
            f"the output already applies {head.activation}, but {head.loss} "
            f"with from_logits=True applies {activation} again. Fix: use "
            f"keras.losses.{loss_class}(from_logits=False), or a linear "
            "output layer."
        )


def _sparse_labels_disagree(head):
    if head.family != "sparse_categorical" or head.labels is None:
        return None
    labels = head.labels
    if labels.ndim == 2 and labels.shape[1] == head.units != 1:
        return (
            f"labels of shape {labels.shape} look one-hot, but {head.loss} "
            "needs integer class ids of shape (n,) or (n, 1). Fix: use "
            "categorical_crossentropy, or pass y.argmax(axis=-1)."
        )
    if labels.ndim > 2 or (labels.ndim == 2 and labels.shape[1] != 1):
        return (
            f"{head.loss} needs integer class ids of shape (n,) or (n, 1); "
            f"received labels of shape {labels.shape}."
        )
    if not np.issubdtype(labels.dtype, np.number) or np.any(
        labels != np.round(labels)
    ):
        return (
            f"{head.loss} needs integer class ids; received labels of dtype "
            f"{labels.dtype} such as {labels.ravel()[:3].tolist()}. Fix: map "
            "the classes to 0..K-1 (e.g. keras.layers.StringLookup)."
        )
    if head.units is not None and (
        labels.min() < 0 or labels.max() >= head.units
    ):
        return (
            f"{head.loss} needs class ids in [0, {head.units}) for "
            f"{head.units} output units; received labels from "
            f"{labels.min()} to {labels.max()}. Fix: set the output units to "
            "the number of classes, or map the classes to 0..K-1."
        )


def _one_hot_labels_disagree(head):
    if head.family != "categorical" or head.labels is None:
        return None
    labels = head.labels
    if labels.ndim == 1 or (labels.ndim == 2 and labels.shape[1] == 1):
        return (
            f"labels of shape {labels.shape} are class ids, but {head.loss} "
            f"needs one-hot labels of shape (n, {head.units}). Fix: use "
            "sparse_categorical_crossentropy, or pass "
            f"keras.utils.to_categorical(y, {head.units})."
        )
    if labels.ndim != 2 or labels.shape[1] != head.units:
        return (
            f"{head.loss} needs one-hot labels of shape (n, {head.units}) "
            f"for {head.units} output units; received labels of shape "
            f"{labels.shape}. Fix: one-hot encode with width {head.units}, or "
            "set the output units to the number of classes."
        )


_RULES = (
    _softmax_over_one_unit,
    _probabilities_with_regression_loss,
    _softmax_with_binary_loss,
    _activation_and_from_logits_disagree,
    _sparse_labels_disagree,
    _one_hot_labels_disagree,
)


def _activation_name(layer):
    if isinstance(layer, keras.layers.Softmax):
        return "softmax"
    return getattr(getattr(layer, "activation", None), "__name__", None)


def _output_layers(model):
    """Returns `(name, layer, units)` for each output of `model`."""
    try:
        tensors = model.outputs
    except AttributeError:
        tensors = None
    if tensors:
        layers = [tensor._keras_history.operation for tensor in tensors]
        # Functional models name outputs (dict keys or layer names);
        # Sequential models do not, their single output is its layer.
        names = getattr(model, "output_names", None) or [
            layer.name for layer in layers
        ]
        return [
            (name, layer, tensor.shape[-1])
            for name, layer, tensor in zip(names, layers, tensors)
        ]
    if isinstance(model, keras.Sequential) and model.layers:
        # A Sequential built without an Input has no output tensors; its
        # head is the last layer, maybe an Activation after a Dense.
        layer = model.layers[-1]
        units = getattr(layer, "units", None)
        if units is None and len(model.layers) > 1:
            units = getattr(model.layers[-2], "units", None)
        return [(layer.name, layer, units)]
    return []


def _loss_per_output(loss, names):
    if isinstance(loss, dict):
        return [loss.get(name) for name in names]
    if isinstance(loss, (list, tuple)):
        return list(loss)
    return [loss] * len(names)


def _labels_per_output(y, names):
    if y is None:
        return [None] * len(names)
    if isinstance(y, dict):
        return [
            None if y.get(name) is None else np.asarray(y[name])
            for name in names
        ]
    if len(names) == 1:
        return [np.asarray(y)]
    if isinstance(y, (list, tuple)) and len(y) == len(names):
        return [np.asarray(labels) for labels in y]
    raise ValueError(
        f"The model has {len(names)} outputs {names}: pass `y` as a dict "
        "keyed by output name or a list with one array per output. Received "
        f"y of type {type(y).__name__}."
    )


def _describe_loss(loss):
    """Returns `(function name, from_logits)` of a compiled loss."""
    if isinstance(loss, str):
        return keras.losses.get(loss).__name__, False
    if isinstance(loss, keras.losses.Loss):
        function = getattr(loss, "fn", None)
        name = getattr(function, "__name__", type(loss).__name__)
        return name, bool(getattr(loss, "from_logits", False))
    return getattr(loss, "__name__", repr(loss)), False


def check_output_loss(model, y=None):
    """Checks that each output layer of a compiled model fits its loss.

    Finds the layer producing each model output (the last layer of a
    `Sequential` built without an `Input`), reads its activation (a layer's
    `activation`, or an `Activation`/`Softmax` layer) and units, and compares
    them with the loss compiled for that output. The loss may be a string, a
    `keras.losses.Loss`, a function, or a list or dict (by output name) for
    multi-output models. Raises for:

    - softmax over one unit;
    - softmax with a regression loss (mean squared or absolute error), or
      sigmoid with one on 0/1 labels;
    - softmax with binary cross-entropy;
    - a linear output with cross-entropy and `from_logits=False`, or a
      sigmoid/softmax output with `from_logits=True`;
    - with labels: sparse categorical cross-entropy without integer class
      ids of shape `(n,)` or `(n, 1)` in `[0, units)`, and categorical
      cross-entropy without one-hot labels of width `units`.

    Losses it does not know (custom ones) and outputs whose layer has no
    known activation pass the loss checks. Subclassed models, which have no
    output tensors to trace, pass unchecked.

    Args:
        model: a compiled `keras.Model`.
        y: optional sample of the training labels (array-like; a dict by
            output name or a list per output for multi-output models),
            needed for the label checks. Defaults to `None` (no label
            checks).

    Raises:
        OutputLossMismatchError: listing every mismatch found, with its fix.
        ValueError: if `model` is not compiled, or `y` does not match the
            model's outputs.

    Example:

    >>> model = keras.Sequential(
    ...     [keras.Input((4,)), keras.layers.Dense(3, name="head")]
    ... )
    >>> model.compile(loss="sparse_categorical_crossentropy")
    >>> check_output_loss(model)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    callbacks.output_loss_check.OutputLossMismatchError: Output 'head' \
(linear, 3 units) does not fit loss sparse_categorical_crossentropy: the \
output is linear (logits), but ...
    """
    if not model.compiled:
        raise ValueError(
            "check_output_loss needs a compiled model; call "
            f"model.compile(loss=...) first. Received model '{model.name}' "
            "with compiled=False."
        )
    outputs = _output_layers(model)
    if model.loss is None or not outputs:
        return
    names = [name for name, _, _ in outputs]
    losses = _loss_per_output(model.loss, names)
    labels = _labels_per_output(y, names)
    problems = []
    for (name, layer, units), loss, output_labels in zip(
        outputs, losses, labels
    ):
        if loss is None:
            continue
        loss_name, from_logits = _describe_loss(loss)
        family = _LOSS_FAMILIES.get(loss_name, (None,))[0]
        head = _Head(
            name,
            _activation_name(layer),
            units,
            loss_name,
            family,
            from_logits,
            output_labels,
        )
        for rule in _RULES:
            problem = rule(head)
            if problem:
                plural = "" if units == 1 else "s"
                problems.append(
                    f"Output '{name}' ({head.activation}, {units} unit"
                    f"{plural}) does not fit loss {loss_name}: {problem}"
                )
    if problems:
        raise OutputLossMismatchError("\n".join(problems))


class OutputLossCheck(keras.callbacks.Callback):
    """Raises before the first step when output layers and loss disagree.

    At the start of `fit()` it runs `check_output_loss()` on the model, so a
    mismatch such as a softmax over one unit, a softmax with binary
    cross-entropy or a linear output with `from_logits=False` stops training
    with an `OutputLossMismatchError` naming the fix, before any weight
    changes. It also checks the labels against the loss (sparse versus
    one-hot, class ids against the output units): the labels `y` given, or
    else the labels of the first batch `fit()` feeds the model, whatever
    feeds it (arrays, a `tf.data.Dataset`, a generator, a
    `keras.utils.PyDataset`). That batch is seen before its step runs (the
    train function's first call is run by a thin wrapper, see
    `callbacks/_train_step_capture.py`), so a mismatch still stops training
    before any weight changes; on TensorFlow that first call runs Keras's
    per-batch path. To check without training, call
    `check_output_loss(model, y)`. Works on the TensorFlow, JAX and PyTorch
    backends.

    Args:
        y: optional sample of the training labels (array-like; a dict by
            output name or a list per output for multi-output models), used
            for the label checks. A few hundred rows suffice. Defaults to
            `None`: the labels of the first training batch.

    Example:

    >>> import numpy as np
    >>> x = np.random.normal(size=(32, 4))
    >>> y = np.arange(32) % 5  # five classes
    >>> head = keras.layers.Dense(3, activation="softmax", name="head")
    >>> model = keras.Sequential([keras.Input((4,)), head])
    >>> model.compile(loss="sparse_categorical_crossentropy")
    >>> model.fit(x, y, callbacks=[OutputLossCheck()], verbose=0)
    ... # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    callbacks.output_loss_check.OutputLossMismatchError: Output 'head' \
(softmax, 3 units) does not fit loss sparse_categorical_crossentropy: \
sparse_categorical_crossentropy needs class ids in [0, 3) for 3 output \
units; received labels from 0 to 4. ...
    """

    def __init__(self, y=None):
        super().__init__()
        _backend.require_supported_backend("OutputLossCheck")
        is_labels = isinstance(y, (dict, list, tuple)) or hasattr(y, "shape")
        if not (y is None or is_labels):
            raise ValueError(
                "OutputLossCheck needs `y` to be a sample of the training "
                "labels: an array, a list, or a dict keyed by output name. "
                f"Received y={y!r}"
            )
        self.y = y

    def on_train_begin(self, logs=None):
        check_output_loss(self.model, self.y)
        if self.y is None:
            hub = _train_step_capture.register(self, "OutputLossCheck")
            hub.peek(self._check_batch)

    def _check_batch(self, batch):
        _, y, _ = keras.utils.unpack_x_y_sample_weight(batch)
        if y is not None:
            to_numpy = _backend.get("OutputLossCheck").to_numpy
            check_output_loss(self.model, keras.tree.map_structure(to_numpy, y))

    def on_train_end(self, logs=None):
        _train_step_capture.unregister(self)

    def get_config(self):
        return {"y": _to_python(self.y)}


def _to_python(value):
    if isinstance(value, dict):
        return {key: _to_python(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_python(item) for item in value]
    if hasattr(value, "tolist"):
        return value.tolist()
    return value
