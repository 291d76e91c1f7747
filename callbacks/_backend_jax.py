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
    """Records whether each layer output is finite, delivered to the host.

    The forward pass runs inside `jax.value_and_grad`, whose values cannot
    leave it as step outputs: `jax.debug.callback` sends each layer's
    "all finite" flag to the host when the step runs. The layer names enter
    `outputs` at trace time (in call order, with the value `None`); the
    flags replace them when the step runs (`wait()` first).
    """
    import jax
    import jax.numpy as jnp

    def storing(name):
        # A closure, not functools.partial: JAX flattens partials' arguments.
        def store(flag):
            outputs[name] = bool(flag)

        return store

    def record(name, output):
        for tensor in jax.tree_util.tree_leaves(output):
            if jnp.issubdtype(tensor.dtype, jnp.floating):
                outputs.setdefault(name, None)
                jax.debug.callback(storing(name), jnp.all(jnp.isfinite(tensor)))
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
