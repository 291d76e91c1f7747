"""One compiled model for every fold of a cross-validated trial.

The K folds of a trial build K models that differ only in what they learn
from their own rows: the normalisation statistics, which `Standardize`
keeps as weights, besides the initial weights themselves. Each new model
would trace, lower and compile its training and evaluation steps again
(about 0.5 s a fold on JAX, more on TensorFlow). Instead, each fold's fresh
model hands its whole state (weights, statistics, random seed states and a
fresh optimizer state) to one model that trains every fold, so its compiled
steps are reused: the same start, the same program, the same results.

Models that differ in anything else must not share: a text column's
vocabulary (each fold's own), the regression template's target scaling
(constants of `Rescaling` and of the loss weight), or any edit of a copied
template that builds from the rows. `can_share` compares the two models'
layer and compile configurations, the statistics left out, and refuses
anything else that differs. Models that differ only in those scaling
settings still train with one compiled program on JAX, each in itself,
since `tuning.fused_fit` takes the settings as arguments (`same_program`).

Example:

>>> import keras, numpy as np
>>> from templates.layers import Standardize
>>> def build(mean):
...     inputs = keras.Input((2,))
...     x = Standardize(mean=mean, variance=[1.0, 1.0], name="normalize_numeric")(inputs)
...     model = keras.Model(inputs, keras.layers.Dense(1, name="output")(x))
...     model.compile("adam", "mse")
...     return model
>>> trained, fresh = build([0.0, 0.0]), build([5.0, 1.0])
>>> can_share(trained, fresh)
True
>>> copy_state(fresh, trained)
>>> trained.get_layer("normalize_numeric").get_config()["mean"]
[5.0, 1.0]
"""

from keras import ops

# Layer configuration keys whose values the layer also holds as weights:
# copying the weights copies them.
VALUES_HELD_AS_WEIGHTS = {"Standardize": ("mean", "variance")}
# Float settings computed from the rows that are no weights (the regression
# template's target scaling), by layer and by metric class: configuration
# keys, which are also the attributes holding them. They and a compiled loss
# weight are arguments of `tuning.fused_fit`'s program (`row_settings`).
LAYER_SETTINGS = {"Rescaling": ("scale", "offset")}
METRIC_SETTINGS = {"DataLoss": ("weight",)}
# Layers whose configuration does not show everything they compute with.
UNCOMPARABLE_LAYERS = ("Lambda",)


def can_share(model, other):
    """Whether `other`'s state can be trained in `model`'s compiled steps.

    Args:
        model: a compiled `keras.Model`, e.g. the first fold's.
        other: a compiled `keras.Model` built by the same code on other rows.

    Returns:
        bool: `True` when the two differ only in the values of their weights
        (and of the configuration values those weights hold).
    """
    if model.optimizer is None or other.optimizer is None:
        return False
    architecture = _architecture(model)
    if architecture is None or architecture != _architecture(other):
        return False
    # Same compile configuration and weight shapes: the same optimizer slots.
    return _shapes(model.variables) == _shapes(other.variables)


def same_program(model, other):
    """Whether `other`'s fits can run `model`'s compiled JAX program (`tuning.fused_fit`).

    As `can_share`, except that the two may differ in the float settings the
    program takes as arguments: `Rescaling`'s scale and offset, the compiled
    loss weight and `DataLoss`' weight (the regression template's target
    scaling). Each model then trains in itself, with its own settings.

    Args:
        model: a compiled `keras.Model`, e.g. the first fold's.
        other: a compiled `keras.Model` built by the same code on other rows.

    Returns:
        bool.
    """
    if model.optimizer is None or other.optimizer is None:
        return False
    architecture = _architecture(model, settings=False)
    if architecture is None or architecture != _architecture(other, settings=False):
        return False
    return _shapes(model.variables) == _shapes(other.variables)


def copy_state(source, target):
    """Assigns `source`'s whole state to `target`, as if `target` were `source`.

    Weights, non-trainable weights (the statistics), random seed states and
    the optimizer's variables (its step count, moments and learning rate, as
    a freshly built optimizer has them) are copied variable by variable.

    Args:
        source: the fold's freshly built, compiled `keras.Model`.
        target: a model for which `can_share(target, source)` holds.
    """
    for target_variable, source_variable in zip(training_state(target), training_state(source),
                                                strict=True):
        # A copy, not the same array: JAX frees (donates) a model's state
        # arrays when its compiled steps run, and the other model would lose it.
        target_variable.assign(ops.convert_to_numpy(source_variable.value))


def training_state(model):
    """Every variable `model.fit` starts from: the model's, then its (built) optimizer's."""
    if not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    return [*model.variables, *model.optimizer.variables]


def _shapes(variables):
    return [(tuple(variable.shape), str(variable.dtype)) for variable in variables]


def _architecture(model, settings=True):
    """The model's layer and compile configurations, weight-held values left out.

    With `settings=False`, the float settings of `LAYER_SETTINGS` and
    `METRIC_SETTINGS` and the compiled loss weight are left out too.
    `None` where the configuration cannot tell two models apart: a
    subclassed model (its configuration need not list its layers) or a
    `Lambda` layer (a function may close over values of the rows).
    """
    try:
        config = model.get_config()
    except NotImplementedError:
        return None
    layers = config.get("layers") if isinstance(config, dict) else None
    if not layers:
        return None
    for layer in layers:
        if layer.get("class_name") in UNCOMPARABLE_LAYERS:
            return None
        for key in VALUES_HELD_AS_WEIGHTS.get(layer.get("class_name"), ()):
            layer.get("config", {}).pop(key, None)
        if not settings:
            _drop_numbers(layer.get("config", {}), LAYER_SETTINGS.get(layer.get("class_name"), ()))
    compile_config = model.get_compile_config() or {}
    if not settings:
        _drop_numbers(compile_config, ("loss_weights",))
        for metric in compile_config.get("metrics") or ():
            if isinstance(metric, dict):
                _drop_numbers(metric.get("config", {}),
                              METRIC_SETTINGS.get(metric.get("class_name"), ()))
    optimizer = compile_config.get("optimizer")
    if isinstance(optimizer, dict):
        optimizer.get("config", {}).pop("name", None)  # "adam", "adam_1", ...
    # Layers left unnamed are numbered as they are made ("dense_3", "dense_7"):
    # each name stands for its position.
    positions = {layer.get("name"): f"<layer {index}>" for index, layer in enumerate(layers)}
    positions[config.get("name")] = "<model>"
    return repr(_renamed(config, positions)), repr(_renamed(compile_config, positions))


def _drop_numbers(config, keys):
    """Removes `keys` from `config` where each holds one number (not a list of them)."""
    if all(isinstance(config.get(key), (int, float)) for key in keys):
        for key in keys:
            config.pop(key, None)


def _renamed(value, names):
    """`value` (nested dicts, lists, tuples) with every string in `names` replaced."""
    if isinstance(value, dict):
        return {key: _renamed(item, names) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_renamed(item, names) for item in value]
    if isinstance(value, str):
        return names.get(value, value)
    return value
