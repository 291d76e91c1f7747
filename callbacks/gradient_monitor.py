"""GradientMonitor callback: per-layer gradient norms, vanishing and exploding."""

import math
import warnings

import keras
import numpy as np

from callbacks import _backend, _plotting, _probe
from callbacks._probe_monitor import ProbeMonitor

# Activations whose derivative is well below 1 almost everywhere, so that the
# gradient shrinks at every layer they sit in.
_SATURATING_ACTIVATIONS = ("sigmoid", "tanh", "hard_sigmoid", "softsign")
# From this many weight layers on, depth itself is a cause worth naming.
_DEEP_NETWORK_LAYERS = 8
# The deep learning tuning playbook picks a clipping threshold at this
# percentile of the observed gradient norms, and calls clipping more than
# this share of the updates "extremely aggressive" (a lower learning rate in
# disguise).
_CLIP_PERCENTILE = 90
_AGGRESSIVE_CLIPPED_FRACTION = 0.5
# Between measurements, the loss is read for a non-finite value this many
# times an epoch (and at its end): each read waits for a transfer from the
# device, and reading every call cost about 15% on JAX with one step a call.
_LOSS_READS_PER_EPOCH = 16


class GradientMonitor(ProbeMonitor):
    """Measures per-layer gradient norms during training and judges them.

    With no arguments the monitor measures the gradients of real training
    steps: the gradients the optimizer applies, computed by the model's own
    `train_step` in training mode (dropout on, batch normalisation on batch
    statistics) on the batch `fit()` feeds it, whatever feeds `fit()`
    (arrays, a `tf.data.Dataset`, a generator, a `keras.utils.PyDataset`),
    on the TensorFlow, JAX and PyTorch backends.

    How: Keras builds `model.train_function` before callbacks start, and
    calls it once per step. The monitor has Keras build a second, *measuring*
    train function from the model's own `train_step`, in which the
    optimizer's `apply` is wrapped to keep the gradients it receives (before
    any clipping) and the weights before and after the update; the measuring
    step returns the per-layer norms (computed with `keras.ops`) in its logs.
    On the steps to measure, the monitor has `fit()` call the measuring
    function instead of the model's own. A custom `train_step` works as long
    as it updates the weights with `optimizer.apply` or `apply_gradients`.

    Cost: the measuring function is compiled once per `fit()` (a trace on
    TensorFlow, a `jit` on JAX: about as long as the model's own first
    step), and a measured step costs a little more than an ordinary one (the
    norms, and a copy of the weights for the update ratio). The other steps
    run the model's own train function: one extra Python call and a
    comparison per call of the train function, and no wait for its results.
    Between measurements the monitor looks at the logs of 16 calls an
    epoch, for a non-finite loss, and reads a loss only once it is computed
    (on JAX and PyTorch Keras keeps running the batch-end callbacks on its
    worker thread).

    Schedule: the first step of training (the reference), the last step of
    every epoch (the first step of each epoch when `fit()` does not know the
    epoch's length, e.g. a generator), and the step after every
    `every_n_batches` steps when that is set. With `steps_per_execution=N`
    one train function call runs N steps: the whole call is measured, every
    one of its steps, and each number is the root-mean-square over those
    steps of its per-step value: `sqrt(mean(norm_t ** 2))` for the gradient
    norm of each layer (and for the global norm, so that the squares of the
    layer norms still add up to the square of the global norm), and the
    same for the update-to-weight ratio. The root-mean-square, unlike the
    last step alone, sees every batch of the call; unlike the mean, it is
    the norm of the typical gradient, whatever the call's length. The
    step counted in `history["step"]` is the call's last.

    Probe mode (`probe=(x, y)`): instead, the monitor computes the compiled
    loss (`model.compute_loss`, regularisation losses included) on a fixed
    batch in inference mode (`training=False`) and its gradient: the
    numbers are deterministic and comparable from one measurement to the
    next, and measuring changes neither the weights, the optimizer nor the
    metrics. Measurements are taken when training begins, at the end of every
    epoch and every `every_n_batches` batches if set. The update ratio and
    the clipping statistics need real steps: probe mode has neither.

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
      times the largest layer norm measured when training began. When the
      loss or a gradient is not finite at a measured step, the message names
      the first layer (in the order the model calls them) whose output was
      not finite and the first layer whose gradient was not; measure every
      step (`every_n_batches=1`) to catch the very step it happens.
    - *stalled* (real steps): a layer's update-to-weight ratio, the norm of
      the change the optimizer made to its kernel over the kernel's norm, is
      below `min_update_ratio`. About `1e-3` is the usual healthy order
      (CS231n); the default `1e-6` is a thousand times smaller: such a layer
      needs a million steps to move by its own size, it has stopped learning.
    - *thrashing* (real steps): a layer's update ratio exceeds
      `max_update_ratio`. The default `0.1` is a hundred times the healthy
      order: each step rewrites a tenth of the layer, ten steps can replace
      it entirely, so nothing learned is kept. Only kernels are judged:
      biases often start at zero, where the ratio means nothing.

    Each verdict warns, stops training or raises, as `on_vanishing`,
    `on_exploding`, `on_stalled` and `on_thrashing` say, with a message
    naming the layers, the measured numbers and a remedy fitted to what the
    monitor can see. Remedies for exploding gradients follow the deep
    learning tuning playbook's order: learning-rate warm-up, gradient
    clipping, another optimizer, residual connections and normalisation,
    and a lower learning rate as the last resort. A warning is repeated only
    when the set of flagged layers changes.

    Clipping: when the optimizer has `clipnorm` or `global_clipnorm`, the
    norms measured are those before clipping; the monitor records which
    measured steps were clipped (a kernel's norm above `clipnorm`, or the
    global norm above `global_clipnorm`; every step of a measured call
    counts) and suggests a threshold: the 90th percentile of the observed
    norms (per-variable maximum for `clipnorm`, global norm for
    `global_clipnorm`; one per measurement, the root-mean-square over the
    steps of the call), as the playbook advises. When more
    than half of the measured steps were clipped it warns at the end of
    training: such clipping is a lower learning rate in disguise.

    Logs: `grad_norm/<layer>` for every layer (`<layer>` is the variable's
    path inside the model without the trailing `/kernel`, e.g. `dense_1`),
    `grad_norm/max` (the largest layer norm) and `grad_norm/min_ratio` (the
    smallest layer norm divided by the largest); on real steps also
    `grad_norm/global` (all trainable variables together),
    `update_ratio/<layer>`, and with clipping `grad_norm/clipped_fraction`
    (the share of measured steps clipped so far). List the monitor before
    `CSVLogger` or `TensorBoard` in `callbacks=[...]` so that they receive
    these entries; `History` and the progress bar always do. A callback
    listed before the monitor sees one private entry more in the logs of a
    measured step (`_GradientMonitor_<id>`), which the monitor removes.

    Args:
        probe: optional tuple `(x, y)`: the inputs (an array, a list of
            arrays or a dict of arrays, as the model takes them) and the
            targets (an array, or a list or dict for a multi-output model),
            all with the same number of rows. Defaults to `None`: measure
            real training steps.
        every_n_batches: int or None, also measure every this many training
            batches. Defaults to `None` (see the schedules above).
        vanishing_ratio: float in `(0, 1)`, a layer is vanishing when its
            norm is below this fraction of the largest layer norm. Defaults
            to `1e-3`.
        exploding_factor: float > 1, a layer is exploding when its norm
            exceeds this multiple of the largest layer norm measured when
            training began. Defaults to `100.0`.
        min_update_ratio: float > 0, a layer has stalled when its update
            ratio is below it. Defaults to `1e-6`.
        max_update_ratio: float > `min_update_ratio`, a layer is thrashing
            when its update ratio exceeds it. Defaults to `0.1`.
        include_biases: bool, also measure biases and other trainable
            vectors. Defaults to `False`.
        on_vanishing: str, `"warn"`, `"stop"` (warn and stop training) or
            `"raise"` (raise a `RuntimeError`). Defaults to `"warn"`.
        on_exploding: str, as `on_vanishing`. Defaults to `"warn"`.
        on_stalled: str, as `on_vanishing`. Defaults to `"warn"`.
        on_thrashing: str, as `on_vanishing`. Defaults to `"warn"`.
        histogram_dir: optional str, a TensorBoard log directory: at every
            measurement, write a histogram of each layer's gradient
            (`gradients/<layer>`, on real steps) or probe gradient. Needs
            TensorFlow installed (it writes with `tf.summary`), on any
            backend. Defaults to `None` (no histograms).

    Attributes:
        vanishing_layers, exploding_layers, stalled_layers,
        thrashing_layers: list of str, layers flagged at the latest
            measurement.
        suggested_clipnorm: float or None, the threshold suggested by the
            norms measured so far when the optimizer clips.
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
    >>> monitor = GradientMonitor()
    >>> history = model.fit(x, y, epochs=2, callbacks=[monitor], verbose=0)
    >>> len(history.history["grad_norm/hidden"])  # one value per epoch
    2
    >>> monitor.vanishing_layers
    []
    >>> monitor.plot("gradients.png")
    """

    def __init__(
        self,
        probe=None,
        every_n_batches=None,
        vanishing_ratio=1e-3,
        exploding_factor=100.0,
        min_update_ratio=1e-6,
        max_update_ratio=0.1,
        include_biases=False,
        on_vanishing="warn",
        on_exploding="warn",
        on_stalled="warn",
        on_thrashing="warn",
        histogram_dir=None,
    ):
        _backend.require_supported_backend("GradientMonitor")
        if probe is not None and (
            not isinstance(probe, (tuple, list)) or len(probe) != 2
        ):
            received = (
                f"a {type(probe).__name__} of length {len(probe)}"
                if isinstance(probe, (tuple, list))
                else f"a {type(probe).__name__}"
            )
            raise ValueError(
                "GradientMonitor expects `probe=(x, y)`: a pair of inputs "
                f"and targets, or None. Received: probe={received}"
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
        if not 0 < min_update_ratio < max_update_ratio:
            raise ValueError(
                "GradientMonitor expects 0 < `min_update_ratio` < "
                "`max_update_ratio`. Received: "
                f"min_update_ratio={min_update_ratio!r}, "
                f"max_update_ratio={max_update_ratio!r}"
            )
        super().__init__(
            probe=None
            if probe is None
            else _probe.validate_probe("GradientMonitor", "probe", list(probe)),
            every_n_batches=every_n_batches,
            actions={
                "vanishing": ("on_vanishing", on_vanishing),
                "exploding": ("on_exploding", on_exploding),
                "stalled": ("on_stalled", on_stalled),
                "thrashing": ("on_thrashing", on_thrashing),
            },
        )
        self.vanishing_ratio = vanishing_ratio
        self.exploding_factor = exploding_factor
        self.min_update_ratio = min_update_ratio
        self.max_update_ratio = max_update_ratio
        self.include_biases = include_biases
        self.on_vanishing = on_vanishing
        self.on_exploding = on_exploding
        self.on_stalled = on_stalled
        self.on_thrashing = on_thrashing
        self.histogram_dir = histogram_dir
        # Set when training begins, from the model being trained.
        self._layers = []
        self._kernels = set()
        self._activations = {}
        self._depth = 0
        self._reference = None
        self._probe_loss = None
        self._all_variables = []
        self._monitored = []
        self._output_names = []
        self._not_finite = None
        self._clip = None
        self._layout = None
        self._pending_losses = []
        self._writer = None

    _TRANSIENT = ProbeMonitor._TRANSIENT + (
        "_pending_losses",
        "_all_variables",
        "_monitored",
        "_writer",
    )

    vanishing_layers = property(lambda self: self._flagged["vanishing"])
    exploding_layers = property(lambda self: self._flagged["exploding"])
    stalled_layers = property(lambda self: self._flagged["stalled"])
    thrashing_layers = property(lambda self: self._flagged["thrashing"])

    @property
    def suggested_clipnorm(self):
        if not self._clip or not self._clip["observed"]:
            return None
        return float(np.percentile(self._clip["observed"], _CLIP_PERCENTILE))

    def _measures_steps(self):
        return self.probe is None

    def on_train_begin(self, logs=None):
        self._pending_losses = []
        self._all_variables = []
        self._reference = None
        self._not_finite = None
        self._clip = _clipping(self.model.optimizer)
        self._writer = _histogram_writer(self.histogram_dir)
        super().on_train_begin(logs)
        if self._hub is not None:
            self._hub.watch(self, self._between_measurements)

    def _find_variables(self):
        """Lists the variables to measure, once the model is built.

        A subclassed model may only be built by the first training step
        (TensorFlow traces it): real-step measurements call this from the
        measuring step, after the model ran.
        """
        model = self.model
        self._all_variables = list(model.trainable_variables)
        self._monitored = [
            v
            for v in self._all_variables
            if self.include_biases or len(v.shape) >= 2
        ]
        if not self._monitored:
            raise ValueError(
                "GradientMonitor found no trainable kernel in the model "
                f"'{model.name}'; nothing to measure. Received a model with "
                f"{len(self._all_variables)} trainable variables"
            )
        self._layers = [_entry_name(model, v) for v in self._monitored]
        self._kernels = {
            layer for layer, v in zip(self._layers, self._monitored) if len(v.shape) >= 2
        }
        self._activations = _activation_names(model, self._monitored)
        self._depth = sum(len(v.shape) >= 2 for v in self._monitored)

    def on_train_end(self, logs=None):
        super().on_train_end(logs)
        self._writer = None
        clip = self._clip
        if clip and clip["measured"]:
            fraction = clip["clipped"] / clip["measured"]
            if fraction > _AGGRESSIVE_CLIPPED_FRACTION:
                warnings.warn(
                    f"GradientMonitor: {fraction:.0%} of the measured steps "
                    f"were clipped by {clip['argument']}={clip['threshold']:g}. "
                    "Clipping more than half of the updates is a lower "
                    "learning rate in disguise: lower the learning rate, or "
                    f"clip at about {self.suggested_clipnorm:.3g} (the "
                    f"{_CLIP_PERCENTILE}th percentile of the norms before "
                    "clipping).",
                    stacklevel=2,
                )

    # Probe mode.

    def _build_measure(self, probe):
        model = self.model
        backend = _backend.get("GradientMonitor")
        x, y = _probe.to_tensors(probe)
        # Keras defers building a subclassed model and its compiled loss to
        # the first step; build both now so that the compiled function
        # creates no variables.
        backend.sync(model)
        with backend.inference():
            model.compute_loss(
                x=x, y=y, y_pred=model(x, training=False), training=False
            )
        self._find_variables()
        compute = backend.loss_and_gradients(model, self._monitored)

        def measure():
            loss, gradients = compute(x, y)
            self._probe_loss = float(backend.to_numpy(loss))
            gradients = [
                None if g is None else backend.to_numpy(g).astype("float64")
                for g in gradients
            ]
            norms = np.array(
                [0.0 if g is None else np.sqrt(np.sum(g * g)) for g in gradients]
            )
            self._write_histograms(gradients)
            return self._summarize(norms)

        return measure

    # Real steps.

    def in_step(self, data, applied, outputs):
        """Computes, inside the measuring train step, what the monitor logs.

        Returns `(summed, last)`. `summed` is one float32 vector, which the
        train function sums over the steps of the call
        (`steps_per_execution`); its parts, in order (`self._layout` holds
        their lengths): the squared gradient norm of every trainable
        variable, the squared update-to-weight ratio of every monitored
        variable, for each layer output 1 if it was not finite (`outputs`:
        the names of the layers with a floating output, in call order, and
        a vector, 1.0 where it was all finite), with clipping the squared norm that
        clipping compares with its threshold and 1 if the step was clipped,
        and a 1 (the count of steps). `last` is a tuple: for histograms, the
        monitored gradients of the call's last step; else empty.
        """
        if "variables" not in applied:
            raise RuntimeError(
                "GradientMonitor measures the gradients the optimizer "
                "applies, but this model's train_step never called "
                "optimizer.apply() or apply_gradients(). Pass probe=(x, y) "
                "to measure gradients on a fixed batch instead. Received a "
                f"model of type {type(self.model).__name__}"
            )
        if not self._all_variables:
            self._find_variables()
        ops = keras.ops
        position = {id(v): i for i, v in enumerate(applied["variables"])}
        not_a_number = ops.convert_to_tensor(float("nan"), "float32")

        def squared(tensor):
            return ops.sum(ops.square(ops.cast(tensor, "float32")))

        gradients = []
        for variable in self._all_variables:
            i = position.get(id(variable))
            gradients.append(None if i is None else applied["gradients"][i])
        squares = ops.stack(
            [ops.zeros(()) if g is None else squared(g) for g in gradients]
        )
        ratios = []
        for variable in self._monitored:
            i = position.get(id(variable))
            if i is None:
                ratios.append(not_a_number)
                continue
            before = applied["before"][i]
            weight = squared(before)
            update = squared(ops.subtract(applied["after"][i], before))
            positive = ops.greater(weight, 0.0)
            ratios.append(
                ops.where(
                    positive,
                    ops.divide(update, ops.where(positive, weight, 1.0)),
                    not_a_number,
                )
            )
        names, finite = outputs
        not_finite = ops.subtract(1.0, finite)
        self._output_names = names
        parts = [squares, ops.stack(ratios), not_finite]
        clip = self._clip
        if clip:
            if clip["argument"] == "clipnorm":
                observed = ops.max(squares)
            else:
                observed = ops.sum(squares)
            clipped = ops.cast(
                ops.greater(observed, clip["threshold"] ** 2), "float32"
            )
            parts.append(ops.stack([observed, clipped]))
        parts.append(ops.ones((1,)))
        self._layout = (
            len(self._all_variables),
            len(self._monitored),
            len(names),
            2 if clip else 0,
        )
        last = ()
        if self.histogram_dir is not None:
            index = {id(v): i for i, v in enumerate(self._all_variables)}
            last = tuple(
                ops.zeros(v.shape)
                if gradients[index[id(v)]] is None
                else ops.cast(gradients[index[id(v)]], "float32")
                for v in self._monitored
            )
        return ops.concatenate(parts), last

    def _step_values(self, value):
        """Turns a measured call's `(summed, last)` into log entries.

        Each quantity is the root-mean-square over the call's steps of its
        per-step value: the gradient norms (layer and global), the
        update-to-weight ratios, and the norm clipping compares with its
        threshold (`suggested_clipnorm` takes its percentile over calls);
        every step of the call counts in `grad_norm/clipped_fraction`, and
        an output is not finite when it was not at any step.
        """
        backend = _backend.get("GradientMonitor")
        summed, last = value
        summed = backend.to_numpy(summed).astype("float64")
        gradients = [backend.to_numpy(t).astype("float64") for t in last]
        variables, monitored, outputs, clipping = self._layout
        count = summed[-1]
        parts = np.split(
            summed[:-1],
            np.cumsum([variables, monitored, outputs, clipping])[:-1],
        )
        squares, ratios, not_finite, clip = (part / count for part in parts)
        finite = not_finite == 0
        all_norms = np.sqrt(squares)
        position = {id(v): i for i, v in enumerate(self._all_variables)}
        norms = all_norms[[position[id(v)] for v in self._monitored]]
        values = self._summarize(norms)
        values["grad_norm/global"] = float(np.sqrt(squares.sum()))
        for layer, ratio in zip(self._layers, np.sqrt(ratios)):
            values[f"update_ratio/{layer}"] = float(ratio)
        self._not_finite = None
        if not np.all(np.isfinite(all_norms)) or not np.all(finite):
            outputs = [n for n, ok in zip(self._output_names, finite) if not ok]
            layers = [
                layer for layer, norm in zip(self._layers, norms) if not np.isfinite(norm)
            ]
            self._not_finite = (outputs[:1], layers[:1])
        if len(clip) and np.all(np.isfinite(all_norms)):
            self._count_clipping(
                float(np.sqrt(clip[0])), round(clip[1] * count), round(count), values
            )
        self._write_histograms(gradients)
        return values

    def _count_clipping(self, observed, clipped, steps, values):
        clip = self._clip
        clip["observed"].append(observed)
        clip["measured"] += steps
        clip["clipped"] += clipped
        values["grad_norm/clipped_fraction"] = clip["clipped"] / clip["measured"]

    def _between_measurements(self, logs):
        """Reads the loss between measurements; returns the next call to watch.

        The hub calls this after the calls it returns (`_LOSS_READS_PER_EPOCH`
        an epoch), not after every call: any Python between two calls of the
        train function slows the training loop down (see
        `callbacks/_train_step_capture.py`).
        """
        # The logs hold the backend's tensors; reading one before it is
        # ready would wait for the step (on JAX, every call). The loss
        # logged is the epoch's running mean: once not finite it stays so
        # until the epoch ends, so the latest loss ready tells for all the
        # calls before it (and the epoch's end reads the epoch's loss). A
        # loss not ready yet is read at the next call watched: on JAX a read
        # comes one watched call late, and never waits for the device.
        pending = self._pending_losses
        loss = logs.get("loss")
        if loss is not None:
            pending.append(loss)
        hub = self._hub
        # The hub's backend module: `_backend.get` costs an import lookup.
        is_ready = hub.backend.is_ready
        ready = None
        while pending and is_ready(pending[0]):
            ready = pending.pop(0)
        if ready is not None:
            self._step = hub.step
            self._check_loss(ready)
        steps = (self.params or {}).get("steps") or _LOSS_READS_PER_EPOCH
        return hub.step + steps // _LOSS_READS_PER_EPOCH

    def on_epoch_end(self, epoch, logs=None):
        if self._hub is not None:
            self._step = self._hub.step
            pending, self._pending_losses = self._pending_losses, []
            # The epoch's loss, a float, tells for every call of the epoch.
            loss = (logs or {}).get("loss", pending[-1] if pending else None)
            if loss is not None:
                self._check_loss(loss)
        super().on_epoch_end(epoch, logs)

    def _check_loss(self, loss):
        if self._flagged["exploding"]:
            return
        try:
            loss = float(self._hub.backend.to_numpy(loss))
        except (TypeError, ValueError):
            return
        if not math.isfinite(loss):
            last = self._measured_step
            message = (
                f"GradientMonitor: exploding gradients {self._where()}, not "
                f"finite: training loss {loss:g}, between measurements (the "
                f"last at step {last}). Measure every step "
                "(every_n_batches=1) to name the first layer whose output or "
                f"gradient turned non-finite. {self._exploding_remedy()}"
            )
            self._flagged["exploding"] = list(self._layers)
            self._act("exploding", self._flagged["exploding"], message)
            self._warned["exploding"] = self._flagged["exploding"]

    # Verdicts.

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
        ratios = np.array(
            [values.get(f"update_ratio/{layer}", np.nan) for layer in self._layers]
        )
        return {
            "vanishing": self._vanishing(norms, largest),
            "exploding": self._exploding(norms, logs),
            "stalled": self._update_verdict(ratios, "stalled"),
            "thrashing": self._update_verdict(ratios, "thrashing"),
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
            if isinstance(value, float) and not math.isfinite(value)
        ]
        layers = [
            layer for layer, norm in zip(self._layers, norms) if not math.isfinite(norm)
        ]
        if layers:
            not_finite.append(f"gradient norms of {', '.join(layers)}")
        if not_finite:
            # A non-finite layer output alone (e.g. -inf used as a mask) is
            # no verdict; beside a non-finite loss or gradient it names where.
            message = (
                f"GradientMonitor: exploding gradients {self._where()}, not "
                f"finite: {'; '.join(not_finite)}."
                f"{self._first_not_finite()} {self._exploding_remedy()}"
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

    def _first_not_finite(self):
        if not self._not_finite:
            return ""
        outputs, gradients = self._not_finite
        parts = []
        if outputs:
            parts.append(f"the first layer whose output was not finite: '{outputs[0]}'")
        if gradients:
            parts.append(
                f"the first layer whose gradient was not finite: '{gradients[0]}'"
            )
        return (" In this step, " + "; ".join(parts) + ".") if parts else ""

    def _exploding_remedy(self):
        model = self.model
        try:
            _backend.get("GradientMonitor").sync(model)
            rate = f" (now {float(model.optimizer.learning_rate):.2g})"
        except (TypeError, ValueError, AttributeError):
            rate = ""
        suggested = self.suggested_clipnorm
        threshold = (
            f" at about {suggested:.3g}, the {_CLIP_PERCENTILE}th percentile of "
            "the norms measured"
            if suggested
            else " with the optimizer's `global_clipnorm` near the 90th "
            "percentile of the gradient norms (`grad_norm/global`)"
        )
        return (
            "Remedies, in the order of the deep learning tuning playbook: "
            "1) learning-rate warm-up (a schedule ramping the rate up from "
            "0 over the first steps); 2) gradient clipping"
            f"{threshold}; 3) another optimizer (Adam handles some "
            "instabilities momentum does not); 4) residual connections and "
            "normalisation (BatchNormalization or LayerNormalization); "
            f"5) as a last resort, a lower learning rate{rate}."
        )

    def _update_verdict(self, ratios, kind):
        # Biases and normalisation vectors often start at zero: their
        # ratio says nothing early on, only kernels are judged.
        ratios = [r if layer in self._kernels else np.nan
                  for layer, r in zip(self._layers, ratios)]
        if kind == "stalled":
            limit, argument = self.min_update_ratio, "min_update_ratio"
            flagged = [
                (layer, r) for layer, r in zip(self._layers, ratios) if r < limit
            ]
        else:
            limit, argument = self.max_update_ratio, "max_update_ratio"
            flagged = [
                (layer, r) for layer, r in zip(self._layers, ratios) if r > limit
            ]
        if not flagged:
            return [], None
        listed = ", ".join(f"{layer} ({ratio:.1e})" for layer, ratio in flagged)
        if kind == "stalled":
            remedy = (
                "These layers have effectively stopped learning: their "
                "updates are far below the healthy order of 1e-3 of the "
                "weights. If their gradients vanish, see the vanishing "
                "remedies; otherwise raise the learning rate (or use Adam)."
            )
        else:
            remedy = (
                "Each step rewrites a large part of these layers, so little "
                "of what they learn is kept (healthy: about 1e-3). Lower the "
                "learning rate, or add a warm-up."
            )
        message = (
            f"GradientMonitor: {kind} layers {self._where()}: update-to-"
            f"weight ratio {'below' if kind == 'stalled' else 'above'} "
            f"{argument}={limit:g}: {listed}. {remedy}"
        )
        return [layer for layer, _ in flagged], message

    def _write_histograms(self, gradients):
        if self._writer is None or not len(gradients):
            return
        import tensorflow as tf

        with self._writer.as_default():
            for layer, gradient in zip(self._layers, gradients):
                if gradient is None:
                    continue
                tf.summary.histogram(f"gradients/{layer}", gradient, step=self._step)
        self._writer.flush()

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
            min_update_ratio=self.min_update_ratio,
            max_update_ratio=self.max_update_ratio,
            include_biases=self.include_biases,
            on_vanishing=self.on_vanishing,
            on_exploding=self.on_exploding,
            on_stalled=self.on_stalled,
            on_thrashing=self.on_thrashing,
            histogram_dir=self.histogram_dir,
        )
        return config


def _clipping(optimizer):
    """Which norm clipping the optimizer does, or None."""
    optimizer = getattr(optimizer, "inner_optimizer", optimizer)
    for argument in ("clipnorm", "global_clipnorm"):
        threshold = getattr(optimizer, argument, None)
        if threshold:
            return {
                "argument": argument,
                "threshold": float(threshold),
                "observed": [],
                "measured": 0,
                "clipped": 0,
            }
    return None


def _histogram_writer(directory):
    if directory is None:
        return None
    try:
        import tensorflow as tf
    except ImportError as error:
        raise ImportError(
            "GradientMonitor(histogram_dir=...) writes TensorBoard histograms "
            "with tf.summary and needs TensorFlow installed; it is not. "
            f"Received histogram_dir={directory!r}"
        ) from error
    return tf.summary.create_file_writer(str(directory))


def _entry_name(model, variable):
    """`sequential/dense_1/kernel` -> `dense_1`; `.../bias` keeps `/bias`."""
    path = variable.path
    prefix = f"{model.name}/"
    path = path.removeprefix(prefix)
    suffix = "/kernel"
    path = path.removesuffix(suffix)
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
