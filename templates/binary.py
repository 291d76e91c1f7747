"""Binary classification template: a Keras MLP for tabular data, end to end.

The model ends in `Dense(1, activation="sigmoid")` and binary cross-entropy, as the task table
(`templates.tasks.TASKS["binary"]`) says; test metrics: accuracy, AUC, precision and recall.
It follows the steps of `templates.recipe`, which every template shares.

Run it (without --csv it trains on scikit-learn's bundled 'breast_cancer' data):

    python -m templates.binary --csv data.csv --target label --hidden 64,64 \
        --activation relu --optimizer adam --learning-rate 1e-3 --gd minibatch

Use it from Python:

>>> from templates.data import load_bundled
>>> from templates.training import TrainingConfig
>>> features, target = load_bundled("breast_cancer")
>>> run = train(features, target, config=TrainingConfig(epochs=2), verbose=0)
>>> sorted(run.metrics["test"])
['accuracy', 'auc', 'precision', 'recall']
"""

import functools
import sys

from templates import cli, model, recipe

TASK = "binary"

build_model = functools.partial(model.build_model, TASK)
train = functools.partial(recipe.train, TASK)
main = functools.partial(cli.run_template, TASK)

if __name__ == "__main__":
    sys.exit(main())
