"""The training recipe every template follows, top to bottom.

1. Data: raw feature columns and a target; a seeded split into train,
   validation and test (stratified for classification), or a separate test set.
2. Labels: checked and encoded as the task table says.
3. Model: preprocessing adapted on the training split, hidden layers, the
   task's output head, compiled with fast defaults.
4. Training: the chosen gradient-descent mode, early stopping on validation
   loss with the best weights restored.
5. Evaluation: the task's test metrics on the held-out split.

Example:

>>> from templates.data import load_bundled
>>> from templates.training import TrainingConfig
>>> features, target = load_bundled("wine")
>>> run = train("multiclass", features, target, config=TrainingConfig(epochs=2), verbose=0)
>>> sorted(run.metrics["test"])
['accuracy']
"""

import dataclasses

import keras
import numpy as np
import pandas as pd

from templates import data, preprocessing, training
from templates.errors import TemplateError
from templates.model import build_model, check_hyperparameters, check_optimizer
from templates.tasks import get_task
from templates.training import TrainingConfig

EVALUATION_BATCH_SIZE = 1024


@dataclasses.dataclass
class TrainingRun:
    """What `train` returns.

    Attributes:
        model: the trained `keras.Model` (takes a dict of raw columns).
        history: dict of per-epoch losses and metrics (`History.history`).
        metrics: dict ready for `metrics.json`: task, class names, best
            epoch, settings, row counts, and test metrics under `"test"`.
    """

    model: keras.Model
    history: dict
    metrics: dict


def _encode_together(spec, target, test_target, positive_class):
    """Encodes train and test labels in one pass so class indices agree."""
    if test_target is not None:
        combined = np.concatenate([np.asarray(target), np.asarray(test_target)])
        target = combined if combined.ndim == 2 else pd.Series(
            combined, name=getattr(target, "name", None))
    return spec.encode_labels(target, positive_class=positive_class)


def prepare(task, features, target, *, test_features=None, test_target=None,
            config=TrainingConfig()):
    """Checks the data and settings and splits the rows; no training yet.

    Every error a user can make with data or settings is raised here, before
    anything is trained or written.

    Returns:
        `(frame, labels, split, batch_size)`, where `frame` holds all rows
        (training rows first, then any separate test rows) and `split` indexes
        into it.
    """
    spec = get_task(task)
    config.check()
    check_hyperparameters(config.hidden, config.activation, config.dropout, config.l2)
    check_optimizer(config.optimizer, config.learning_rate)
    frame = data.as_frame(features)
    if len(frame) != len(target):
        raise TemplateError(
            f"Received {len(frame)} feature rows but {len(target)} labels; expected one label per row."
        )
    data.check_features(frame, "the training data")
    if (test_features is None) != (test_target is None):
        raise TemplateError("Expected both test_features and test_target, or neither.")
    labels = _encode_together(spec, target, test_target, config.positive_class)
    if test_features is None:
        split = data.split_rows(
            len(frame), labels.values if spec.stratify else None,
            test_fraction=config.test_fraction,
            validation_fraction=config.validation_fraction, seed=config.seed,
        )
    else:
        test_frame = data.as_frame(test_features)
        data.check_same_columns(list(frame.columns), list(test_frame.columns), "the test data")
        fit_split = data.split_rows(
            len(frame), labels.values[: len(frame)] if spec.stratify else None,
            test_fraction=0, validation_fraction=config.validation_fraction, seed=config.seed,
        )
        split = data.Split(
            train=fit_split.train, validation=fit_split.validation,
            test=np.arange(len(frame), len(frame) + len(test_frame)),
        )
        frame = pd.concat([frame, test_frame[frame.columns]], ignore_index=True)
    data.check_features(frame.iloc[split.train], "the training split")
    batch_size = training.batch_size_for(config.gd, config.batch_size, len(split.train))
    return frame, labels, split, batch_size


def train(task, features, target, *, test_features=None, test_target=None,
          config=TrainingConfig(), callbacks=(), verbose=2):
    """Trains a template model on raw tabular data and evaluates it.

    Args:
        task: str, `regression`, `binary` or `multiclass`.
        features: DataFrame or 2-D array of raw feature columns (numbers,
            strings, missing values).
        target: labels, one per row (see `templates.labels`).
        test_features: optional DataFrame of a separate test set with the
            same columns; otherwise a seeded share of the rows is held out.
        test_target: labels of the separate test set.
        config: `TrainingConfig`.
        callbacks: extra Keras callbacks passed to `fit`.
        verbose: int, Keras' verbosity (0 silent, 2 one line per epoch).

    Returns:
        A `TrainingRun`.
    """
    spec = get_task(task)
    frame, labels, split, batch_size = prepare(
        task, features, target, test_features=test_features,
        test_target=test_target, config=config,
    )
    training.seed_everything(config.seed)
    kinds = preprocessing.column_kinds(frame.iloc[split.train])

    def part(rows):
        return preprocessing.frame_to_inputs(frame.iloc[rows], kinds), labels.values[rows]

    train_labels = dataclasses.replace(labels, values=labels.values[split.train])
    model = build_model(
        task, frame.iloc[split.train], train_labels, hidden=config.hidden,
        activation=config.activation, dropout=config.dropout, l2=config.l2,
        optimizer=config.optimizer, learning_rate=config.learning_rate,
    )
    train_data = preprocessing.make_dataset(
        *part(split.train), batch_size=batch_size, shuffle=True, seed=config.seed
    )
    validation_data = preprocessing.make_dataset(
        *part(split.validation), batch_size=EVALUATION_BATCH_SIZE
    )
    history, best_epoch = training.fit(
        model, train_data, validation_data, epochs=config.epochs,
        patience=config.patience, callbacks=callbacks, verbose=verbose,
    )
    metrics = {
        "task": spec.name,
        "class_names": labels.class_names,
        "positive_class": labels.positive_class,
        "best_epoch": best_epoch,
        "epochs_run": len(history["loss"]),
        "batch_size": batch_size,
        "rows": {name: len(getattr(split, name)) for name in ("train", "validation", "test")},
        "config": {**dataclasses.asdict(config), "hidden": list(config.hidden)},
        "validation": evaluate(model, spec, *part(split.validation)),
        "test": evaluate(model, spec, *part(split.test)),
    }
    return TrainingRun(model=model, history=history, metrics=metrics)


def predict(model, inputs):
    """Returns the model's raw outputs for a dict of column arrays."""
    dataset = preprocessing.make_dataset(inputs, batch_size=EVALUATION_BATCH_SIZE)
    return model.predict(dataset, verbose=0)


def evaluate(model, spec, inputs, targets):
    """Computes the task's test metrics, as plain floats."""
    prediction = predict(model, inputs)
    return {name: float(metric(targets, prediction)) for name, metric in spec.test_metrics.items()}
