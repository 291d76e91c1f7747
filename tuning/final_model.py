"""The final model: the best configurations retrained on train+validation, one test evaluation.

Example:

>>> from templates.data import load_bundled
>>> from templates.recipe import prepare
>>> frame, labels, split, _ = prepare("multiclass", *load_bundled("wine"))
>>> values = {"learning_rate": 0.01, "optimizer": "adam", "activation": "relu", "depth": 1,
...           "width": 16, "dropout": 0.0, "l2": 1e-4, "batch_size": 32}
>>> final = retrain_ensemble("multiclass", frame, labels, split, [(values, 2), (values, 3)])
>>> final.members, sorted(final.test)
([0, 1], ['accuracy'])
"""

import dataclasses
import os
import tempfile

import keras
import numpy as np
from keras_tuner.errors import FailedTrialError

from templates.ensemble import average_models
from templates.errors import TemplateError
from templates.model import template_module
from templates.predict import load_model
from templates.recipe import (
    FixedHyperParameters,
    TemplateData,
    evaluate,
    from_logits,
    model_info,
)
from templates.tasks import get_task
from templates.training import seed_everything
from tuning.fail_on_nan import FailOnNaN
from tuning.fold_models import same_program
from tuning.fused_fit import fused
from tuning.hypermodel import trained_in_this_process
from tuning.trial_process import IsolatedCall, TrialProcessError

# The batch size of a template that declares none.
DEFAULT_BATCH_SIZE = 32


@dataclasses.dataclass
class FinalModel:
    """What `retrain_ensemble` returns.

    Attributes:
        model: the `keras.Model`: a template model, or the average of several
            (`templates.ensemble.average_models`).
        test: dict of its test metrics.
        members: list of int, the positions (in the configurations given) of
            the configurations it averages.
        failures: dict `{position: reason}` of configurations left out
            because retraining diverged (or its process died).
    """

    model: keras.Model
    test: dict
    members: list
    failures: dict


def retrain_ensemble(task, frame, labels, split, configurations, *, seed=42, template=None,
                     trial_row_counts=(), max_epochs=None):
    """Retrains each configuration on train+validation and averages them.

    Without a validation split there is nothing to stop early on, so each
    model trains for exactly its trial's best epoch count. The models train
    side by side, each in a process of its own where the platform allows it
    (`tuning.trial_process.IsolatedCall`), else one after the other. A
    configuration whose loss turns NaN or infinite while retraining, or
    whose process dies, is left out (see `FinalModel.failures`); the others
    still make the final model.

    Averaging a few of the best configurations, instead of keeping only the
    best one, makes the final model less dependent on the luck of one
    ranking and of one retraining run: trials whose cross-validated scores
    differ by less than their noise can differ by several test rows when
    retrained alone (see the README's tuning benchmark).

    Args:
        task: str, the task's name.
        frame: DataFrame of all rows' raw columns.
        labels: `templates.labels.Labels` of all rows.
        split: `templates.data.Split`.
        configurations: sequence of `(values, epochs)`: a dict of
            hyperparameter values (the names the template declares) and
            the int epochs to train it, best first.
        seed: int. Defaults to `42`.
        template: the template module whose `build_model` builds each
            configuration. Defaults to the task's bundled template.
        trial_row_counts: optional `(training rows, validation rows)` of the
            fits a trial's compiled program serves, this retraining's
            included (`TemplateHyperModel.program_row_counts`). With
            `max_epochs`, on JAX, each configuration trains with the program
            its trial compiled (read back from the persistent compilation
            cache) rather than compiling its own.
        max_epochs: optional int, the search's epoch limit (`--max-epochs`).

    Returns:
        `FinalModel`.

    Raises:
        TemplateError: if retraining fails for every configuration.
    """
    return Retraining(task, frame, labels, split, configurations, seed=seed, template=template,
                      trial_row_counts=trial_row_counts, max_epochs=max_epochs).result()


class Retraining:
    """`retrain_ensemble` started: the models train while this process does something else.

    Created, it starts the retraining processes (where the platform allows
    it; otherwise it retrains them there and then); `result()` waits for
    them and returns the `FinalModel`. A search draws its report's plot and
    fits the baselines in between. Takes `retrain_ensemble`'s arguments, and
    `held`: for each configuration, the held `IsolatedCall` of the trial
    that trained it (`tuning.tuners.TemplateTuner.keep_best`), or `None`.
    A configuration retrains in its trial's process where it has one: with
    the program that trial compiled, neither traced nor read back from the
    cache (on JAX, about 0.4 s of CPU less each).
    """

    def __init__(self, task, frame, labels, split, configurations, *, seed=42, template=None,
                 trial_row_counts=(), max_epochs=None, held=()):
        self.task, self.split = task, split
        rows = np.concatenate([split.train, split.validation])
        self.fit_data = TemplateData(get_task(task).name, frame, labels, split).with_rows(rows)
        template = template or template_module(task)
        self._folder = tempfile.TemporaryDirectory(prefix="final-model-")
        self._paths = [os.path.join(self._folder.name, f"member_{position}.keras")
                       for position in range(len(configurations))]
        try:
            program = {"row_counts": list(trial_row_counts), "max_epochs": max_epochs}
            held = [*held, *[None] * (len(configurations) - len(held))]
            self._calls = [
                _sent_to(call, values, epochs, seed, path, program)
                or IsolatedCall(_retrain, template, self.fit_data, values, epochs, seed, path,
                                program)
                for (values, epochs), path, call in zip(configurations, self._paths, held)]
        except BaseException:
            self._folder.cleanup()
            raise

    def result(self):
        """Waits for the retrained models; returns the `FinalModel` that averages them."""
        models, members, failures = [], [], {}
        with self._folder:
            for position, (call, path) in enumerate(zip(self._calls, self._paths)):
                try:
                    failure = call.result()
                except TrialProcessError as error:
                    failure = str(error)
                if failure:
                    failures[position] = failure
                    continue
                models.append(load_model(path))
                members.append(position)
        if not models:
            reasons = "; ".join(failures.values())
            raise TemplateError(f"Retraining the best configurations diverged: {reasons}")
        model = average_models(models, name=f"{self.task}_ensemble")
        test = evaluate(model, get_task(self.task), *self.fit_data.inputs(self.split.test))
        return FinalModel(model, test, members, failures)


def _retrain(template, data, values, epochs, seed, path, program, program_of=None):
    """Trains one configuration and saves it to `path`; returns why it failed, or `None`.

    `program` holds the `row_counts` and `max_epochs` of `tuning.fused_fit.fused`;
    `program_of`, optionally, a model whose compiled program to run where
    it fits this one (`tuning.fold_models.same_program`).
    """
    seed_everything(seed)
    model = template.build_model(FixedHyperParameters(values), data)
    model_info(model).from_logits = from_logits(model)
    if program_of is not None and not same_program(program_of, model):
        program_of = None
    batches = data.training_batches(values.get("batch_size", DEFAULT_BATCH_SIZE), seed=seed)
    try:
        # On JAX, one compiled program (`tuning.fused_fit`).
        with fused(model, **program, program_of=program_of):
            model.fit(batches, epochs=epochs, callbacks=[FailOnNaN()], verbose=0, shuffle=False)
    except FailedTrialError as error:
        return str(error)
    model.save(path)
    return None


def _sent_to(call, *arguments):
    """`call` retraining there (`_retrain_in_trial_process(*arguments)`), or `None`.

    `None` without a held call, or where its process has ended: a new
    process then retrains the configuration.
    """
    if call is None:
        return None
    try:
        return call.send(_retrain_in_trial_process, *arguments)
    except TrialProcessError:
        return None


def _retrain_in_trial_process(values, epochs, seed, path, program):
    """`_retrain` in the held process of the trial that trained `values`, with its program.

    The rows are the search's own (its train+validation rows), as
    `Retraining` passes them to a new process.
    """
    hypermodel, trained = trained_in_this_process()
    data = hypermodel.data
    rows = np.concatenate([data.split.train, data.split.validation])
    return _retrain(hypermodel.template, data.with_rows(rows), values, epochs, seed, path, program,
                    program_of=trained)
