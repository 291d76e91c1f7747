"""GradientMonitor callback: per-layer gradient norms, vanishing and exploding."""

import math

import numpy as np
import tensorflow as tf

from callbacks import _plotting
from callbacks import _probe
from callbacks._backend import require_supported_backend
from callbacks._probe_monitor import ProbeMonitor

# Activations whose derivative is well below 1 almost everywhere, so that the
# gradient shrinks at every layer they sit in.
_SATURATING_ACTIVATIONS = ("sigmoid", "tanh", "hard_sigmoid", "softsign")
# From this many weight layers on, depth itself is a cause worth naming.
_DEEP_NETWORK_LAYERS = 8


class GradientMonitor(ProbeMonitor):
    """Measures per-layer gradient norms during training and judges them.

    How gradients are obtained: the monitor keeps a fixed probe batch
    `probe=(x, y)` and, at every measurement, computes the model's compiled
    loss on it (`model.compute_loss`, regularisation losses included) and its
    gradient with respect to every trainable kernel in a `tf.GradientTape`,
    inside a `tf.function` traced once per `fit()`. The probe runs in
    inference mode (`training=False`): dropout is off and batch normalisation
    uses its moving statistics, so the numbers are deterministic, comparable
    from one measurement to the next, and the measurement changes neither
    the weights nor the optimizer nor the reported metrics (the compiled
    loss trackers are restored after each measurement). This works the same
    for Sequential, functional (several inputs and outputs) and subclassed
    models and whatever `steps_per_execution` is, because it never touches
    the training step.

    Cost: one eager pass and the tracing of the probe function when each
    `fit()` begins (about 0.1 s for the binary template's model on a CPU),
    then one forward and backward pass over the probe per measurement
    (about 2 ms for 256 rows of 30 columns and hidden layers (64, 64)).
    Measurements are taken once when training begins (the reference), at the
    end of every epoch and, if `every_n_batches` is set, every that many
    batches. Keep the probe small: 64 to 512 rows are plenty.

    The norm of a layer is the L2 norm of the gradient of its kernel (every
    trainable variable of rank >= 2: Dense and convolution kernels,
    embeddings, recurrent kernels); `include_biases=True` adds biases and
    other vectors (e.g. batch-normalisation scales) as entries of their own.

    Verdicts, at every measurement:

    - *vanishing*: a layer's norm is below `vanishing_ratio` times the
      largest layer norm of the same measurement. The default `1e-3` sits far
      from both cases it has to tell apart: in a 10-layer, 32-unit sigmoid
      MLP with Glorot initialisation the first layer's gradient is about
      `1e-6` of the largest, with tanh or ReLU (He initialisation) every
      ratio stays above `5e-2`. When every gradient is exactly zero there is
      no ratio to judge and no verdict.
    - *exploding*: the loss (on the probe, or the training loss in `logs`)
      or a norm is not finite, or a layer's norm exceeds `exploding_factor`
      times the largest layer norm measured when training began.

    Each verdict warns, stops training or raises, as `on_vanishing` and
    `on_exploding` say, with a message naming the layers, the measured
    ratios and a remedy fitted to what the monitor can see (saturating
    activations, depth, the learning rate). A warning is repeated only when
    the set of flagged layers changes.

    Logs: `grad_norm/<layer>` for every layer (`<layer>` is the variable's
    path inside the model without the trailing `/kernel`, e.g. `dense_1`),
    `grad_norm/max` (the largest layer norm) and `grad_norm/min_ratio` (the
    smallest layer norm divided by the largest). List the monitor before
    `CSVLogger` or `TensorBoard` in `callbacks=[...]` so that they receive
    these entries; `History` and the progress bar always do.

    Args:
        probe: tuple `(x, y)`: the inputs (an array, a list of arrays or a
            dict of arrays, as the model takes them) and the targets (an
            array, or a list or dict for a multi-output model), all with the
            same number of rows.
        every_n_batches: int or None, also measure every this many training
            batches (with `steps_per_execution=N`, at the first batch end
            past each multiple). `None` measures at the end of each epoch
            only. Defaults to `None`.
        vanishing_ratio: float in `(0, 1)`, a layer is vanishing when its
            norm is below this fraction of the largest layer norm. Defaults
            to `1e-3`.
        exploding_factor: float > 1, a layer is exploding when its norm
            exceeds this multiple of the largest layer norm measured when
            training began. Defaults to `100.0`.
        include_biases: bool, also measure biases and other trainable
            vectors. Defaults to `False`.
        on_vanishing: str, `"warn"`, `"stop"` (warn and stop training) or
            `"raise"` (raise a `RuntimeError`). Defaults to `"warn"`.
        on_exploding: str, as `on_vanishing`. Defaults to `"warn"`.

    Attributes:
        vanishing_layers: list of str, layers flagged as vanishing at the
            latest measurement.
        exploding_layers: list of str, layers flagged as exploding at the
            latest measurement.
        history: dict of lists, one entry per measurement: `"step"` (training
            batches done), `"epoch"` (0-based) and every log entry.

    Example:

    >>> import keras
    >>> import numpy as np
    >>> x = np.random.rand(64, 4).astype("float32")
    >>> y = x.sum(axis=1, keepdims=True)
    >>> model = keras.Sequential([
    ...     keras.Input((4,)),
    ...     keras.layers.Dense(8, activation="relu", name="hidden"),
    ...     keras.layers.Dense(1, name="output")])
    >>> model.compile(optimizer="sgd", loss="mse")
    >>> monitor = GradientMonitor(probe=(x[:32], y[:32]))
    >>> history = model.fit(x, y, epochs=2, callbacks=[monitor], verbose=0)
    >>> len(history.history["grad_norm/hidden"])  # one value per epoch
    2
    >>> monitor.vanishing_layers
    []
    >>> monitor.plot("gradients.png")
    """

    def __init__(
        self,
        probe,
        every_n_batches=None,
        vanishing_ratio=1e-3,
        exploding_factor=100.0,
        include_biases=False,
        on_vanishing="warn",
        on_exploding="warn",
    ):
        require_supported_backend("GradientMonitor")
        if not isinstance(probe, (tuple, list)) or len(probe) != 2:
            received = (
                f"a {type(probe).__name__} of length {len(probe)}"
                if isinstance(probe, (tuple, list))
                else f"a {type(probe).__name__}"
            )
            raise ValueError(
                "GradientMonitor expects `probe=(x, y)`: a pair of inputs "
                f"and targets. Received: probe={received}"
            )
        if not 0 < vanishing_ratio < 1:
            raise ValueError(
                "GradientMonitor expects `vanishing_ratio` in (0, 1), a "
                "fraction of the largest layer norm. Received: "
                f"vanishing_ratio={vanishing_ratio!r}"
            )
        if not exploding_factor > 1:
            raise ValueError(
                "GradientMonitor expects `exploding_factor` > 1, a multiple of "
                "the norm when training began. Received: "
                f"exploding_factor={exploding_factor!r}"
            )
        super().__init__(
            probe=_probe.validate_probe("GradientMonitor", "probe", list(probe)),
            every_n_batches=every_n_batches,
            actions={
                "vanishing": ("on_vanishing", on_vanishing),
                "exploding": ("on_exploding", on_exploding),
            },
        )
        self.vanishing_ratio = vanishing_ratio
        self.exploding_factor = exploding_factor
        self.include_biases = include_biases
        self.on_vanishing = on_vanishing
        self.on_exploding = on_exploding
        # Set when training begins, from the model being trained.
        self._layers = []
        self._activations = {}
        self._depth = 0
        self._reference = None
        self._probe_loss = None

    @property
    def vanishing_layers(self):
        return self._flagged["vanishing"]

    @property
    def exploding_layers(self):
        return self._flagged["exploding"]

    def _build_measure(self):
        model = self.model
        x, y = _probe.to_tensors(self.probe)
        # Keras defers building the model (when subclassed) and its compiled
        # loss to the first training step; build both now so that the traced
        # function creates no variables. The loss trackers this call updates
        # are reset when the first epoch begins.
        model.compute_loss(x=x, y=y, y_pred=model(x, training=False), training=False)
        variables = [
            v
            for v in model.trainable_variables
            if self.include_biases or len(v.shape) >= 2
        ]
        if not variables:
            raise ValueError(
                "GradientMonitor found no trainable kernel in the model "
                f"'{model.name}'; nothing to measure. Received a model with "
                f"{len(model.trainable_variables)} trainable variables"
            )
        self._layers = [_entry_name(model, v) for v in variables]
        self._activations = _activation_names(model, variables)
        self._depth = sum(len(v.shape) >= 2 for v in variables)
        self._reference = None
        metric_variables = list(model.metrics_variables)

        # No AutoGraph: plain Python control flow, traced once.
        @tf.function(autograph=False)
        def gradient_norms(x, y):
            # compute_loss updates the compiled loss trackers: put them back
            # so the measurement leaves the reported metrics untouched.
            saved = [tf.identity(v.value) for v in metric_variables]
            with tf.GradientTape() as tape:
                y_pred = model(x, training=False)
                loss = model.compute_loss(
                    x=x, y=y, y_pred=y_pred, training=False
                )
            gradients = tape.gradient(loss, variables)
            for variable, value in zip(metric_variables, saved):
                variable.assign(value)
            norms = [
                tf.zeros(())
                if g is None
                else tf.norm(tf.cast(tf.convert_to_tensor(g), "float32"))
                for g in gradients
            ]
            return tf.cast(loss, "float32"), tf.stack(norms)

        def measure():
            loss, norms = gradient_norms(x, y)
            self._probe_loss = float(loss)
            return self._summarize(norms.numpy().astype(float))

        return measure

    def _summarize(self, norms):
        values = {
            f"grad_norm/{layer}": float(norm)
            for layer, norm in zip(self._layers, norms)
        }
        largest = float(norms.max())
        values["grad_norm/max"] = largest
        values["grad_norm/min_ratio"] = (
            float(norms.min()) / largest if largest > 0 else 1.0
        )
        return values

    def _diagnose(self, values, logs):
        norms = np.array([values[f"grad_norm/{layer}"] for layer in self._layers])
        largest = values["grad_norm/max"]
        if self._reference is None:
            self._reference = largest
        return {
            "vanishing": self._vanishing(norms, largest),
            "exploding": self._exploding(norms, logs),
        }

    def _vanishing(self, norms, largest):
        if not np.all(np.isfinite(norms)) or largest == 0:
            return [], None
        ratios = norms / largest
        flagged = [
            (layer, ratio)
            for layer, ratio in zip(self._layers, ratios)
            if ratio < self.vanishing_ratio
        ]
        if not flagged:
            return [], None
        layers = [layer for layer, _ in flagged]
        strongest = self._layers[int(np.argmax(norms))]
        listed = ", ".join(f"{layer} ({ratio:.1e})" for layer, ratio in flagged)
        message = (
            f"GradientMonitor: vanishing gradients {self._where()}: "
            f"{len(layers)} layer(s) have a gradient norm below "
            f"vanishing_ratio={self.vanishing_ratio:g} times the largest "
            f"('{strongest}', {largest:.2e}); ratio per layer: {listed}. "
            f"{self._vanishing_remedy(layers)}"
        )
        return layers, message

    def _vanishing_remedy(self, layers):
        remedies = []
        saturating = sorted(
            {
                self._activations[layer]
                for layer in layers
                if self._activations[layer] in _SATURATING_ACTIVATIONS
            }
        )
        if saturating:
            remedies.append(
                f"These layers use {'/'.join(saturating)} activations, whose "
                "small derivatives shrink the gradient at every layer: use "
                "ReLU or Leaky ReLU with He initialisation "
                "(activation='relu', kernel_initializer='he_normal')."
            )
        if self._depth >= _DEEP_NETWORK_LAYERS:
            remedies.append(
                f"The network is {self._depth} weight layers deep: add "
                "BatchNormalization between layers or residual (skip) "
                "connections."
            )
        if not remedies:
            remedies.append(
                "Check the initialisation (He for ReLU, Glorot for tanh), "
                "dead ReLU units (ActivationMonitor) and whether these layers "
                "still reach the loss."
            )
        return "Remedy: " + " ".join(remedies)

    def _exploding(self, norms, logs):
        not_finite = [
            f"{name} {value:g}"
            for name, value in (
                ("probe loss", self._probe_loss),
                ("training loss", logs.get("loss", 0.0)),
            )
            if not math.isfinite(value)
        ]
        layers = [
            layer for layer, norm in zip(self._layers, norms) if not math.isfinite(norm)
        ]
        if layers:
            not_finite.append(f"gradient norms of {', '.join(layers)}")
        if not_finite:
            message = (
                f"GradientMonitor: exploding gradients {self._where()}, not "
                f"finite: {'; '.join(not_finite)}. {self._exploding_remedy()}"
            )
            return layers or list(self._layers), message
        limit = self.exploding_factor * self._reference
        flagged = [
            (layer, norm)
            for layer, norm in zip(self._layers, norms)
            if self._reference > 0 and norm > limit
        ]
        if not flagged:
            return [], None
        listed = ", ".join(
            f"{layer} ({norm / self._reference:.0f}x)" for layer, norm in flagged
        )
        message = (
            f"GradientMonitor: exploding gradients {self._where()}: gradient "
            f"norms grew past exploding_factor={self.exploding_factor:g} "
            f"times the largest norm when training began "
            f"({self._reference:.2e}); growth per layer: {listed}. "
            f"{self._exploding_remedy()}"
        )
        return [layer for layer, _ in flagged], message

    def _exploding_remedy(self):
        try:
            rate = f" (now {float(self.model.optimizer.learning_rate):.2g})"
        except (TypeError, ValueError, AttributeError):
            rate = ""
        return (
            f"Remedy: lower the learning rate{rate}, e.g. 10 times, or clip "
            "gradients with the optimizer's `clipnorm=1.0`."
        )

    def plot(self, path):
        """Writes a PNG of the measurements since the latest `fit()` began.

        Left: log10 of each layer's gradient norm, layers (first on top) by
        training step. Right: the first layer's norm divided by the last
        layer's, with `vanishing_ratio` as a dashed line.

        Args:
            path: str or path-like, where the PNG is written.

        Raises:
            ValueError: if nothing was measured yet.
        """
        if not self.history:
            raise ValueError(
                "GradientMonitor.plot() needs measurements; pass the monitor "
                "to `model.fit(callbacks=[...])` first. Received: an empty "
                "history"
            )
        norms = np.array(
            [self.history[f"grad_norm/{layer}"] for layer in self._layers]
        )
        with np.errstate(divide="ignore", invalid="ignore"):
            log_norms = np.log10(norms)
            first_to_last = norms[0] / norms[-1]
        _plotting.plot_layers_by_step(
            path,
            title="GradientMonitor: gradient norm per layer",
            layers=self._layers,
            steps=self.history["step"],
            matrix=log_norms,
            colorbar_label="log10 gradient norm",
            curves=[
                (
                    f"{self._layers[0]} / {self._layers[-1]}",
                    first_to_last,
                    self.vanishing_ratio,
                )
            ],
            curve_label="first-to-last layer norm ratio",
            log_curve=True,
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            vanishing_ratio=self.vanishing_ratio,
            exploding_factor=self.exploding_factor,
            include_biases=self.include_biases,
            on_vanishing=self.on_vanishing,
            on_exploding=self.on_exploding,
        )
        return config


def _entry_name(model, variable):
    """`sequential/dense_1/kernel` -> `dense_1`; `.../bias` keeps `/bias`."""
    path = variable.path
    prefix = f"{model.name}/"
    if path.startswith(prefix):
        path = path[len(prefix) :]
    suffix = "/kernel"
    if path.endswith(suffix):
        path = path[: -len(suffix)]
    return path


def _activation_names(model, variables):
    """Maps each entry name to the activation of the layer owning it."""
    owners = {}
    # Outer layers come first, so nested layers overwrite them: the owner is
    # the innermost layer holding the variable.
    for layer in model._flatten_layers(include_self=False, recursive=True):
        for variable in layer.trainable_weights:
            owners[id(variable)] = layer
    names = {}
    for variable in variables:
        activation = getattr(owners.get(id(variable)), "activation", None)
        names[_entry_name(model, variable)] = getattr(activation, "__name__", "")
    return names
