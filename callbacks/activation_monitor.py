"""ActivationMonitor callback: saturated sigmoid/tanh and dead ReLU units."""

import keras
import numpy as np
import tensorflow as tf

from callbacks import _plotting
from callbacks import _probe
from callbacks._probe_monitor import ProbeMonitor

# Activation name -> the verdict that applies to the layers using it.
_VERDICT_OF_ACTIVATION = {
    "sigmoid": "saturated",
    "tanh": "saturated",
    "relu": "dead",
    "relu6": "dead",
}
# A unit output counts as saturated when the activation's derivative there is
# below this fraction of its maximum: sigmoid outputs below 0.013 or above
# 0.987, tanh outputs beyond +-0.975.
_SATURATED_DERIVATIVE = 0.05


class ActivationMonitor(ProbeMonitor):
    """Tracks saturated sigmoid/tanh units and dead ReLU units per layer.

    At every measurement the monitor runs the model on a fixed probe batch in
    inference mode (`training=False`) and looks at the output of every hidden
    layer with a sigmoid, tanh, ReLU or ReLU6 `activation` (Dense and
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

    How activations are obtained: when training begins, the monitor traces
    one `tf.function` that calls the model on the probe while each monitored
    layer's `activation` is wrapped to record its output; the wrappers are
    removed right after tracing, so training runs the unchanged layers.
    Cost: that trace (about 0.1 s for a small MLP on a CPU), then one forward
    pass over the probe per measurement. Measurements are taken when
    training begins, at the end of every epoch and, if `every_n_batches` is
    set, every that many batches.

    Logs: `saturated_fraction/<layer>` or `dead_fraction/<layer>` per
    monitored layer, and `saturated_fraction/max` and `dead_fraction/max`
    (the largest over the layers of that kind, when there are any).

    Args:
        probe: the probe inputs: an array, a list of arrays or a dict of
            arrays, as the model takes them. A few hundred rows are plenty;
            more rows make "dead" stricter (zero for every one of them).
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
    ...     keras.Input((4,)), keras.layers.Dense(8, activation="relu"),
    ...     keras.layers.Dense(8, activation="tanh"), keras.layers.Dense(1)])
    >>> model.compile(optimizer="sgd", loss="mse")
    >>> monitor = ActivationMonitor(probe=x[:32])
    >>> history = model.fit(x, y, epochs=2, callbacks=[monitor], verbose=0)
    >>> sorted(key for key in history.history if key != "loss")
    ['dead_fraction/dense', 'dead_fraction/max', \
'saturated_fraction/dense_1', 'saturated_fraction/max']
    >>> monitor.dead_layers
    []
    >>> monitor.plot("activations.png")
    """

    def __init__(
        self,
        probe,
        every_n_batches=None,
        max_saturated_fraction=0.5,
        max_dead_fraction=0.5,
        on_saturated="warn",
        on_dead="warn",
    ):
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
            probe=_probe.validate_probe("ActivationMonitor", "probe", probe),
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
        return self.flagged["saturated"]

    @property
    def dead_layers(self):
        return self.flagged["dead"]

    def _build_measure(self):
        model = self.model
        candidates = [
            layer
            for layer in model._flatten_layers(include_self=False, recursive=True)
            if _activation_name(layer) in _VERDICT_OF_ACTIVATION
        ]
        recorded = {}
        x = _probe.to_tensors(self.probe)

        @tf.function
        def fractions(x):
            recorded.clear()
            outputs = keras.tree.flatten(model(x, training=False))
            return {
                name: _fraction(_VERDICT_OF_ACTIVATION[activation], value)
                for name, (activation, value) in recorded.items()
                if not any(value is output for output in outputs)
            }

        originals = {id(layer): layer.activation for layer in candidates}
        try:
            for layer in candidates:
                layer.activation = _recording(layer, recorded)
            traced = fractions.get_concrete_function(x)
        finally:
            for layer in candidates:
                layer.activation = originals[id(layer)]
        self._layers = {
            name: _VERDICT_OF_ACTIVATION[_activation_name(layer)]
            for layer in candidates
            for name in [layer.name]
            if name in traced.structured_outputs
        }
        if not self._layers:
            raise ValueError(
                "ActivationMonitor found no hidden layer with a sigmoid, tanh "
                f"or ReLU activation in the model '{model.name}'; nothing to "
                "monitor. Received a model whose hidden activations are "
                f"{sorted({_activation_name(l) or 'none' for l in model._flatten_layers(include_self=False)})}"
            )

        def measure():
            measured = {k: float(v) for k, v in traced(x).items()}
            return self._summarize(measured)

        return measure
