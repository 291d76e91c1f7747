"""Studies that measure each claim of the kit's founding explainer.

One module per claim. `python -m studies.<name> [--seeds 0,1,2] [--quick]
[--output DIR]` trains small models with every setting that could hide the
effect named, and writes four files into `DIR` (default
`runs/studies/<name>`): `results.csv` (the measurements), `figure.png`,
`results.json` (settings, seeds, library versions, duration) and
`summary.md` (the claim, the protocol, the table, the figure and a verdict:
SUPPORTED, CONTRADICTED or INCONCLUSIVE, with the numbers it rests on and the
literature it compares with). `python -m studies` runs all of them, each in
its own process, and writes `report.md` with the verdicts on top.

`--quick` runs a tiny version in a few seconds, for the tests: its verdicts
rest on too little to be read.

Example:

>>> STUDIES[0], len(STUDIES)
('vanishing_gradients', 9)
"""

import os

# The studies measure with TensorFlow (tf.GradientTape, TensorFlow's allocator
# statistics, tf.data) and their committed results ran on it: they run on
# TensorFlow unless KERAS_BACKEND names another backend (set before the
# templates choose the kit's backend, and inherited by `python -m studies`'
# study processes).
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

# Before any study imports Keras: importing the templates imports TensorFlow
# without its C++ start-up lines (templates.tensorflow_logs). The studies use
# TensorFlow on any backend (tf.data), so it is imported quietly on JAX too.
import templates  # noqa: F401
from templates import tensorflow_logs

tensorflow_logs.import_quietly()
tensorflow_logs.start_runtime_quietly()

# The explainer's order: the report lists the studies in this order.
STUDIES = (
    "vanishing_gradients",
    "learning_rate",
    "gradient_descent_modes",
    "batch_size",
    "epochs",
    "optimizers",
    "output_and_loss",
    "loss_landscape",
    "sensitivity",
)
