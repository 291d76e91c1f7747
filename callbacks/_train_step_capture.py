"""Sees the batches and gradients of `fit()` without overriding `train_step`.

In Keras 3, `fit()` builds `model.train_function` before it calls the
callbacks' `on_train_begin`, and then calls `model.train_function(...)` once
per call of `steps_per_execution` batches. While a callback of this package
is registered here, the model's train function is a small Python dispatcher
which keeps the count of steps done (`step`, each call counting
`steps_per_execution` steps, as Keras counts them) and, for the calls a
callback asked about:

- hands the call's first batch to the callbacks that asked to see it
  (`peek`), before the step runs;
- runs a *measuring* train function instead of the model's own, for the
  callbacks scheduled to measure that call (`schedule`). Keras builds it,
  as it builds its own, from the model's `train_step`
  wrapped so that, while it runs (traced once on TensorFlow and JAX, every
  call on PyTorch), the optimizer's `apply` is replaced by a wrapper that
  keeps the gradients it receives (before clipping) and the weights before
  and after the update, and every leaf layer's `call` records whether its
  output was all finite (on JAX, whose traced gradient computation cannot
  let tensors out, a second forward pass on the same batch and weights
  records them, run only when a gradient is not finite: see
  `callbacks._backend`). Each callback turns these into a pair `(summed,
  last)`: `summed`, a 1-D float32 tensor, is summed over the steps of the
  call (with `steps_per_execution=N` a call runs up to N steps; the backend's
  `StepSums` does the sum), `last` (a tuple of tensors) is the last step's.
  The pair is returned in the call's logs under a private key that the
  callback removes;
- hands the call's logs to the scheduled callbacks' `after_call(logs)`, on
  the training thread, before `fit()` hands them to the callbacks (whose
  `on_train_batch_end` Keras runs on a worker thread on JAX and PyTorch
  when no callback overrides it).

The schedule lives here, not in an `on_train_batch_begin` hook: Keras calls
that hook on every call, a Python cost per step that shows on a small
model. Each scheduled callback says, with `next_call(done, batch)`, which
call it wants next; a callback that only reads the logs of some calls
between its measurements (`watch`: the gradient monitor reads the loss a
few times an epoch) says so in what its `receive(logs)` returns. The
dispatcher keeps the earliest call anybody asked for (`due`), and every
other call costs it one comparison and the call of the model's own train
function: no other Python of ours runs there. On JAX that Python costs
more than its own microseconds: handing the state and logs to a watcher on
every call (about 3 microseconds) also made the calls of the model's own
train function slower, 3-4% of an epoch in all on the overhead
benchmark's small model (most likely the training thread, the compiled
steps and Keras' batch-end worker thread contending for the GIL and the
cores). Each combination of measuring callbacks is compiled once per
`fit()`, at its first use.
"""

import contextlib
import math

import keras

from callbacks import _backend

_HUBS = {}


def register(callback, name):
    """Attaches `callback` to the dispatcher of its model (created if needed).

    Call from `on_train_begin`. Returns the dispatcher (`_Hub`). A
    dispatcher that already ran calls belongs to an earlier `fit()` (one
    that raised before its callbacks' `on_train_end`): it starts afresh.
    """
    model = callback.model
    hub = _HUBS.get(id(model))
    if hub is None or hub.model is not model or model.train_function is not hub.function:
        hub = _Hub(model, _backend.get(name))
        _HUBS[id(model)] = hub
    elif hub.started:
        hub.start()
    if callback not in hub.callbacks:
        hub.callbacks.append(callback)
    return hub


def unregister(callback):
    """Detaches `callback`; the last one out gives the model its function back."""
    model = callback.model
    hub = _HUBS.get(id(model))
    if hub is None or callback not in hub.callbacks:
        return
    hub.callbacks.remove(callback)
    hub.scheduled.pop(callback, None)
    hub.watchers.pop(callback, None)
    if not hub.callbacks:
        if model.train_function is hub.function:
            model.train_function = hub.original
        del _HUBS[id(model)]


class _Hub:
    def __init__(self, model, backend):
        if model.train_function is None:
            model.make_train_function()
        self.model = model
        self.backend = backend
        self.original = model.train_function
        self.function = self._dispatch
        model.train_function = self.function
        self.start()

    def start(self):
        """Forgets callbacks, schedule and counts: a new `fit()` begins."""
        self.callbacks = []
        self.peekers = []
        self.scheduled = {}
        self.watchers = {}
        self.measuring = {}
        self.steps_per_call = int(
            getattr(self.model, "steps_per_execution", 1) or 1
        )
        self.step = 0
        self.epoch_first_step = 0
        # The next call at which to ask the scheduled callbacks (`ask_at`),
        # and the earliest call anybody asked for (`due`, never later).
        self.ask_at = 0
        self.due = 0
        self.started = False

    def peek(self, receive):
        """Calls `receive(batch)` with the next call's first batch, once.

        The batch is the nest of tensors the train step receives (`(x, y)` or
        `(x, y, sample_weight)`); `receive` runs before the step, and an
        exception it raises stops `fit()` before the step changes anything.
        """
        self.peekers.append(receive)
        self._ask_now()

    def schedule(self, callback, measure):
        """Calls `callback.after_call(logs)` after the calls it asks for.

        The dispatcher asks `callback.next_call(done, batch)` at the first
        call of each epoch and at the calls some callback asked for, not at
        the others: given `done`, the steps done in this `fit()` before that call, and
        `batch`, the index in the epoch of the call's first batch (as Keras
        passes it to `on_train_batch_begin`), it returns the `done` of the
        next call it wants (`done` itself for this call, `math.inf` for none
        in this epoch). With `measure`, the calls it wants run the measuring
        train function, with `callback.in_step`.
        """
        self.scheduled[callback] = measure
        self._ask_now()

    def watch(self, callback, receive):
        """Calls `receive(logs)` after the calls it asks for, from the next one.

        `receive` returns the `done` of the next call whose logs it wants
        (`math.inf` for none). A call scheduled for `callback` goes to its
        `after_call` instead. Before `receive` runs, the model holds the
        call's state, as after a scheduled call: it may read the weights, or
        raise.
        """
        self.watchers[callback] = [receive, self.step]
        self.due = min(self.due, self.step)

    def begin_epoch(self):
        """Marks the start of an epoch: the next call is its first batch."""
        self.epoch_first_step = self.step
        self._ask_now()

    def _ask_now(self):
        """Asks the scheduled callbacks again at the next call."""
        self.ask_at = min(self.ask_at, self.step)
        self.due = min(self.due, self.ask_at)

    def _dispatch(self, *args):
        if self.step < self.due:
            # Most calls: nobody asked for this one.
            result = self.original(*args)
            self.step += self.steps_per_call
            return result
        return self._call_asked_for(args)

    def _call_asked_for(self, args):
        self.started = True
        done = self.step
        due = self._due_callbacks(done) if done >= self.ask_at else ()
        function = self.original
        measured = tuple(c for c in due if self.scheduled[c])
        if measured:
            if measured not in self.measuring:
                self.measuring[measured] = self._build(measured)
            function = self.measuring[measured]
        if self.peekers:
            peekers, self.peekers = self.peekers, []
            try:
                batch, args = self.backend.peek_batch(args)
                for receive in peekers:
                    receive(batch)
            except BaseException:
                self.backend.release(self.model, args)
                raise
        result = function(*args)
        self.step = done + self.steps_per_call
        # As `fit()` does after the call returns (JAX): a callback reading
        # the model now reads this call's weights.
        self.backend.adopt(self.model, result)
        logs = self.backend.logs_of(result)
        for callback in list(self.callbacks):
            watcher = self.watchers.get(callback)
            if callback in due:
                callback.after_call(logs)
            elif watcher is not None and watcher[1] <= done:
                watcher[1] = watcher[0](logs)
        self.due = min(
            [self.ask_at] + [wanted for _, wanted in self.watchers.values()]
        )
        return result

    def _due_callbacks(self, done):
        """Asks the scheduled callbacks about this call; returns those it is for.

        Sets `ask_at` to the earliest call any of them wants next.
        """
        size = self.steps_per_call
        batch = done - self.epoch_first_step
        due = []
        self.ask_at = math.inf
        for callback in self.scheduled:
            wanted = callback.next_call(done, batch)
            if wanted == done:
                due.append(callback)
                wanted = callback.next_call(done + size, batch + size)
            self.ask_at = min(self.ask_at, wanted)
        return due

    def _build(self, callbacks):
        model = self.model
        backend = self.backend

        sums = backend.StepSums([callback.capture_key for callback in callbacks])

        def around(data, run, forward=None):
            applied = {}
            outputs = {}
            recording = (
                _capturing_outputs(model, outputs.__setitem__)
                if forward is None
                else contextlib.nullcontext()
            )
            with _capturing_apply(model.optimizer, applied), recording:
                logs = run()
            logs = dict(logs)
            with backend.inference():
                if forward is None:
                    finite = _finite_flags(outputs)
                else:
                    finite = backend.finite_outputs(
                        applied.get("gradients", []),
                        lambda: _finite_flags(_forward_outputs(model, forward)),
                    )
                for callback in callbacks:
                    summed, last = callback.in_step(data, applied, finite)
                    key = callback.capture_key
                    logs[key] = (sums.add(key, summed), tuple(last))
            return logs

        step = backend.around_train_step(model, model.train_step, around)
        return sums.train_function(model, step)


@contextlib.contextmanager
def _capturing_apply(optimizer, applied):
    """Wraps the optimizer's update to keep what it receives and changes.

    Keeps, in `applied`: `variables` (the trainable variables updated),
    `gradients` (as received, divided by the loss scale: before clipping),
    `before` and `after` (the variables' values around the update). A plain
    optimizer's `apply` is wrapped (JAX's `stateless_apply` calls it). A
    `LossScaleOptimizer` updates inside a conditional (skipping steps whose
    scaled gradients overflowed), from which no value can be taken out: its
    own `apply` (TensorFlow, PyTorch) or `stateless_apply` (JAX) is wrapped,
    and the gradients are divided by its dynamic scale.
    """
    scaled = hasattr(optimizer, "inner_optimizer")

    def keep(variables, grads, scale):
        applied["variables"] = variables
        applied["gradients"] = [
            g if g is None or scale is None else g / scale for g in grads
        ]

    def apply(grads, trainable_variables=None):
        if trainable_variables is None:
            variables = list(optimizer._trainable_variables)
        else:
            variables = list(trainable_variables)
        if scaled and not optimizer.built:
            # As its `apply` would, first thing: creates `dynamic_scale`.
            with keras.name_scope(optimizer.name, caller=optimizer):
                optimizer.build(variables)
            optimizer.built = True
        scale = optimizer.dynamic_scale if scaled else optimizer.loss_scale_factor
        if scale is not None:
            scale = keras.ops.convert_to_tensor(scale)
        keep(variables, grads, scale)
        applied["before"] = [keras.ops.copy(v.value) for v in variables]
        result = original(grads, trainable_variables)
        applied["after"] = [v.value for v in variables]
        return result

    def stateless_apply(optimizer_variables, grads, trainable_variables):
        position = [id(v) for v in optimizer.variables].index(
            id(optimizer.dynamic_scale)
        )
        keep(
            list(optimizer._trainable_variables),
            grads,
            optimizer_variables[position],
        )
        applied["before"] = list(trainable_variables)
        result = original_stateless(optimizer_variables, grads, trainable_variables)
        applied["after"] = list(result[0])
        return result

    original = optimizer.apply
    original_stateless = optimizer.stateless_apply
    optimizer.__dict__["apply"] = apply
    if scaled:
        optimizer.__dict__["stateless_apply"] = stateless_apply
    try:
        yield
    finally:
        del optimizer.__dict__["apply"]
        optimizer.__dict__.pop("stateless_apply", None)


def _forward_outputs(model, forward):
    """Runs `forward()` and returns the leaf layers' outputs by name."""
    outputs = {}
    with _capturing_outputs(model, outputs.__setitem__):
        forward()
    return outputs


def _finite_flags(outputs):
    """`(names, flags)`: the layers with a floating output, 1.0 where all finite.

    `names` lists, in call order, the layers of `outputs` (name -> output)
    whose output has a floating tensor; `flags` is a float32 vector, for
    each, 1.0 if its first floating tensor is all finite, else 0.0.
    """
    ops = keras.ops
    names, flags = [], []
    for name, output in outputs.items():
        for tensor in keras.tree.flatten(output):
            dtype = keras.backend.standardize_dtype(tensor.dtype)
            if keras.backend.is_float_dtype(dtype):
                names.append(name)
                flags.append(ops.cast(ops.all(ops.isfinite(tensor)), "float32"))
                break
    return names, ops.stack(flags) if flags else ops.zeros((0,))


@contextlib.contextmanager
def _capturing_outputs(model, record):
    """Wraps every leaf layer's `call` to call `record(name, output)`.

    The backend's recorder keeps outputs by layer name, in the order the
    layers were first called; a later call of a layer replaces its output
    (building a subclassed model calls its layers on placeholders first).
    """
    leaves = [
        layer
        for layer in model._flatten_layers(include_self=False, recursive=True)
        if not layer._flatten_layers(include_self=False, recursive=False)
        and not isinstance(layer, keras.layers.InputLayer)
    ]

    def recording(layer, call):
        def call_and_record(*args, **kwargs):
            output = call(*args, **kwargs)
            record(layer.name, output)
            return output

        return call_and_record

    for layer in leaves:
        layer.__dict__["call"] = recording(layer, layer.call)
    try:
        yield
    finally:
        for layer in leaves:
            del layer.__dict__["call"]
