"""Copy-me Keras training templates for tabular data.

`templates.regression`, `templates.binary` and `templates.multiclass` train
a model end to end; `templates.predict` applies a saved one to new rows.

Importing the package first chooses the Keras backend (`templates.backend`:
`--backend`, `KERAS_BACKEND`, keras.json or the kit's default), before
anything imports Keras. On TensorFlow it then imports TensorFlow and readies
the start of its runtime so that neither prints TensorFlow's C++ start-up
lines (`templates.tensorflow_logs`): they would bury the one-line
`error: ...` of the command-line tools and precede every trial of a search.
On JAX, TensorFlow is not imported at all.
"""

from templates import backend

if backend.choose_backend() == "tensorflow":
    from templates import tensorflow_logs

    tensorflow_logs.import_quietly()
    tensorflow_logs.start_runtime_quietly()
elif backend.current_backend() == "jax":
    from templates import jax_runtime

    jax_runtime.configure_jax()
