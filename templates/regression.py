"""Regression template: a Keras MLP for tabular data, end to end.

The model ends in `Dense(1)` with a linear output and mean squared error, as the task table
(`templates.tasks.TASKS["regression"]`) says; test metrics: MSE, MAE and R^2.
It follows the steps of `templates.recipe`, which every template shares.

Run it (without --csv it trains on scikit-learn's bundled 'diabetes' data):

    python -m templates.regression --csv data.csv --target label --hidden 64,64 \
        --activation relu --optimizer adam --learning-rate 1e-3 --gd minibatch

Use it from Python:

>>> from templates.data import load_bundled
>>> from templates.training import TrainingConfig
>>> features, target = load_bundled("diabetes")
>>> run = train(features, target, config=TrainingConfig(epochs=2), verbose=0)
>>> sorted(run.metrics["test"])
['mae', 'mse', 'r2']
"""

import functools
import sys

from templates import cli, model, recipe

TASK = "regression"

build_model = functools.partial(model.build_model, TASK)
train = functools.partial(recipe.train, TASK)
main = functools.partial(cli.run_template, TASK)

if __name__ == "__main__":
    sys.exit(main())
