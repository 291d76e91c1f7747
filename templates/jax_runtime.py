"""JAX set up for many small networks: compile less, never import TensorFlow.

`configure_jax` (called when `templates` is imported on JAX) turns on JAX's
persistent compilation cache (a search compiles the same training step for
every fold and for trials of the same shape, and each trial runs in a fresh
process that would otherwise compile it again), draws initial weights
through a few compiled programs instead of one per weight shape
(`bucketed_sampler`), makes zeros and ones in numpy outside compiled steps
(`host_constructor`: no compilation per shape), and keeps Keras from importing TensorFlow when it
saves a model (about 3 s of every process that saves one).
`limit_jax_threads` caps a search worker's compute threads.

Example:

>>> compilation_cache_directory().endswith(os.path.join("keras-templates", "jax"))
True
"""

import importlib
import os
import sys


def compilation_cache_directory():
    """Where JAX keeps compiled programs between processes: `$XDG_CACHE_HOME/keras-templates/jax`."""
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(cache, "keras-templates", "jax")


def configure_jax():
    """Turns on JAX's persistent compilation cache, unless the user configured one.

    Every compiled program is kept (even quick ones): a trial's process
    compiles the training step, the evaluation step and the weight
    initialisers afresh, and reading them back costs less than compiling.
    """
    import jax

    _serialize_without_importing_tensorflow()
    _draw_initial_weights_in_buckets()
    _construct_on_host()
    if jax.config.jax_compilation_cache_dir is None:
        jax.config.update("jax_compilation_cache_dir", compilation_cache_directory())
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)


def limit_jax_threads(threads):
    """Limits JAX's CPU compute threads in this process, before its first computation.

    Args:
        threads: int >= 1; 1 runs each operation on the calling thread.
    """
    flags = [f"--xla_cpu_multi_thread_eigen={'true' if threads > 1 else 'false'}",
             f"intra_op_parallelism_threads={threads}"]
    os.environ["XLA_FLAGS"] = " ".join([os.environ.get("XLA_FLAGS", ""), *flags]).strip()


class _TensorFlowIfImported:
    """Keras' lazy TensorFlow module, except that `available` never imports TensorFlow.

    Keras' serializer asks `tf.available` to test whether a value is a
    TensorFlow shape, dtype or type spec, which imports TensorFlow; no
    value can be one before TensorFlow is imported, so the answer is the
    same without the import.
    """

    def __init__(self, lazy_module):
        self._lazy_module = lazy_module

    @property
    def available(self):
        return "tensorflow" in sys.modules and self._lazy_module.available

    def __getattr__(self, name):
        return getattr(self._lazy_module, name)


def _serialize_without_importing_tensorflow():
    # A private module of Keras 3.15 (tests/test_backends.py checks that a
    # run on JAX never imports TensorFlow); if it moves, Keras imports
    # TensorFlow when saving, as before, and nothing else changes.
    try:
        from keras.src.saving import serialization_lib
    except ImportError:
        return
    lazy_module = getattr(serialization_lib, "tf", None)
    if lazy_module is not None and not isinstance(lazy_module, _TensorFlowIfImported):
        serialization_lib.tf = _TensorFlowIfImported(lazy_module)


# Keras' JAX random functions that initialisers call outside any compiled step.
SAMPLERS = ("normal", "uniform", "truncated_normal")
# 65,536 values (a 256 x 256 kernel) cost 0.8 ms to draw against 0.3 ms for
# 1,024, and spare a search's trials a compilation (about 0.2 s) for each new
# size class below it: every initialiser of a template's networks shares one.
SMALLEST_BUCKET = 1 << 16


def bucketed_sampler(sample):
    """Wraps a Keras JAX random function so eager calls compile once per power of two.

    JAX compiles a random function for every output shape: a network of a
    new width compiles its initialisers afresh, about 0.3 s of CPU per
    weight shape, which in a search of small networks was a third of a
    trial. The wrapper draws the next power of two of values (at least
    `SMALLEST_BUCKET`) with the same seed and keeps the first ones, in the
    requested shape: the same values as Keras' own draw of that shape (JAX's
    partitionable threefry draws value i from the seed and i alone, so a
    longer draw begins with the shorter one), from a program compiled once
    per size class (and kept by the compilation cache). Calls with a traced
    seed (dropout) or array arguments go to `sample` unchanged; a draw made
    inside a trace (a subclassed model built within a compiled step) is
    sliced there.

    Args:
        sample: `normal`, `uniform` or `truncated_normal` of
            `keras.src.backend.jax.random`: `sample(shape, a, b, dtype, seed)`.

    Returns:
        The wrapped function.
    """
    import jax
    import numpy as np

    def bucketed(shape, *args, seed=None, **kwargs):
        shape = tuple(shape)
        scalars = all(isinstance(value, (int, float, str, type(None)))
                      for value in [*args, *kwargs.values(), *shape])
        if not scalars or isinstance(seed, jax.core.Tracer):
            return sample(shape, *args, seed=seed, **kwargs)
        size = int(np.prod(shape, dtype=np.int64))
        bucket = max(SMALLEST_BUCKET, 1 << max(size - 1, 0).bit_length())
        flat = sample((bucket,), *args, seed=seed, **kwargs)
        if isinstance(flat, jax.core.Tracer):
            # Drawn inside a trace (a subclassed model built by its first
            # call within a compiled step): no value to copy out yet.
            return flat[:size].reshape(shape)
        # `device_put`, not `jnp.asarray`: that compiles a program per shape.
        return jax.device_put(np.asarray(flat)[:size].reshape(shape))

    bucketed.wrapped_sample = sample
    return bucketed


# Keras' JAX array constructors that initialisers (zeros, ones) call.
CONSTRUCTORS = ("zeros", "ones")


def host_constructor(construct, fill):
    """Wraps `zeros` or `ones` of Keras' JAX numpy so eager calls compile nothing.

    Outside any trace, JAX compiles `jnp.zeros` and `jnp.ones` for every
    new shape, and a network's weights and optimizer slots come in many
    shapes (about 18 ms each, 0.1 s a trial in a search's fresh trial
    processes). The wrapper builds the array in numpy and copies
    it to the device instead: the same values, and no compilation. Inside a
    trace (a compiled step), it calls `construct` unchanged.

    Args:
        construct: `zeros` or `ones` of `keras.src.backend.jax.numpy`:
            `construct(shape, dtype=None)`.
        fill: `numpy.zeros` or `numpy.ones`.

    Returns:
        The wrapped function.
    """
    import jax
    import numpy as np
    from jax._src import core
    from keras.src.backend import config

    def constructor(shape, dtype=None):
        if not core.trace_state_clean():
            return construct(shape, dtype=dtype)
        try:
            shape = tuple(int(size) for size in (shape if np.iterable(shape) else (shape,)))
        except TypeError:  # a traced size
            return construct(shape, dtype=dtype)
        return jax.device_put(fill(shape, dtype=jax.numpy.dtype(dtype or config.floatx())))

    constructor.wrapped_construct = construct
    return constructor


def _draw_initial_weights_in_buckets():
    _wrap_keras_functions("keras.src.backend.jax.random", SAMPLERS, "wrapped_sample",
                          lambda name, sample: bucketed_sampler(sample))


def _construct_on_host():
    import numpy as np

    _wrap_keras_functions("keras.src.backend.jax.numpy", CONSTRUCTORS, "wrapped_construct",
                          lambda name, construct: host_constructor(construct, getattr(np, name)))


def _wrap_keras_functions(module_name, names, marker, wrap):
    """Replaces each function `names` of Keras' `module_name` by `wrap(name, function)`, once.

    A function already wrapped (it has the attribute `marker`) is left as it
    is; a Keras release without the module or a function leaves it out.
    """
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return
    for name in names:
        function = getattr(module, name, None)
        if function is not None and not hasattr(function, marker):
            setattr(module, name, wrap(name, function))
