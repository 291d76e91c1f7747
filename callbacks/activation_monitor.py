"""ActivationMonitor callback: saturated sigmoid/tanh and dead ReLU units."""

import contextlib
import warnings

import keras
import numpy as np

from callbacks import _backend, _plotting, _probe
from callbacks._probe_monitor import ProbeMonitor

# A unit output counts as saturated where the activation's derivative is
# below this fraction of its maximum: sigmoid outputs below 0.013 or above
# 0.987, tanh outputs beyond +-0.975.
_SATURATED_DERIVATIVE = 0.05


def _saturated_fraction(derivative):
    def fraction(outputs):
        saturated = derivative(outputs) < _SATURATED_DERIVATIVE
        return keras.ops.mean(keras.ops.cast(saturated, "float32"))

    return fraction


def _dead_fraction(outputs):
    units = keras.ops.reshape(outputs, (-1, outputs.shape[-1]))
    alive = keras.ops.any(units > 0, axis=0)
    return 1.0 - keras.ops.mean(keras.ops.cast(alive, "float32"))


# Activation name -> (verdict, fraction of the layer's outputs it judges).
# Derivatives are written in terms of the outputs, scaled to a maximum of 1.
_MEASURES = {
    "sigmoid": ("saturated", _saturated_fraction(lambda y: 4 * y * (1 - y))),
    "tanh": ("saturated", _saturated_fraction(lambda y: 1 - keras.ops.square(y))),
    "relu": ("dead", _dead_fraction),
    "relu6": ("dead", _dead_fraction),
}
_REMEDIES = {
    "saturated": (
        "sigmoid/tanh outputs sit where the derivative is below 5% of its "
        "maximum, so little gradient passes. Remedy: standardise the inputs "
        "(a Normalization layer), put BatchNormalization before the "
        "activation, lower the learning rate if saturation grew during "
        "training, or use ReLU with He initialisation."
    ),
    "dead": (
        "ReLU units output zero for every probe sample, so they get no "
        "gradient and stop learning. Remedy: lower the learning rate, use He "
        "initialisation, LeakyReLU (or ELU), or BatchNormalization before "
        "the activation."
    ),
}


class ActivationMonitor(ProbeMonitor):
    """Tracks saturated sigmoid/tanh units and dead ReLU units per layer.

    At every measurement the monitor runs the model on a fixed probe batch in
    inference mode (`training=False`): the `probe` given, or else the first
    batch of inputs `fit()` feeds the model (whatever feeds it: arrays, a
    `tf.data.Dataset`, a generator, a `keras.utils.PyDataset`), kept for the
    whole `fit()`. It looks at the output of every hidden layer with a sigmoid, tanh, ReLU or ReLU6 `activation` (Dense and
    convolution layers, `Activation` layers; nested layers and subclassed
    models included). Layers whose output is a model output are left out:
    a confident sigmoid or softmax head is saturated by design.

    - *saturated* (sigmoid, tanh): the fraction of unit outputs, over all
      probe samples (and positions), where the activation's derivative is
      below 5% of its maximum (sigmoid output below 0.013 or above 0.987,
      tanh output beyond +-0.975). Gradients barely pass such units.
    - *dead* (ReLU): the fraction of units (channels, the last axis) that
      output zero for every probe sample and position. A dead unit gets no
      gradient and never recovers by itself.

    A layer is flagged when its fraction exceeds `max_saturated_fraction` or
    `max_dead_fraction`; `on_saturated` and `on_dead` choose between a
    warning, stopping training and raising, with a message naming the layers,
    their fractions and a remedy. A warning is repeated only when the set of
    flagged layers changes.

    How activations are obtained: at each measurement the monitor calls the
    model on the probe while each monitored layer's `activation` is wrapped
    to record its output, and computes the fractions from what was
    recorded; the wrappers are removed right after, so training runs the
    unchanged layers. It works the same on the TensorFlow, JAX and PyTorch
    backends. Cost: one forward pass over the probe per measurement. An
    eager pass dispatches every operation on its own (on JAX about 2 ms for
    a small MLP, 2% of a short epoch), so on JAX and TensorFlow it is
    compiled once per `fit()` (a `jax.jit` with the weights as arguments, a
    `tf.function` reading the variables) and costs one dispatch; on
    PyTorch it runs eagerly. Measurements are taken when the probe is known
    (when training begins, or after the first step when the probe is the
    first batch), at the end of every epoch and, if `every_n_batches` is
    set, every that many batches. The first batch is seen before its step runs:
    the train function's first call is run by a thin wrapper (see
    `callbacks/_train_step_capture.py`); later steps run unchanged.

    Logs: `saturated_fraction/<layer>` or `dead_fraction/<layer>` per
    monitored layer, and `saturated_fraction/max` and `dead_fraction/max`
    (the largest over the layers of that kind, when there are any). List
    the monitor before `CSVLogger` or `TensorBoard` in `callbacks=[...]` so
    that they receive these entries; `History` and the progress bar always
    do.

    Args:
        probe: optional probe inputs: an array, a list of arrays or a dict of
            arrays, as the model takes them. A few hundred rows are plenty;
            more rows make "dead" stricter (zero for every one of them).
            Defaults to `None`: the first training batch's inputs.
        every_n_batches: int or None, also measure every this many training
            batches. `None` measures at the end of each epoch only. Defaults
            to `None`.
        max_saturated_fraction: float in `(0, 1)`, flag a sigmoid/tanh layer
            whose saturated fraction exceeds it. Defaults to `0.5`.
        max_dead_fraction: float in `(0, 1)`, flag a ReLU layer whose dead
            fraction exceeds it. Defaults to `0.5`.
        on_saturated: str, `"warn"`, `"stop"` (warn and stop training) or
            `"raise"` (raise a `RuntimeError`). Defaults to `"warn"`.
        on_dead: str, as `on_saturated`. Defaults to `"warn"`.

    Attributes:
        saturated_layers: list of str, layers flagged as saturated at the
            latest measurement.
        dead_layers: list of str, layers flagged for dead units at the
            latest measurement.
        history: dict of lists, one entry per measurement: `"step"` (training
            batches done), `"epoch"` (0-based) and every log entry.

    Example:

    >>> import numpy as np
    >>> x = np.random.rand(64, 4).astype("float32")
    >>> y = x.sum(axis=1, keepdims=True)
    >>> model = keras.Sequential([
    ...     keras.Input((4,)),
    ...     keras.layers.Dense(8, activation="relu", name="relu_layer"),
    ...     keras.layers.Dense(8, activation="tanh", name="tanh_layer"),
    ...     keras.layers.Dense(1, name="output")])
    >>> model.compile(optimizer="sgd", loss="mse")
    >>> monitor = ActivationMonitor()
    >>> history = model.fit(x, y, epochs=2, callbacks=[monitor], verbose=0)
    >>> sorted(key for key in history.history if key.endswith("_layer"))
    ['dead_fraction/relu_layer', 'saturated_fraction/tanh_layer']
    >>> monitor.dead_layers
    []
    >>> monitor.plot("activations.png")
    """

    def __init__(
        self,
        probe=None,
        every_n_batches=None,
        max_saturated_fraction=0.5,
        max_dead_fraction=0.5,
        on_saturated="warn",
        on_dead="warn",
    ):
        _backend.require_supported_backend("ActivationMonitor")
        for argument, value in (
            ("max_saturated_fraction", max_saturated_fraction),
            ("max_dead_fraction", max_dead_fraction),
        ):
            if not 0 < value < 1:
                raise ValueError(
                    f"ActivationMonitor expects `{argument}` in (0, 1), a "
                    f"fraction of the layer. Received: {argument}={value!r}"
                )
        super().__init__(
            probe=None
            if probe is None
            else _probe.validate_probe("ActivationMonitor", "probe", probe),
            every_n_batches=every_n_batches,
            actions={
                "saturated": ("on_saturated", on_saturated),
                "dead": ("on_dead", on_dead),
            },
        )
        self.max_saturated_fraction = max_saturated_fraction
        self.max_dead_fraction = max_dead_fraction
        self.on_saturated = on_saturated
        self.on_dead = on_dead
        # Set when training begins: monitored layer name -> verdict kind.
        self._layers = {}

    @property
    def saturated_layers(self):
        return self._flagged["saturated"]

    @property
    def dead_layers(self):
        return self._flagged["dead"]

    def _build_measure(self, probe):
        model = self.model
        backend = _backend.get("ActivationMonitor")
        x = _probe.to_tensors(probe)
        backend.sync(model)
        if not model.built:
            # A subclassed model is built by its first call.
            with backend.inference():
                model(x, training=False)
        layers = [
            layer
            for layer in model._flatten_layers(include_self=False, recursive=True)
            if _activation_name(layer) in _MEASURES
        ]
        heads = _output_layers(model)
        names = []

        def judged_fractions(x):
            # Traced once on JAX (`backend.compiled`): `names`, the layers
            # judged in call order, is set while it runs.
            with backend.inference(), _recording(layers) as recorded:
                outputs = keras.tree.flatten(model(x, training=False))
            judged = {
                name: _MEASURES[activation][1](keras.ops.cast(value, "float32"))
                for name, (activation, value) in recorded.items()
                if name not in heads
                and not any(value is output for output in outputs)
            }
            names[:] = judged
            if not judged:
                return keras.ops.zeros((0,))
            return keras.ops.stack(list(judged.values()))

        forward = backend.compiled(model, judged_fractions)

        def fractions():
            vector = backend.to_numpy(forward(x))
            return {name: float(value) for name, value in zip(names, vector)}

        measured = fractions()
        self._layers = {
            layer.name: _MEASURES[_activation_name(layer)][0]
            for layer in layers
            if layer.name in measured
        }
        if not self._layers:
            warnings.warn(
                "ActivationMonitor found no hidden layer with a sigmoid, tanh, "
                f"ReLU or ReLU6 activation in the model '{model.name}'; it "
                "records nothing in this fit.",
                stacklevel=2,
            )
        first = [measured]

        def measure():
            values = first.pop() if first else fractions()
            return self._summarize(values)

        return measure

    def _summarize(self, fractions):
        values = {
            f"{self._layers[name]}_fraction/{name}": fraction
            for name, fraction in fractions.items()
        }
        for kind in _REMEDIES:
            of_kind = [f for n, f in fractions.items() if self._layers[n] == kind]
            if of_kind:
                values[f"{kind}_fraction/max"] = max(of_kind)
        return values

    def _diagnose(self, values, logs):
        verdicts = {}
        for kind, remedy in _REMEDIES.items():
            argument = f"max_{kind}_fraction"
            limit = getattr(self, argument)
            flagged = [
                (name, values[f"{kind}_fraction/{name}"])
                for name, layer_kind in self._layers.items()
                if layer_kind == kind and values[f"{kind}_fraction/{name}"] > limit
            ]
            if not flagged:
                verdicts[kind] = ([], None)
                continue
            listed = ", ".join(f"{name} ({f:.0%})" for name, f in flagged)
            message = (
                f"ActivationMonitor: {kind} units {self._where()} in "
                f"{len(flagged)} layer(s), above {argument}={limit:g}: "
                f"{listed}. These {remedy}"
            )
            verdicts[kind] = ([name for name, _ in flagged], message)
        return verdicts

    def plot(self, path):
        """Writes a PNG of the measurements since the latest `fit()` began.

        Left: each monitored layer's saturated or dead fraction, layers
        (first on top) by training step. Right: the largest fraction of each
        kind, with its threshold as a dashed line.

        Args:
            path: str or path-like, where the PNG is written.

        Raises:
            ValueError: if no layer was measured yet.
        """
        if not self._layers or not self.history:
            raise ValueError(
                "ActivationMonitor.plot() needs measurements; pass the "
                "monitor to `model.fit(callbacks=[...])` of a model with "
                "sigmoid, tanh or ReLU hidden layers first. Received: "
                f"{len(self.history.get('step', []))} measurements of "
                f"{len(self._layers)} layers"
            )
        keys = [f"{kind}_fraction/{name}" for name, kind in self._layers.items()]
        curves = [
            (
                f"{kind}, worst layer",
                self.history[f"{kind}_fraction/max"],
                getattr(self, f"max_{kind}_fraction"),
            )
            for kind in _REMEDIES
            if f"{kind}_fraction/max" in self.history
        ]
        _plotting.plot_layers_by_step(
            path,
            title="ActivationMonitor: saturated or dead fraction per layer",
            layers=[f"{name} ({kind})" for name, kind in self._layers.items()],
            steps=self.history["step"],
            matrix=np.array([self.history[key] for key in keys]),
            colorbar_label="fraction of the layer",
            curves=curves,
            curve_label="fraction",
            log_curve=False,
            value_range=(0, 1),
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            max_saturated_fraction=self.max_saturated_fraction,
            max_dead_fraction=self.max_dead_fraction,
            on_saturated=self.on_saturated,
            on_dead=self.on_dead,
        )
        return config


def _activation_name(layer):
    return getattr(getattr(layer, "activation", None), "__name__", None)


def _output_layers(model):
    """Names of the layers whose outputs are the model's (none if subclassed)."""
    try:
        outputs = model.outputs or []
    except (AttributeError, ValueError):
        outputs = []
    return {tensor._keras_history.operation.name for tensor in outputs}


@contextlib.contextmanager
def _recording(layers):
    """Wraps each layer's `activation` to record `name -> (activation, output)`."""
    recorded = {}

    def recording(layer, activation):
        def record(inputs, *args, **kwargs):
            outputs = activation(inputs, *args, **kwargs)
            recorded[layer.name] = (activation.__name__, outputs)
            return outputs

        return record

    originals = [layer.activation for layer in layers]
    try:
        for layer, activation in zip(layers, originals):
            layer.activation = recording(layer, activation)
        yield recorded
    finally:
        for layer, activation in zip(layers, originals):
            layer.activation = activation
