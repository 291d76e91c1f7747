"""The search space as a KerasTuner `HyperModel` that builds template models.

Example:

>>> import keras_tuner
>>> from templates.data import load_bundled
>>> from templates.tasks import get_task
>>> features, target = load_bundled("wine")
>>> hypermodel = TemplateHyperModel("multiclass", features, get_task("multiclass").encode_labels(target))
>>> model = hypermodel.build(keras_tuner.HyperParameters())
>>> model.layers[-1].activation.__name__
'softmax'
"""

import dataclasses
import functools

import keras
import keras_tuner
import numpy as np

from templates import data_loss
from templates.data import cross_validation_folds
from templates.model import build_model
from templates.preprocessing import make_dataset
from templates.recipe import EVALUATION_BATCH_SIZE
from templates.tasks import get_task
from tuning.fail_on_nan import FailOnNaN
from tuning.space import SEARCH_SPACE

ARCHITECTURE = ("learning_rate", "optimizer", "activation", "depth", "width", "dropout", "l2")
# Trials are ranked by the validation loss without the L2 penalty: with it,
# a trial's score would mostly measure its `l2`, not its fit.
OBJECTIVE = f"val_{data_loss.NAME}"


class TemplateHyperModel(keras_tuner.HyperModel):
    """Builds and trains the templates' models with tuned hyperparameters.

    `build(hp)` tunes the learning rate, optimizer, hidden activation, depth,
    width (the same for every hidden layer), dropout and L2 penalty, and
    returns a compiled template model that takes raw columns. `fit(hp, ...)`
    tunes the batch size and trains with early stopping on the validation
    loss without the L2 penalty (`val_data_loss`, see
    `templates.data_loss.DataLoss`; best weights restored) up to
    `max_epochs`, or to the epoch budget a Hyperband tuner passes in. Epochs
    are not a hyperparameter: a trial is scored by its best epoch, which
    `fit` reports as `best_epoch`. The tuner's own callbacks (checkpoints,
    TensorBoard) are passed through to `model.fit`, beside `FailOnNaN`, which
    fails a diverging trial at once.

    With `folds=K > 1`, a trial is K-fold cross-validated instead: `fit`
    trains K models (each adapted on and trained with K-1 folds of the rows
    it is given, early-stopped on the remaining fold), and the trial's score
    and best epoch are their means. On small tables a single validation
    split is too noisy to choose among trials (71 rows for diabetes): the
    trial that wins it is often just the luckiest.

    Args:
        task: str, `regression`, `binary` or `multiclass`.
        train_features: DataFrame of the raw columns of the rows `fit` gets
            (preprocessing is adapted on them, or on each fold's share).
        labels: `templates.labels.Labels` of those rows.
        space: dict of `tuning.space.Hyperparameter`, e.g. from
            `tuning.space.narrow_space`. Defaults to `SEARCH_SPACE`.
        max_epochs: int, the epoch limit without Hyperband. Defaults to `100`.
        patience: int, epochs without validation-loss improvement before a
            trial stops. Defaults to `10`.
        folds: int, cross-validation folds per trial; `1` trains once and
            validates on the `validation_data` given to `fit`. Hyperband's
            promoted trials continue from their parent's weights, which
            K-fold training does not keep: use `1` with it. Defaults to `1`.
        seed: int, seeds every trial's weights, shuffling and folds alike,
            so trials differ only in their hyperparameters. Defaults to `42`.

    Example:

    >>> hypermodel = TemplateHyperModel("regression", *load_bundled("diabetes"))  # doctest: +SKIP
    >>> tuner = keras_tuner.RandomSearch(hypermodel, OBJECTIVE, max_trials=5)  # doctest: +SKIP
    >>> tuner.search(train_inputs, train_targets, validation_data=(inputs, targets))  # doctest: +SKIP
    """

    def __init__(self, task, train_features, labels, *, space=None, max_epochs=100,
                 patience=10, folds=1, seed=42, **kwargs):
        super().__init__(**kwargs)
        self.task = task
        self.train_features = train_features
        self.labels = labels
        self.space = space or SEARCH_SPACE
        self.max_epochs = max_epochs
        self.patience = patience
        self.folds = folds
        self.seed = seed
        self.fold_rows = None
        if folds > 1:
            stratify_by = labels.values if get_task(task).stratify else None
            self.fold_rows = cross_validation_folds(len(labels.values), folds, stratify_by,
                                                    seed=seed)

    def declare_hyperparameters(self, hp):
        """Declares the whole space, batch size included, in a fixed order.

        KerasTuner calls this before the first trial, so every trial (on
        workers too) draws its values from the same complete space, and a
        seed gives the same trials with and without workers.
        """
        for hyperparameter in self.space.values():
            hyperparameter.declare(hp)

    def build(self, hp):
        return self.build_on(hp, self.train_features, self.labels)

    def build_on(self, hp, features, labels):
        """Builds the trial's model with preprocessing adapted on `features`.

        Args:
            hp: the trial's `keras_tuner.HyperParameters`.
            features: DataFrame of raw columns, e.g. one fold's training rows.
            labels: `templates.labels.Labels` of those rows.
        """
        values = {name: self.space[name].declare(hp) for name in ARCHITECTURE}
        keras.utils.set_random_seed(self.seed)
        return build_from_values(self.task, features, labels, values, data_loss=True)

    def fit(self, hp, model, inputs, targets, validation_data=None, epochs=None,
            initial_epoch=0, callbacks=(), verbose=0, **kwargs):
        """Trains `model`, or K fold models; returns the scores at the best epoch.

        The result holds `val_data_loss` (the objective), every other
        validation metric of that epoch (`val_loss`, `val_accuracy`, ...)
        and `best_epoch`; with `folds > 1`, each is the mean over the folds
        (the best epoch rounded).

        Args:
            hp: the trial's `keras_tuner.HyperParameters`.
            model: the model `build` returned (with `folds > 1`, unused: each
                fold builds its own, adapted on its training rows).
            inputs: dict of column arrays (`templates.preprocessing.frame_to_inputs`)
                of the rows of `train_features`.
            targets: array of their encoded labels.
            validation_data: tuple `(inputs, targets)` of the validation
                split; `None` with `folds > 1`.
            epochs: int, the last epoch to train; Hyperband sets it, otherwise
                `max_epochs`.
            initial_epoch: int, the epoch to start from (Hyperband). Defaults to `0`.
            callbacks: list of the tuner's callbacks, passed to `model.fit`
                (of every fold: a checkpoint then holds the last fold's model).
            verbose: int, Keras' verbosity. Defaults to `0`.
            **kwargs: passed to `model.fit`.
        """
        batch_size = self.space["batch_size"].declare(hp)
        train = functools.partial(
            self._train, batch_size=batch_size, epochs=epochs or self.max_epochs,
            initial_epoch=initial_epoch, callbacks=callbacks, verbose=verbose, **kwargs,
        )
        if self.fold_rows is None:
            return train(model, (inputs, targets), validation_data)
        if initial_epoch:
            raise ValueError(f"Received initial_epoch={initial_epoch} with folds={self.folds}; "
                             "K-fold trials start from scratch (use folds=1 with Hyperband).")
        results = []
        for train_rows, validation_rows in self.fold_rows:
            fold_labels = dataclasses.replace(self.labels, values=self.labels.values[train_rows])
            fold_model = self.build_on(hp, self.train_features.iloc[train_rows], fold_labels)
            results.append(train(fold_model, _rows((inputs, targets), train_rows),
                                 _rows((inputs, targets), validation_rows)))
        means = {name: float(np.mean([result[name] for result in results])) for name in results[0]}
        return {**means, "best_epoch": max(1, round(means["best_epoch"]))}

    def _train(self, model, train, validation, *, batch_size, epochs, initial_epoch, callbacks,
               verbose, **kwargs):
        train_data = make_dataset(*train, batch_size=batch_size, shuffle=True, seed=self.seed)
        validation_data = make_dataset(*validation, batch_size=EVALUATION_BATCH_SIZE)
        early_stopping = keras.callbacks.EarlyStopping(
            monitor=OBJECTIVE, patience=self.patience, restore_best_weights=True
        )
        history = model.fit(
            train_data, validation_data=validation_data, epochs=epochs,
            initial_epoch=initial_epoch, callbacks=[FailOnNaN(), early_stopping, *callbacks],
            verbose=verbose, **{"shuffle": False, **kwargs},  # the dataset reshuffles itself
        ).history
        best = int(np.argmin(history[OBJECTIVE]))
        validation = {name: float(values[best]) for name, values in history.items()
                      if name.startswith("val_")}
        return {**validation, "best_epoch": initial_epoch + best + 1}


def build_from_values(task, features, labels, values, *, data_loss=False):
    """Builds the template model of one configuration (`ARCHITECTURE` names in `values`).

    Args:
        task: str, the task's name.
        features: DataFrame of raw columns the preprocessing adapts on.
        labels: `templates.labels.Labels` of those rows.
        values: dict holding at least the `ARCHITECTURE` hyperparameters.
        data_loss: bool, passed to `templates.model.build_model`. Defaults to `False`.
    """
    return build_model(
        task, features, labels,
        hidden=(values["width"],) * values["depth"], activation=values["activation"],
        dropout=values["dropout"], l2=values["l2"], optimizer=values["optimizer"],
        learning_rate=values["learning_rate"], data_loss=data_loss,
    )


def _rows(data, rows):
    """`(inputs, targets)` restricted to the row positions `rows`."""
    inputs, targets = data
    return {name: values[rows] for name, values in inputs.items()}, targets[rows]
