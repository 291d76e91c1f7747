"""JAX backend functions of the callbacks (see `callbacks._backend`).

During `fit()` JAX keeps the weights in a state passed from step to step and
empties the model's variables; `sync` writes the state back (the hook Keras
offers callbacks, keras#19054), so read the weights only after it. JAX is
imported where it is used.
"""

import contextlib
import functools
import itertools
import operator

import keras
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
    first element of each step's `(summed, last)` pair under every key: in
    one compiled function after the loop, adding in step order (the same
    sums as adding after every step, without a dispatch per step and key).
    """

    def __init__(self, keys):
        self._keys = list(keys)

    def add(self, key, value):
        del key
        return value

    def train_function(self, model, step):
        import jax

        steps = int(getattr(model, "steps_per_execution", 1) or 1)
        if steps == 1:
            return make_train_function(model, step)
        model.steps_per_execution = 1
        try:
            one_step = _backend.built_by_keras(model, step)
        finally:
            model.steps_per_execution = steps
        keys = self._keys
        # Traced once per number of steps (the last call of an epoch may
        # run fewer).
        total = jax.jit(lambda values: functools.reduce(operator.add, values))

        def function(state, iterator):
            logs, state = one_step(state, iterator)
            summed = {key: [logs[key][0]] for key in keys}
            for _ in range(steps - 1):
                try:
                    logs, state = one_step(state, iterator)
                except StopIteration:
                    break
                for key in keys:
                    summed[key].append(logs[key][0])
            logs = dict(logs)
            for key in keys:
                logs[key] = (total(summed[key]), logs[key][1])
            return logs, state

        return function


def around_train_step(model, train_step, around):
    def step(state, data):
        new_state = []

        def run():
            logs, state_after = train_step(state, data)
            new_state.append(state_after)
            return logs

        def forward():
            # The same weights and random state as the step's own forward
            # pass: the same outputs.
            x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
            trainable, non_trainable, optimizer_variables, metrics = state
            model.compute_loss_and_updates(
                trainable,
                non_trainable,
                metrics,
                x,
                y,
                sample_weight,
                training=True,
                optimizer_variables=optimizer_variables,
            )

        logs = around(data, run, forward)
        return logs, new_state[0]

    return step


def finite_outputs(gradients, flags):
    """`flags()` when a gradient is not finite, else the same shape of ones.

    `flags()` returns `(names, vector)`. Both branches of `lax.cond` are
    traced (the forward pass twice, at trace time only); when the step
    runs, only the branch taken runs, and the other's forward pass, whose
    result only gives the shape of the ones, is left out by XLA.
    """
    import jax
    import jax.numpy as jnp

    names = []

    def computed():
        traced_names, vector = flags()
        names[:] = traced_names
        return vector

    healthy = jnp.all(
        jnp.stack(
            [jnp.all(jnp.isfinite(g)) for g in gradients if g is not None]
            or [jnp.array(True)]
        )
    )
    vector = jax.lax.cond(
        healthy, lambda: jnp.ones_like(computed()), computed
    )
    return names, vector


def logs_of(result):
    """The logs dict of what a train function call returned, `(logs, state)`."""
    return result[0]


def adopt(model, result):
    """Gives the model the state a call returned, as `fit()` does after it.

    Until then the model holds the state the call was given, donated to the
    call (deleted arrays): a callback syncing the model (`model.jax_state_sync`)
    before would read them, and so would `fit()`'s final sync when a
    callback raises before `fit()` stores the new state.
    """
    _, state = result
    names = (
        "trainable_variables",
        "non_trainable_variables",
        "optimizer_variables",
        "metrics_variables",
    )
    # Not through `Layer.__setattr__`, whose tracking walks every array of the
    # state looking for variables and layers: about as long as a training
    # step of a small model, on every call (`fit()` assigns it after anyway).
    object.__setattr__(model, "_jax_state", dict(zip(names, state)))


def is_ready(value):
    """Whether reading `value` would not wait for the device."""
    ready = getattr(value, "is_ready", None)
    return ready is None or ready()


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


def compiled(model, function):
    """`function(x)`, traced once by `jax.jit`, with the model's weights as arguments.

    Run eagerly, every operation of a forward pass is a dispatch of its own:
    the probe pass of a three-layer MLP took about 2 ms. Compiled, it is one
    dispatch. The weights are passed in (a `StatelessScope` maps the
    variables to them), not captured by the trace as constants: every call
    computes with the model's current weights. `function` is traced at the
    first call, and again only if the shapes of `x` change.
    """
    import jax

    variables = list(model.trainable_variables) + list(
        model.non_trainable_variables
    )

    def stateless(values, x):
        with keras.StatelessScope(state_mapping=list(zip(variables, values))):
            return function(x)

    jitted = jax.jit(stateless)

    def call(x):
        sync(model)
        return jitted([v.value for v in variables], x)

    return call


def inference():
    return contextlib.nullcontext()


def to_numpy(tensor):
    return np.asarray(tensor)
