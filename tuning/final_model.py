"""Retraining the best configuration on train+validation, then one test evaluation.

Example:

>>> from templates.data import load_bundled
>>> from templates.recipe import prepare
>>> frame, labels, split, _ = prepare("multiclass", *load_bundled("wine"))
>>> values = {"learning_rate": 0.01, "optimizer": "adam", "activation": "relu", "depth": 1,
...           "width": 16, "dropout": 0.0, "l2": 1e-4, "batch_size": 32}
>>> model, metrics = retrain_best("multiclass", frame, labels, split, values, epochs=2)
>>> sorted(metrics)
['accuracy']
"""

import dataclasses

import keras
import numpy as np
from keras_tuner.errors import FailedTrialError

from templates.errors import TemplateError
from templates.model import build_model
from templates.preprocessing import column_kinds, frame_to_inputs, make_dataset
from templates.recipe import evaluate
from templates.tasks import get_task
from tuning.fail_on_nan import FailOnNaN


def retrain_best(task, frame, labels, split, values, *, epochs, seed=42):
    """Trains `values`' model on train+validation for `epochs`, scores it on test.

    Without a validation split there is nothing to stop early on, so the
    model trains for exactly the best trial's epoch count.

    Args:
        task: str, the task's name.
        frame: DataFrame of all rows' raw columns.
        labels: `templates.labels.Labels` of all rows.
        split: `templates.data.Split`.
        values: dict of hyperparameter values (`tuning.space.SEARCH_SPACE` names).
        epochs: int, epochs to train.
        seed: int. Defaults to `42`.

    Returns:
        `(model, test_metrics)`.

    Raises:
        TemplateError: if the loss turns NaN or infinite while retraining.
    """
    rows = np.concatenate([split.train, split.validation])
    fit_frame = frame.iloc[rows]
    kinds = column_kinds(fit_frame)
    keras.utils.set_random_seed(seed)
    model = build_model(
        task, fit_frame, dataclasses.replace(labels, values=labels.values[rows]),
        hidden=(values["width"],) * values["depth"], activation=values["activation"],
        dropout=values["dropout"], l2=values["l2"], optimizer=values["optimizer"],
        learning_rate=values["learning_rate"],
    )
    data = make_dataset(frame_to_inputs(fit_frame, kinds), labels.values[rows],
                        batch_size=values["batch_size"], shuffle=True, seed=seed)
    try:
        model.fit(data, epochs=epochs, callbacks=[FailOnNaN()], verbose=0, shuffle=False)
    except FailedTrialError as error:
        raise TemplateError(f"Retraining the best configuration diverged: {error}") from None
    test = frame_to_inputs(frame.iloc[split.test], kinds)
    return model, evaluate(model, get_task(task), test, labels.values[split.test])
