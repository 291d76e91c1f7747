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

On JAX, `templates.jax_runtime.configure_jax` then readies JAX for many
small networks.

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
# benchmarks/README.md ("Templates speed", "Tuning"): on the bundled tables a
# template run and a tuning search take less time on JAX than on TensorFlow.
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
