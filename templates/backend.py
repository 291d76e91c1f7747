"""The Keras backend the kit runs on, chosen before Keras is imported.

The templates, `templates.predict` and `tuning.search` run on TensorFlow and
on JAX. `choose_backend` (called when `templates` is imported, so before
any kit module imports Keras) picks, first match wins:

1. `--backend tensorflow|jax` on the command line of a kit program (or of a
   copied template: the option is read from `sys.argv`);
2. the `KERAS_BACKEND` environment variable;
3. the `"backend"` of `~/.keras/keras.json` (`$KERAS_HOME/keras.json`),
   unless it is `"tensorflow"`: Keras writes that file, with that value,
   the first time it is imported anywhere, so that value cannot tell a
   choice from a default. Pin TensorFlow with `KERAS_BACKEND=tensorflow`
   or `--backend tensorflow`;
4. `DEFAULT_BACKEND`, chosen on the measurements in benchmarks/README.md.

It then sets `KERAS_BACKEND`, which child processes (a search's workers
and trials) inherit. Once Keras has been imported (a notebook that imported
it first), the backend can no longer change and Keras' own choice stands.

On JAX, `configure_jax` turns on JAX's persistent compilation cache (a
search compiles the same training step for every fold and for trials of
the same shape, and each trial runs in a fresh process that would
otherwise compile it again), draws initial weights through a few compiled
programs instead of one per weight shape (`bucketed_sampler`), and keeps
Keras from importing TensorFlow when it saves a model (about 3 s of every
process that saves one).

Example:

>>> requested_backend(["--csv", "churn.csv", "--backend", "jax"])
'jax'
>>> requested_backend(["--backend=tensorflow"])
'tensorflow'
>>> requested_backend(["--epochs", "5"]) is None
True
"""

import json
import os
import sys

BACKENDS = ("tensorflow", "jax")
# benchmarks/README.md ("Backends"): on the bundled tables a template run
# and a tuning search take a fraction of TensorFlow's time on JAX.
DEFAULT_BACKEND = "jax"
# The value Keras writes into a new keras.json by itself.
KERAS_DEFAULT_BACKEND = "tensorflow"
OPTION = "--backend"


def requested_backend(argv):
    """The value of `--backend` in `argv`, or `None` when it is not given.

    Args:
        argv: list of str, command-line arguments.

    Returns:
        str or `None`; the value is checked by the program's own parser.
    """
    for position, argument in enumerate(argv):
        if argument == OPTION and position + 1 < len(argv):
            return argv[position + 1]
        if argument.startswith(OPTION + "="):
            return argument[len(OPTION) + 1:]
    return None


def configured_backend():
    """The backend `keras.json` names, unless it is Keras' own default; else `None`."""
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    try:
        with open(os.path.join(home, "keras.json")) as file:
            backend = json.load(file).get("backend")
    except (OSError, ValueError, AttributeError):
        return None
    return backend if backend and backend != KERAS_DEFAULT_BACKEND else None


def chosen_backend(argv, environ):
    """The backend a kit program runs on, given its command line and environment.

    Args:
        argv: list of str, the command-line arguments.
        environ: mapping, the environment variables.

    Returns:
        str: `--backend` when it names one of `BACKENDS`, else
        `KERAS_BACKEND`, else a backend keras.json chooses, else
        `DEFAULT_BACKEND`.

    Example:

    >>> chosen_backend(["--backend", "tensorflow"], {"KERAS_BACKEND": "jax"})
    'tensorflow'
    >>> chosen_backend([], {"KERAS_BACKEND": "jax"})
    'jax'
    """
    requested = requested_backend(argv)
    if requested in BACKENDS:
        return requested
    return environ.get("KERAS_BACKEND") or configured_backend() or DEFAULT_BACKEND


def choose_backend(argv=None):
    """Sets `KERAS_BACKEND` for this process and its children, before Keras is imported.

    Args:
        argv: list of str, the command line (default: `sys.argv[1:]`).

    Returns:
        str, the backend chosen (`chosen_backend`), or Keras' own once Keras
        is imported.
    """
    if "keras" in sys.modules:
        return current_backend()
    os.environ["KERAS_BACKEND"] = chosen_backend(sys.argv[1:] if argv is None else argv,
                                                 os.environ)
    return os.environ["KERAS_BACKEND"]


def current_backend():
    """The backend Keras runs on (imports Keras)."""
    import keras

    return keras.backend.backend()


def check_backend(requested=None):
    """Raises `TemplateError` unless Keras runs on a backend of the kit (and on `requested`).

    Args:
        requested: optional str, the `--backend` a command line gave.
    """
    from templates.errors import TemplateError

    backend = current_backend()
    if requested is not None and requested != backend:
        raise TemplateError(
            f"Received --backend {requested}, but Keras was already imported with the "
            f"'{backend}' backend; pass --backend before anything imports Keras."
        )
    if backend not in BACKENDS:
        raise TemplateError(
            f"Keras runs on the '{backend}' backend; expected one of {', '.join(BACKENDS)} "
            "(set KERAS_BACKEND or pass --backend)."
        )


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
SMALLEST_BUCKET = 1024


def bucketed_sampler(sample):
    """Wraps a Keras JAX random function so eager calls compile once per power of two.

    JAX compiles a random function for every output shape: a network of a
    new width compiles its initialisers afresh, about 0.3 s of CPU per
    weight shape, which in a search of small networks was a third of a
    trial. The wrapper draws the next power of two of values (at least
    `SMALLEST_BUCKET`) with the same seed and keeps the first ones, in the
    requested shape: the same distribution and the same seeding, from a
    program compiled once per size class (and kept by the compilation
    cache). Calls inside a compiled step (dropout), or with array
    arguments, go to `sample` unchanged.

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
        flat = np.asarray(sample((bucket,), *args, seed=seed, **kwargs))
        return jax.numpy.asarray(flat[:size].reshape(shape))

    bucketed.wrapped_sample = sample
    return bucketed


def _draw_initial_weights_in_buckets():
    try:
        from keras.src.backend.jax import random
    except ImportError:
        return
    for name in SAMPLERS:
        sample = getattr(random, name, None)
        if sample is not None and not hasattr(sample, "wrapped_sample"):
            setattr(random, name, bucketed_sampler(sample))
