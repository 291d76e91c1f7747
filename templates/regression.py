"""Regression on tabular rows with a Keras MLP: a CSV in, a saved model out.

This file is the whole training run, top to bottom: settings, data, model,
training, evaluation and saving. Copy it and edit it: the layers, the output
head, the loss, the optimizer and the callbacks are all below. The kit
(`templates.*`) does the plumbing nobody edits: reading and checking the
CSV, encoding the labels, the split, the preprocessing inside the model, the
files written and the command line.

    python -m templates.regression --csv houses.csv --target price
    cp templates/regression.py houses.py && python houses.py --csv houses.csv --target price
    python -m templates.predict --model runs/<run>/model.keras --csv new.csv --output p.csv
    python -m tuning.search --template houses.py --csv houses.csv --target price

Without --csv it trains on scikit-learn's bundled 'diabetes' data set.
It runs on JAX, the kit's default, or on TensorFlow: `--backend tensorflow`
or `KERAS_BACKEND` (`templates.backend`); the saved model predicts on both.

Example:

>>> from templates.data import load_bundled
>>> features, target = load_bundled("diabetes")
>>> run = train(features, target, config=SETTINGS.replace(epochs=2), verbose=0)
>>> sorted(run.metrics["test"])
['mae', 'mse', 'r2']
"""

import sys

# The kit before Keras: importing it first keeps TensorFlow's start-up lines
# (oneDNN, cpu_feature_guard) off the terminal when a copy runs as a script.
from templates import artifacts, cli, recipe  # isort: skip

import keras

from templates.data_loss import DataLoss
from templates.progress import ProgressLine
from templates.training import TrainingConfig, seed_everything

# The task's row of the task table (`templates.tasks`): label encoding, test
# metrics, decoding of predictions, baselines and the bundled data set.
TASK = "regression"

# Settings of a run; the command line overrides them (`--help`). The model's
# own settings are hyperparameters, declared with their defaults below.
SETTINGS = TrainingConfig(
    epochs=300,  # an upper bound: early stopping ends most runs far sooner
    patience=20,  # epochs without a better validation loss before stopping
    validation_fraction=0.2,
    test_fraction=0.2,
    seed=42,
)


def build_model(hp, data):
    """Builds and compiles the network.

    Each `hp.*` call declares a hyperparameter and returns its value: the
    default in a plain run, the value an option fixes (`--learning-rate`),
    or a trial's value when `tuning.search --template` tunes this file.

    Args:
        hp: `keras_tuner.HyperParameters`.
        data: `templates.recipe.TemplateData`, the prepared rows.
    """
    # Raw columns in; numbers normalised on the training rows, text one-hot.
    inputs, x = data.preprocessing()

    activation = hp.Choice("activation", ["sigmoid", "tanh", "relu", "leaky_relu"], default="relu")
    # He initialisation keeps the variance of ReLU layers steady (their negative
    # half is zero); Glorot does it for sigmoid and tanh.
    initializer = "he_normal" if activation in ("relu", "leaky_relu") else "glorot_uniform"
    # L2 0.1 on the hidden kernels keeps the network close to a linear model
    # unless the data say otherwise: on small tables it stays within 0.03 of
    # the linear baselines (tests/test_template_baselines.py).
    l2 = hp.Float("l2", 1e-6, 1e-1, sampling="log", default=0.1)
    dropout = hp.Float("dropout", 0.0, 0.5, default=0.0)
    width = hp.Int("width", 16, 256, sampling="log", default=64)
    for layer in range(1, hp.Int("depth", 1, 4, default=2) + 1):
        x = keras.layers.Dense(width, activation=activation, kernel_initializer=initializer,
                               kernel_regularizer=keras.regularizers.L2(l2),
                               name=f"hidden_{layer}")(x)
        if dropout:
            x = keras.layers.Dropout(dropout, name=f"dropout_{layer}")(x)
    # One linear unit: the network predicts the target scaled to mean 0 and
    # standard deviation 1 (on the training rows); Rescaling maps it back to
    # the target's own units, so the saved model predicts prices in prices.
    x = keras.layers.Dense(1, activation="linear", name="output")(x)
    outputs = keras.layers.Rescaling(scale=data.target_std, offset=data.target_mean,
                                     name="to_target_units")(x)
    model = keras.Model(inputs, outputs, name="regression_template")

    learning_rate = hp.Float("learning_rate", 1e-4, 1e-1, sampling="log", default=1e-3)
    optimizer = {
        "sgd": keras.optimizers.SGD(learning_rate),
        "momentum": keras.optimizers.SGD(learning_rate, momentum=0.9),
        "rmsprop": keras.optimizers.RMSprop(learning_rate),
        "adam": keras.optimizers.Adam(learning_rate),
    }[hp.Choice("optimizer", ["sgd", "momentum", "rmsprop", "adam"], default="adam")]
    # Mean squared error pairs with a linear output (the Gaussian likelihood).
    loss = keras.losses.MeanSquaredError()
    # The loss sees the target in its own units; this weight makes it the loss
    # of the unit-scale target, so step sizes do not depend on those units.
    loss_weight = 1.0 / data.target_std**2
    model.compile(
        optimizer=optimizer,
        loss=loss,
        loss_weights=loss_weight,
        metrics=[
            keras.metrics.MeanAbsoluteError(name="mae"),
            # The loss without the L2 penalty: curves and tuning compare by it.
            DataLoss(loss, weight=loss_weight),
        ],
        # 32 training steps per call instead of one: fewer trips between Python
        # and the compiled step, which on small tabular models cost more than
        # the step itself (benchmarks/templates_speed.py).
        steps_per_execution=32,
    )
    return model


def fit_model(hp, model, data, config, callbacks=(), progress=True, **kwargs):
    """Trains `model` on the training rows, early-stopped on the validation rows.

    `tuning.search` calls it for each trial with its own `config` (epochs,
    patience, monitor) and callbacks; `kwargs` go to `model.fit`.
    """
    # Rows per gradient step (--batch-size; --gd batch or stochastic fix it too).
    batch_size = hp.Choice("batch_size", [32, 64, 128, 256], default=32)
    callbacks = [
        # Stop once the validation loss has not improved for `patience` epochs,
        # and keep the best epoch's weights rather than the last epoch's.
        keras.callbacks.EarlyStopping(monitor=config.monitor, patience=config.patience,
                                      restore_best_weights=True),
        *callbacks,
    ]
    if progress:  # one line that follows the run, instead of Keras' lines per epoch
        callbacks.append(ProgressLine(monitor=config.monitor))
    return model.fit(
        # The training rows in batches, in the feed each backend runs fastest
        # (tf.data on TensorFlow, numpy on JAX: `templates.batches`).
        data.training_batches(batch_size, seed=config.seed),
        validation_data=data.validation_batches(),
        epochs=config.epochs,
        callbacks=callbacks,
        verbose=0,
        shuffle=False,  # the training batches reshuffle themselves every epoch
        **kwargs,
    )


def train(features, target, *, test_features=None, test_target=None, config=SETTINGS,
          callbacks=(), verbose=1):
    """Trains and evaluates the model on raw rows (numbers, text, missing values).

    Args:
        features: DataFrame (or 2-D array) of raw feature columns.
        target: the numbers to predict, one per row.
        test_features, test_target: an optional separate test set; otherwise
            a seeded share of the rows is held out.
        config: `TrainingConfig`. Defaults to `SETTINGS`.
        callbacks: extra Keras callbacks passed to `fit`.
        verbose: int, 0 for no progress line.

    Returns:
        `templates.recipe.TrainingRun`: the model, its history and metrics.
    """
    # Checks the rows, encodes the labels, splits train/validation/test.
    data = recipe.prepare_data(TASK, features, target, test_features=test_features,
                               test_target=test_target, config=config)
    # The hyperparameters' defaults, except the values that options fix.
    hp = recipe.hyperparameters(config, data)
    seed_everything(config.seed)  # the same seed gives the same weights and metrics
    model = build_model(hp, data)
    history = fit_model(hp, model, data, config, callbacks=callbacks, progress=verbose > 0)
    # Records the task and class names in the model; test metrics of the task.
    return recipe.finish(model, history, data, hp, config)


@cli.exits_cleanly_on_bad_input
def main(argv=None):
    """Runs the template from the command line; returns the exit status (2: bad input)."""
    args = cli.parse_arguments(TASK, argv, SETTINGS)
    features, target, test_features, test_target = cli.load_data(args, TASK)
    run = train(features, target, test_features=test_features, test_target=test_target,
                config=cli.config_from_args(args), verbose=0 if args.quiet else 1)
    # model.keras, metrics.json, history.csv and curves.png.
    artifacts.save_run(run, args.output, overwrite=args.overwrite)
    cli.print_results(run, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
