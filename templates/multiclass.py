"""Multi-class classification template: a Keras MLP for tabular data, end to end.

The model ends in `Dense(K, activation="softmax")` and sparse categorical cross-entropy (categorical cross-entropy for one-hot labels), as the task table
(`templates.tasks.TASKS["multiclass"]`) says; test metrics: accuracy.
It follows the steps of `templates.recipe`, which every template shares.

Run it (without --csv it trains on scikit-learn's bundled 'wine' data):

    python -m templates.multiclass --csv data.csv --target label --hidden 64,64 \
        --activation relu --optimizer adam --learning-rate 1e-3 --gd minibatch

Use it from Python:

>>> from templates.data import load_bundled
>>> from templates.training import TrainingConfig
>>> features, target = load_bundled("wine")
>>> run = train(features, target, config=TrainingConfig(epochs=2), verbose=0)
>>> sorted(run.metrics["test"])
['accuracy']
"""

import functools
import sys

from templates import cli, model, recipe

TASK = "multiclass"

build_model = functools.partial(model.build_model, TASK)
train = functools.partial(recipe.train, TASK)
main = functools.partial(cli.run_template, TASK)

if __name__ == "__main__":
    sys.exit(main())
