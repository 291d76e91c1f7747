"""JAX backend functions of the callbacks (see `callbacks._backend`).

During `fit()` JAX keeps the weights in a state passed from step to step and
empties the model's variables; `sync` writes the state back (the hook Keras
offers callbacks, keras#19054), so read the weights only after it. JAX is
imported where it is used.
"""

import contextlib
import itertools

import numpy as np

from callbacks import _backend


def make_train_function(model, step):
    """Builds a train function from `step` exactly as Keras builds its own."""
    return _backend.built_by_keras(model, step)


class StepSums:
    """Sums the step's values over the steps of one train function call.

    Keras's JAX train function with `steps_per_execution=N` is a Python loop
    calling the compiled one-step function up to N times, returning the last
    step's logs. This one is the same loop (the compiled function built by
    Keras with one step per call), which also adds up, on the device, the
    first element of each step's `(summed, last)` pair under every key.
    """

    def __init__(self, keys):
        self._keys = list(keys)

    def add(self, key, value):
        del key
        return value

    def train_function(self, model, step):
        steps = int(getattr(model, "steps_per_execution", 1) or 1)
        if steps == 1:
            return make_train_function(model, step)
        model.steps_per_execution = 1
        try:
            one_step = _backend.built_by_keras(model, step)
        finally:
            model.steps_per_execution = steps
        keys = self._keys

        def function(state, iterator):
            logs, state = one_step(state, iterator)
            totals = {key: logs[key][0] for key in keys}
            for _ in range(steps - 1):
                try:
                    logs, state = one_step(state, iterator)
                except StopIteration:
                    break
                for key in keys:
                    totals[key] = totals[key] + logs[key][0]
            logs = dict(logs)
            for key in keys:
                logs[key] = (totals[key], logs[key][1])
            return logs, state

        return function


def around_train_step(model, train_step, around):
    del model

    def step(state, data):
        new_state = []

        def run():
            logs, state_after = train_step(state, data)
            new_state.append(state_after)
            return logs

        logs = around(data, run)
        return logs, new_state[0]

    return step


def output_recorder(outputs):
    """Records which layer outputs were not finite, delivered to the host.

    The forward pass runs inside `jax.value_and_grad`, whose values cannot
    leave it as step outputs: `jax.debug.callback` sends `False` to the host
    when a layer's output is not all finite, and only then (under
    `lax.cond`): a host callback per layer and step would cost more than a
    small model's step. The layer names enter `outputs` at trace time (in
    call order, with the value `None`); a `False` replaces `None` when a
    step finds the output not finite (`wait()` first). The reader sets the
    values back to `None` after reading.
    """
    import jax
    import jax.numpy as jnp

    def storing(name):
        # A closure, not functools.partial: JAX flattens partials' arguments.
        def store(flag):
            if not bool(flag):
                outputs[name] = False

        return store

    def record(name, output):
        for tensor in jax.tree_util.tree_leaves(output):
            if jnp.issubdtype(tensor.dtype, jnp.floating):
                outputs.setdefault(name, None)
                finite = jnp.all(jnp.isfinite(tensor))
                jax.lax.cond(
                    finite,
                    lambda flag: None,
                    lambda flag: jax.debug.callback(storing(name), flag),
                    finite,
                )
                return

    return record


def wait():
    """Waits until the flags sent by `output_recorder` have arrived."""
    import jax

    jax.effects_barrier()


def peek_batch(args):
    state, iterator = args
    iterator = iter(iterator)
    batch = next(iterator)
    return batch, (state, itertools.chain([batch], iterator))


def release(model, args):
    state = args[0]
    variables = (
        model.trainable_variables,
        model.non_trainable_variables,
        model.optimizer.variables,
        model.metrics_variables,
    )
    for group, values in zip(variables, state):
        for variable, value in zip(group, values):
            variable.assign(value)


def sync(model):
    model.jax_state_sync()


def loss_and_gradients(model, variables):
    import jax

    positions = {id(v): i for i, v in enumerate(model.trainable_variables)}
    wanted = [positions[id(v)] for v in variables]

    def loss(trainable, non_trainable, metrics, x, y):
        # Stateless: the loss trackers' new values are dropped.
        value, _ = model.compute_loss_and_updates(
            trainable, non_trainable, metrics, x, y, None, training=False
        )
        return value

    value_and_grad = jax.jit(jax.value_and_grad(loss))

    def compute(x, y):
        sync(model)
        value, gradients = value_and_grad(
            [v.value for v in model.trainable_variables],
            [v.value for v in model.non_trainable_variables],
            [v.value for v in model.metrics_variables],
            x,
            y,
        )
        return value, [gradients[i] for i in wanted]

    return compute


def inference():
    return contextlib.nullcontext()


def to_numpy(tensor):
    return np.asarray(tensor)
