"""Regression template: a Keras MLP for tabular data, end to end.

The model ends in `Dense(1)` with a linear output and mean squared error, as the task table
(`templates.tasks.TASKS["regression"]`) says; test metrics: MSE, MAE and R^2.
The recipe (`templates.recipe`): a seeded train/validation/test split;
preprocessing inside the model (normalisation adapted on the training split,
mean imputation, one-hot categories); hidden layers with the initializer that
suits their activation; fast compile defaults; early stopping on validation
loss with the best weights restored; evaluation on the test split; and
`model.keras`, `metrics.json`, `history.csv`, `curves.png` in the output
folder.

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
