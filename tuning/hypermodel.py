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

import keras
import keras_tuner
import numpy as np

from templates.model import build_model
from templates.preprocessing import make_dataset
from templates.recipe import EVALUATION_BATCH_SIZE
from tuning.fail_on_nan import FailOnNaN
from tuning.space import SEARCH_SPACE

ARCHITECTURE = ("learning_rate", "optimizer", "activation", "depth", "width", "dropout", "l2")


class TemplateHyperModel(keras_tuner.HyperModel):
    """Builds and trains the templates' models with tuned hyperparameters.

    `build(hp)` tunes the learning rate, optimizer, hidden activation, depth,
    width (the same for every hidden layer), dropout and L2 penalty, and
    returns a compiled template model that takes raw columns. `fit(hp, ...)`
    tunes the batch size and trains with early stopping on validation loss
    (best weights restored) up to `max_epochs`, or to the epoch budget a
    Hyperband tuner passes in. Epochs are not a hyperparameter: a trial is
    scored by its best epoch, which `fit` reports as `best_epoch`. The
    tuner's own callbacks (checkpoints, TensorBoard) are passed through to
    `model.fit`, beside `FailOnNaN`, which fails a diverging trial at once.

    Args:
        task: str, `regression`, `binary` or `multiclass`.
        train_features: DataFrame of the training split's raw columns
            (preprocessing is adapted on it).
        labels: `templates.labels.Labels` of the training split.
        space: dict of `tuning.space.Hyperparameter`, e.g. from
            `tuning.space.narrow_space`. Defaults to `SEARCH_SPACE`.
        max_epochs: int, the epoch limit without Hyperband. Defaults to `100`.
        patience: int, epochs without validation-loss improvement before a
            trial stops. Defaults to `10`.
        seed: int, seeds every trial's weights and shuffling alike, so trials
            differ only in their hyperparameters. Defaults to `42`.

    Example:

    >>> hypermodel = TemplateHyperModel("regression", *load_bundled("diabetes"))  # doctest: +SKIP
    >>> tuner = keras_tuner.RandomSearch(hypermodel, "val_loss", max_trials=5)  # doctest: +SKIP
    >>> tuner.search(train_inputs, train_targets, validation_data=(inputs, targets))  # doctest: +SKIP
    """

    def __init__(self, task, train_features, labels, *, space=None, max_epochs=100,
                 patience=10, seed=42, **kwargs):
        super().__init__(**kwargs)
        self.task = task
        self.train_features = train_features
        self.labels = labels
        self.space = space or SEARCH_SPACE
        self.max_epochs = max_epochs
        self.patience = patience
        self.seed = seed

    def build(self, hp):
        values = {name: self.space[name].declare(hp) for name in ARCHITECTURE}
        keras.utils.set_random_seed(self.seed)
        return build_model(
            self.task, self.train_features, self.labels,
            hidden=(values["width"],) * values["depth"], activation=values["activation"],
            dropout=values["dropout"], l2=values["l2"], optimizer=values["optimizer"],
            learning_rate=values["learning_rate"],
        )

    def fit(self, hp, model, inputs, targets, validation_data, epochs=None,
            initial_epoch=0, callbacks=(), verbose=0, **kwargs):
        """Trains `model`; returns `{"val_loss": best, "best_epoch": epoch}`.

        Args:
            hp: the trial's `keras_tuner.HyperParameters`.
            model: the model `build` returned.
            inputs: dict of column arrays (`templates.preprocessing.frame_to_inputs`).
            targets: array of encoded training labels.
            validation_data: tuple `(inputs, targets)` of the validation split.
            epochs: int, the last epoch to train; Hyperband sets it, otherwise
                `max_epochs`.
            initial_epoch: int, the epoch to start from (Hyperband). Defaults to `0`.
            callbacks: list of the tuner's callbacks, passed to `model.fit`.
            verbose: int, Keras' verbosity. Defaults to `0`.
            **kwargs: passed to `model.fit`.
        """
        batch_size = self.space["batch_size"].declare(hp)
        train_data = make_dataset(inputs, targets, batch_size=batch_size, shuffle=True,
                                  seed=self.seed)
        validation = make_dataset(*validation_data, batch_size=EVALUATION_BATCH_SIZE)
        early_stopping = keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=self.patience, restore_best_weights=True
        )
        history = model.fit(
            train_data, validation_data=validation, epochs=epochs or self.max_epochs,
            initial_epoch=initial_epoch, callbacks=[FailOnNaN(), early_stopping, *callbacks],
            verbose=verbose, **{"shuffle": False, **kwargs},  # the dataset reshuffles itself
        ).history
        best = int(np.argmin(history["val_loss"]))
        return {"val_loss": float(history["val_loss"][best]),
                "best_epoch": initial_epoch + best + 1}
