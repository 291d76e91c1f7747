"""A template as a KerasTuner `HyperModel`: its own `build_model` and `fit_model`.

Example:

>>> import keras_tuner
>>> from templates import multiclass
>>> from templates.data import load_bundled
>>> from templates.recipe import prepare_data
>>> data = prepare_data("multiclass", *load_bundled("wine"))
>>> hypermodel = TemplateHyperModel(multiclass, data)
>>> model = hypermodel.build(keras_tuner.HyperParameters())
>>> model.get_layer("output").activation.__name__
'softmax'
"""

import json
import os
import weakref

import keras_tuner
import numpy as np

from templates import data_loss
from templates.data import cross_validation_folds
from templates.data_loss import DataLoss
from templates.tasks import get_task
from templates.training import TrainingConfig, seed_everything
from tuning import fold_models, fused_fit
from tuning.fail_on_nan import FailOnNaN

# Trials are ranked by the validation loss without the L2 penalty: with it,
# a trial's score would mostly measure its `l2`, not its fit.
OBJECTIVE = f"val_{data_loss.NAME}"


class TemplateHyperModel(keras_tuner.HyperModel):
    """Builds and trains a template's model with a trial's hyperparameters.

    `build(hp)` is the template's `build_model(hp, data)`: the layers, the
    head, the loss and the search ranges it declares, with preprocessing
    adapted on the trial's training rows. `fit(hp, model, ...)` is the
    template's `fit_model` (which declares the batch size), run with the
    search's epoch limit (`max_epochs`, or the budget a Hyperband tuner
    passes in) and early stopping on the validation loss without the L2
    penalty (`val_data_loss`, the template's `templates.data_loss.DataLoss`
    metric; best weights restored). Epochs are not a hyperparameter: a trial
    is scored by its best epoch, which `fit` reports as `best_epoch`. The
    tuner's own callbacks (checkpoints, TensorBoard) are passed through to
    `model.fit`, beside `FailOnNaN`, which fails a diverging trial at once.

    With `folds=K > 1`, a trial is K-fold cross-validated instead: `fit`
    trains K models (each adapted on and trained with K-1 folds of the
    training rows, early-stopped on the remaining fold), and the trial's
    score and best epoch are their means. On small tables a single
    validation split is too noisy to choose among trials (71 rows for
    diabetes): the trial that wins it is often just the luckiest.

    Args:
        template: the template module (`templates.binary`, or a copy loaded
            with `templates.model.load_template`).
        data: `templates.recipe.TemplateData`: trials train on its training
            rows and, with `folds=1`, validate on its validation rows.
        space: dict of `tuning.space.Hyperparameter`, e.g. from
            `tuning.space.narrow_space`; declared before the first trial.
            Defaults to none: the template's declarations alone.
        max_epochs: int, the epoch limit without Hyperband. Defaults to `100`.
        patience: int, epochs without validation-loss improvement before a
            trial stops. Defaults to `10`.
        folds: int, cross-validation folds per trial; `1` trains once and
            validates on the validation rows. Hyperband's promoted trials
            continue from their parent's weights, which K-fold training does
            not keep: use `1` with it. Defaults to `1`.
        seed: int, seeds every trial's weights, shuffling and folds alike,
            so trials differ only in their hyperparameters. Defaults to `42`.
        parallel_folds: int, on JAX, the folds' compiled programs run this
            many at a time (`tuning.fused_fit.FoldsAhead`); `1` runs each
            in turn. Defaults to the CPU cores this process may use.
    """

    def __init__(self, template, data, *, space=None, max_epochs=100, patience=10, folds=1,
                 seed=42, parallel_folds=None, **kwargs):
        super().__init__(**kwargs)
        self.template = template
        self.data = data
        self.space = space or {}
        self.max_epochs = max_epochs
        self.patience = patience
        self.folds = folds
        self.seed = seed
        if parallel_folds is not None and (not isinstance(parallel_folds, int) or parallel_folds < 1):
            raise ValueError(f"Received parallel_folds={parallel_folds!r}; expected an integer >= 1 "
                             "(or None: every core).")
        self.parallel_folds = available_cores() if parallel_folds is None else parallel_folds
        self.fold_rows = None
        self._first_fold_models = weakref.WeakSet()  # built by `build` on the first fold
        if folds > 1:
            labels = data.labels.values[data.split.train]
            stratify_by = labels if get_task(data.task).stratify else None
            self.fold_rows = cross_validation_folds(len(labels), folds, stratify_by, seed=seed)

    def declare_hyperparameters(self, hp):
        """Declares the whole space, batch size included, in a fixed order.

        KerasTuner calls this before the first trial, so every trial (on
        workers too) draws its values from the same complete space, and a
        seed gives the same trials with and without workers.
        """
        for hyperparameter in self.space.values():
            hyperparameter.declare(hp)

    def build(self, hp):
        """The trial's model; with folds, the first fold's (adapted on its training rows).

        `fit` trains the first fold in it rather than in a second build.
        """
        if self.fold_rows is None:
            return self.build_on(hp, self.data)
        model = self.build_on(hp, self.fold_data()[0])
        self._first_fold_models.add(model)
        return model

    def build_on(self, hp, data):
        """Builds the trial's model with preprocessing adapted on `data`'s training rows."""
        seed_everything(self.seed)
        return self.template.build_model(hp, data)

    def fit(self, hp, model, *args, epochs=None, initial_epoch=0, callbacks=(), verbose=0,
            **kwargs):
        """Trains `model`, or K fold models; returns the scores at the best epoch.

        The result holds `val_data_loss` (the objective), every other
        validation metric of that epoch (`val_loss`, `val_accuracy`, ...)
        and `best_epoch`; with `folds > 1`, each is the mean over the folds
        (the best epoch rounded).

        Args:
            hp: the trial's `keras_tuner.HyperParameters`.
            model: the model `build` returned. With `folds > 1`, it is the
                first fold's; each other fold builds its own, adapted on its
                training rows, and trains it in `model` (its state copied
                there) when the two differ only in weights: one compiled
                program for every fold (`tuning.fold_models`). On JAX each
                fit runs as one compiled program, epochs and early stopping
                included, with the same history as Keras' loop
                (`tuning.fused_fit`); every fold's model is built first, so
                that the later folds' programs run beside the first's
                (`parallel_folds` at a time).
            *args: unused (the rows are the hypermodel's `data`).
            epochs: int, the last epoch to train; Hyperband sets it, otherwise
                `max_epochs`.
            initial_epoch: int, the epoch to start from (Hyperband). Defaults to `0`.
            callbacks: list of the tuner's callbacks, passed to `model.fit`
                (of every fold: a checkpoint then holds the last fold's model).
            verbose: int, unused: trials print nothing.
            **kwargs: passed to `model.fit`.
        """
        _check_reports_data_loss(model)
        config = TrainingConfig(epochs=epochs or self.max_epochs, patience=self.patience,
                                monitor=OBJECTIVE, seed=self.seed)

        def train(fold_model, data, ahead=None, program_of=None):
            # On JAX, the whole fit as one compiled program (`tuning.fused_fit`).
            with fused_fit.fused(fold_model, row_counts=self.program_row_counts(), ahead=ahead,
                                 max_epochs=self.max_epochs, program_of=program_of):
                history = self.template.fit_model(
                    hp, fold_model, data, config, callbacks=[FailOnNaN(), *callbacks],
                    progress=False, initial_epoch=initial_epoch, **kwargs,
                ).history
            return _scores(history, initial_epoch)

        # A trial's process that waits once finished retrains there with
        # `model`'s compiled program (`tuning.final_model`).
        _TRAINED.update(hypermodel=self, model=model)
        if self.fold_rows is None:
            return train(model, self.data)
        if initial_epoch:
            raise ValueError(f"Received initial_epoch={initial_epoch} with folds={self.folds}; "
                             "K-fold trials start from scratch (use folds=1 with Hyperband).")
        folds = self.fold_data()
        fold_models_built = self._fold_models(hp, model, folds)
        # Trained in `model`'s compiled steps where only weights differ; on
        # JAX, in themselves with `model`'s program where only the settings
        # computed from the rows differ too (the regression template's scaling).
        shares = [fold_model is model or fold_models.can_share(model, fold_model)
                  for fold_model in fold_models_built]
        programs = [shared or fold_models.same_program(model, fold_model)
                    for fold_model, shared in zip(fold_models_built, shares, strict=True)]
        later = [(fold_model, fold, not shared) for fold_model, fold, shared, same
                 in zip(fold_models_built[1:], folds[1:], shares[1:], programs[1:], strict=True)
                 if same and fold_model is not model]
        results = []
        # On JAX, the first fit starts the later folds' programs beside its own.
        with fused_fit.FoldsAhead(model, later, workers=self.parallel_folds) as ahead:
            for fold_model, fold, shared, same in zip(fold_models_built, folds, shares, programs,
                                                      strict=True):
                if shared and fold_model is not model:
                    fold_models.copy_state(fold_model, model)
                    fold_model = model
                program_of = model if same and fold_model is not model else None
                results.append(train(fold_model, fold, ahead, program_of))
        means = {name: float(np.mean([result[name] for result in results])) for name in results[0]}
        return {**means, "best_epoch": max(1, round(means["best_epoch"]))}

    def _fold_models(self, hp, model, folds):
        """Each fold's freshly built model: `model` for the first, when `build` built it for it."""
        built = []
        for index, fold in enumerate(folds):
            if index == 0 and model in self._first_fold_models:
                # `build` built it on this fold; trained now, it is no longer
                # a fresh start for another `fit`.
                self._first_fold_models.discard(model)
                built.append(model)
            else:
                built.append(self.build_on(hp, fold))
        return built

    def fold_data(self):
        """The `TemplateData` of each fold (its training and validation rows); empty without folds."""
        rows = self.data.split.train
        return [self.data.with_rows(rows[train_rows], rows[validation_rows])
                for train_rows, validation_rows in self.fold_rows or ()]

    def fold_row_counts(self):
        """`(training rows, validation rows)` of each fold; empty without folds."""
        return [(len(train), len(validation)) for train, validation in self.fold_rows or ()]

    def program_row_counts(self):
        """`(training rows, validation rows)` of every fit a trial's compiled program serves.

        Each fold's (or the trial's, without folds), and the final
        retraining's of its configuration (`tuning.final_model`): every row,
        none to validate on. On JAX that retraining then runs the program
        its trial compiled, read back from the persistent compilation cache.
        """
        split = self.data.split
        fits = self.fold_row_counts() or [(len(split.train), len(split.validation))]
        return [*fits, (len(split.train) + len(split.validation), 0)]


# The hypermodel and the model of the last trial `fit` in this process.
_TRAINED = {}


def trained_in_this_process():
    """`(hypermodel, model)` of the last trial fitted in this process, or `(None, None)`.

    `model` is the one `TemplateHyperModel.build` returned (the first
    fold's), whose compiled program (`tuning.fused_fit`) its folds ran.
    """
    return _TRAINED.get("hypermodel"), _TRAINED.get("model")


def available_cores():
    """The CPU cores this process may run on (its affinity, where the system tells it)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _check_reports_data_loss(model):
    """Fails the trial unless the template compiled `DataLoss`, which the objective needs."""
    metrics = json.dumps((model.get_compile_config() or {}).get("metrics"), default=str)
    if DataLoss.__name__ not in metrics:
        raise keras_tuner.errors.FailedTrialError(
            f"The template's model does not report '{data_loss.NAME}', the objective's metric; "
            "expected templates.data_loss.DataLoss(loss) among the metrics of its compile call."
        )


def _scores(history, initial_epoch):
    """The validation metrics at the best epoch of `history`, and that epoch."""
    best = int(np.argmin(history[OBJECTIVE]))
    validation = {name: float(values[best]) for name, values in history.items()
                  if name.startswith("val_")}
    return {**validation, "best_epoch": initial_epoch + best + 1}
