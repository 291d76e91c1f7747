"""The active Keras backend's part of the callbacks: what `keras.ops` cannot say.

How gradients are taken, how a train step is compiled and where the weights
live during `fit()` differ between TensorFlow, JAX and PyTorch. Each backend
has one small module with the same functions (`_backend_tensorflow`,
`_backend_jax`, `_backend_torch`); `get()` returns the active one.

Every backend module provides:

- `make_train_function(model, step)`: a function called like
  `model.train_function`, built the way Keras builds it, from `step`, a
  function with the signature of `model.train_step`.
- `around_train_step(model, train_step, around)`: a step with the
  signature of `train_step` that calls `around(data, run, forward)`, where
  `run()` runs `train_step` and returns its logs, and `forward` is `None`
  (TensorFlow, PyTorch: the layer outputs can be recorded while `run()`
  runs) or, on JAX, whose forward pass runs inside `jax.value_and_grad`
  and cannot let tensors out, a function running the model's forward pass
  again, in training mode, on the step's batch and weights before the
  update (and random state: the same dropout masks).
- `finite_outputs(gradients, flags)` (JAX): returns `flags()` (`(names,
  vector)`, computed by a `forward` pass) when a gradient is not finite,
  and a vector of ones otherwise, without running the forward pass
  (`lax.cond`). A host callback from inside the step would cost more than
  a small model's step: any effect makes every call of the compiled
  function take JAX's slow dispatch path.
- `StepSums(keys)`: sums tensors over the steps of one call of a train
  function (`steps_per_execution`). `add(key, tensor)`, called in the step,
  returns what the step returns in its logs under `key` (on TensorFlow,
  the running sum of the call, kept in a variable; elsewhere the tensor
  itself); `train_function(model, step)` builds the train function (as
  `make_train_function`) whose logs hold, under each key, a pair whose
  first element is the sum over the call's steps (on JAX, the function
  calls the compiled one-step function once per step and adds).
- `logs_of(result)`: the logs dict of what a train function call returned.
- `adopt(model, result)`: gives the model the training state a call
  returned, as `fit()` does after the call (JAX; nothing elsewhere).
- `is_ready(value)`: whether reading a value of the logs would not wait for
  the device (JAX computes asynchronously; elsewhere always true).
- `peek_batch(args)`: given the arguments of a train function call, returns
  `(batch, args)`: the first batch of the call and arguments that still
  feed that batch to the train function.
- `release(model, args)`: gives the weights back to the model when a train
  function call is abandoned before it ran (JAX holds them in `args`).
- `sync(model)`: makes the model's variables hold the current weights
  (JAX keeps them outside the variables during an epoch).
- `loss_and_gradients(model, variables)`: a function `(x, y) -> (loss,
  gradients)` of the compiled loss in inference mode, with no side effect.
- `compiled(model, function)`: a function `(x) -> function(x)` computing
  with the model's current weights: on JAX traced once by `jax.jit`, the
  weights passed as arguments, on TensorFlow one `tf.function` (an eager
  forward pass dispatches each operation on its own); on PyTorch
  `function` itself, run eagerly.
- `inference()`: a context manager for forward passes that need no
  gradient.
- `to_numpy(tensor)`: a NumPy array of a backend tensor (or array).
"""

import importlib

import keras

SUPPORTED_BACKENDS = ("tensorflow", "jax", "torch")


def require_supported_backend(callback_name):
    """Raises a clear error when the active Keras backend is not supported.

    Args:
        callback_name: str, the name of the callback asking, used in the message.

    Raises:
        RuntimeError: if `keras.backend.backend()` is not one of
            `SUPPORTED_BACKENDS`.

    Example:

    >>> require_supported_backend("GradientMonitor")  # TF, JAX, torch: no error
    """
    backend = keras.backend.backend()
    if backend not in SUPPORTED_BACKENDS:
        raise RuntimeError(
            f"{callback_name} supports the Keras backends "
            f"{', '.join(SUPPORTED_BACKENDS)}; the active backend is "
            f"'{backend}'. Set KERAS_BACKEND to one of them before importing "
            "keras."
        )


def get(callback_name):
    """Returns the module implementing the active backend's functions.

    Args:
        callback_name: str, the callback asking, named in the error.

    Raises:
        RuntimeError: if the active backend is not supported.

    Example:

    >>> get("GradientMonitor").__name__.startswith("callbacks._backend_")
    True
    """
    require_supported_backend(callback_name)
    return importlib.import_module(f"callbacks._backend_{keras.backend.backend()}")


def built_by_keras(model, step):
    """Returns the train function Keras's own `make_train_function` builds for `step`.

    `make_train_function` compiles whatever `model.train_step` is when it
    runs (XLA, distribution, `steps_per_execution` included): `step` is lent
    as an instance attribute for that call only, and the model's own train
    function is put back.
    """
    original = model.train_function
    object.__setattr__(model, "train_step", step)
    try:
        model.make_train_function(force=True)
        return model.train_function
    finally:
        object.__delattr__(model, "train_step")
        model.train_function = original
