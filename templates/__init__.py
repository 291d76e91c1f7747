"""Copy-me Keras training templates for tabular data.

`templates.regression`, `templates.binary` and `templates.multiclass` train
a model end to end; `templates.predict` applies a saved one to new rows.
"""

import os


def _import_tensorflow_quietly():
    """Imports TensorFlow with its C++ start-up log lines silenced.

    TensorFlow 2.21 prints several lines on stderr when first imported, and
    `TF_CPP_MIN_LOG_LEVEL` no longer hides them; they would bury the one-line
    `error: ...` the command-line tools print for bad input. Python errors
    raised by the import are unaffected.
    """
    saved_stderr = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        import tensorflow  # noqa: F401
    finally:
        os.dup2(saved_stderr, 2)
        os.close(saved_stderr)
        os.close(devnull)


_import_tensorflow_quietly()
