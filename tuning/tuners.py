"""The tuners `--tuner` names: random search, Bayesian optimization, Hyperband.

Example:

>>> sorted(TUNERS)
['bayesian', 'hyperband', 'random']
"""

import keras
import keras_tuner
from keras_tuner.engine.trial import TrialStatus

from templates.errors import TemplateError
from tuning.atomic_state import AtomicOracleState, save_state
from tuning.hypermodel import OBJECTIVE as OBJECTIVE_NAME
from tuning.keras_tuner_internals import (
    HyperbandTunerWithOracle,
    PopulateSpaceHook,
    build_and_fit,
    checkpoint_path,
    is_worker,
    trial_callbacks,
    tuner_state_path,
)
from tuning.progress_oracle import ProgressOracle
from tuning.trial_ahead import TrialAhead
from tuning.trial_process import IsolatedCall, TrialProcessError, can_fork

OBJECTIVE = keras_tuner.Objective(OBJECTIVE_NAME, direction="min")
# On JAX, the random search's next trials that get ready while one trains
# (`tuning.trial_ahead`; measured with 0 to 3 in docs/tuning.md).
DEFAULT_TRIALS_AHEAD = 2
# Metrics (of `templates.tasks.TASKS`) for which higher is better.
HIGHER_IS_BETTER = ("accuracy", "auc", "precision", "recall")


class StartsFromDefaults:
    """Oracle mixin: the first trial uses every hyperparameter's default.

    The defaults of the space are those the template declares, so a
    search never ends worse (on validation) than the untuned template. Random
    and Bayesian search would otherwise sample their first trials at random.
    """

    def populate_space(self, trial_id):
        if not self.trials:
            return {"status": TrialStatus.RUNNING, "values": self.hyperparameters.values}
        return super().populate_space(trial_id)


class KnownMetricDirections:
    """Oracle mixin: registers a trial's other metrics without asking Keras.

    Trials report their validation metrics (`val_accuracy`, `val_auc`, ...)
    beside the objective. For a metric it has not seen, KerasTuner infers
    whether higher is better by building the Keras metric of that name,
    which creates variables and so starts TensorFlow's runtime in the
    search's process: from then on, that process could no longer fork its
    trials (`tuning.trial_process.can_fork`), and memory would grow again.
    The direction is only used to rank by that metric, which nothing here
    does; it is set from the name.
    """

    def update_trial(self, trial_id, metrics, step=0):
        trial = self.trials.get(trial_id)
        if trial is not None:
            for name in metrics:
                if name != self.objective.name and not trial.metrics.exists(name):
                    trial.metrics.register(name, direction=metric_direction(name))
        return super().update_trial(trial_id, metrics, step)


def metric_direction(name):
    """`"max"` for accuracy, AUC, precision and recall, else `"min"`.

    Example:

    >>> metric_direction("val_accuracy"), metric_direction("val_loss")
    ('max', 'min')
    """
    return "max" if any(word in name for word in HIGHER_IS_BETTER) else "min"


class RandomSearchOracle(AtomicOracleState, ProgressOracle, KnownMetricDirections,
                         StartsFromDefaults, keras_tuner.oracles.RandomSearchOracle):
    """KerasTuner's random search with progress lines and a failure limit."""


class BayesianOptimizationOracle(AtomicOracleState, ProgressOracle, KnownMetricDirections,
                                 StartsFromDefaults, keras_tuner.oracles.BayesianOptimizationOracle):
    """KerasTuner's Gaussian-process search with progress lines and a failure limit."""


class HyperbandOracle(AtomicOracleState, ProgressOracle, KnownMetricDirections,
                      keras_tuner.oracles.HyperbandOracle):
    """KerasTuner's Hyperband with progress lines and a failure limit."""


class TrialCheckpoint(keras.callbacks.Callback):
    """Saves to `filepath`, once asked (`save()`), the weights of the model whose fit ended last.

    A cross-validated trial fits once per fold and passes this callback to
    every fit, so that its checkpoint holds the last fold's model; saving at
    the end of each fit (about 20 ms) only to overwrite the file four times
    cost a tenth of a second a trial.
    """

    def __init__(self, filepath):
        super().__init__()
        self.filepath = filepath
        self._trained = None

    def on_train_end(self, logs=None):
        self._trained = self.model

    def save(self):
        """Saves the weights of the model whose fit ended last (none: nothing is saved)."""
        if self._trained is not None:
            self._trained.save_weights(self.filepath)
            self._trained = None


def fit_then_save(fit, saver, *args, **kwargs):
    """`fit(*args, **kwargs)`, then `saver.save()`: the trial's checkpoint, once."""
    results = fit(*args, **kwargs)
    saver.save()
    return results


class TemplateTuner(PopulateSpaceHook, keras_tuner.Tuner):
    """`keras_tuner.Tuner` that trains each trial in its own process and saves it once.

    Each trial's models are built and trained in a child process
    (`tuning.trial_process.IsolatedCall`) where the platform allows it, so
    that what TensorFlow keeps of every trained model does not pile up in
    the search's process; a child that dies fails its trial. On JAX, a
    random search starts the next trial's process meanwhile, which gets
    ready to train (`tuning.trial_ahead`), and the processes of the best
    `keep_best` finished trials wait, so that the search retrains those
    trials there with the programs they compiled (`tuning.final_model`).

    KerasTuner's own `run_trial` saves the weights after every epoch that
    improves the objective, and adds a callback with per-batch hooks. With
    small tabular models, those saves took about a fifth of every trial
    (29 ms an epoch, measured with cProfile on breast_cancer). The
    hypermodel's early stopping restores the best epoch's weights when
    training ends, so one save then leaves the same checkpoint: the one
    Hyperband starts promoted trials from and `get_best_models` loads.
    Each trial runs once (`executions_per_trial` is not used).
    """

    # On JAX, a random search's next trials get ready while this one trains
    # (`tuning.trial_ahead`), this many at most; `0` starts each trial when it comes.
    trials_ahead = DEFAULT_TRIALS_AHEAD
    _ahead = ()  # the `TrialAhead` of the next trials, next first
    # On JAX, the processes of this many of the best finished trials wait,
    # their programs compiled, for the search to retrain those trials there
    # (`finished_trial_processes`, `tuning.final_model`); `0` keeps none.
    keep_best = 0
    _finished = None  # {trial ID: its held `IsolatedCall`}, the best trials'

    def save(self):
        # As KerasTuner's, with each file replaced atomically (see `tuning.atomic_state`).
        if not is_worker(self):
            self.oracle.save()
        save_state(tuner_state_path(self), self)

    def populate_initial_space(self):
        # KerasTuner also builds a model here, to find conditional
        # hyperparameters. `TemplateHyperModel.declare_hyperparameters`
        # declares the whole space, which has no conditions, and that build
        # would start TensorFlow in this process, which could then no longer
        # fork its trials.
        hp = self.oracle.get_space()
        self.hypermodel.declare_hyperparameters(hp)
        self.oracle.update_space(hp)

    def run_trial(self, trial, *args, **kwargs):
        ahead, holds = list(self._ahead), self.holds_finished_trials()
        if ahead and ahead[0].runs(trial):
            call = ahead.pop(0).go()
        else:
            function, call_args, call_kwargs = self.trial_call(trial, args, kwargs)
            call = (IsolatedCall.held if holds else IsolatedCall)(function, *call_args,
                                                                  **call_kwargs)
        try:
            self._ahead = TrialAhead.top_up(
                self, ahead, lambda next_trial: self.trial_call(next_trial, args, kwargs))
            result = call.result()
        except TrialProcessError as error:
            raise keras_tuner.errors.FailedTrialError(str(error)) from error
        except BaseException as error:
            call.release()  # a failed or interrupted trial is not retrained
            if not isinstance(error, Exception):  # interrupted: no next trial comes
                self.stop_trials_ahead()
            raise
        if holds:
            self._finished = {**(self._finished or {}), trial.trial_id: call}
        return result

    def holds_finished_trials(self):
        """Whether trials' processes wait once finished (`keep_best`): on JAX, where trials fork."""
        return self.keep_best > 0 and keras.backend.backend() == "jax" and can_fork()

    def on_trial_end(self, trial):
        super().on_trial_end(trial)  # the oracle ends the trial: its score ranks it
        if self._finished:
            best = {kept.trial_id for kept in self.oracle.get_best_trials(self.keep_best)}
            for trial_id in [trial_id for trial_id in self._finished if trial_id not in best]:
                self._finished.pop(trial_id).release()

    def finished_trial_processes(self):
        """`{trial ID: IsolatedCall}` of the best finished trials whose processes wait (`keep_best`)."""
        return dict(self._finished or {})

    def release_finished_trials(self):
        """Ends the processes of the finished trials that wait (`keep_best`)."""
        for call in (self._finished or {}).values():
            call.release()
        self._finished = None

    def trial_call(self, trial, args, kwargs):
        """What a trial's process runs, `(function, args, kwargs)`: build, fit, save once."""
        kwargs = dict(kwargs)
        callbacks = trial_callbacks(self, trial, kwargs.pop("callbacks", []))
        saver = TrialCheckpoint(checkpoint_path(self, trial.trial_id))
        callbacks.append(saver)
        return (fit_then_save, (build_and_fit(self), saver, trial, *args),
                {**kwargs, "callbacks": callbacks})

    def stop_trials_ahead(self):
        """Stops the processes of the trials started ahead (`tuning.trial_ahead`)."""
        for ahead in self._ahead:
            ahead.cancel()
        self._ahead = ()

    def on_search_end(self):
        self.stop_trials_ahead()
        super().on_search_end()


class HyperbandTuner(HyperbandTunerWithOracle, TemplateTuner):
    """`keras_tuner.Hyperband`, driven by the given oracle, with `TemplateTuner`'s trials."""


TUNERS = {
    "random": (lambda max_epochs, **kwargs: RandomSearchOracle(**kwargs), TemplateTuner),
    "bayesian": (lambda max_epochs, **kwargs: BayesianOptimizationOracle(**kwargs), TemplateTuner),
    "hyperband": (lambda max_epochs, **kwargs: HyperbandOracle(max_epochs=max_epochs, **kwargs),
                  HyperbandTuner),
}


def check_tuner(name):
    """Raises `TemplateError` unless `name` is one of `TUNERS`."""
    if name not in TUNERS:
        raise TemplateError(f"Unknown tuner '{name}'; expected one of: {', '.join(TUNERS)}.")


def make_tuner(name, hypermodel, *, directory, max_trials, max_epochs, seed,
               max_consecutive_failures=3, project_name="trials",
               trials_ahead=DEFAULT_TRIALS_AHEAD, keep_best=0):
    """Returns a KerasTuner tuner that resumes any search saved in `directory`.

    Args:
        name: str, `random`, `bayesian` or `hyperband`.
        hypermodel: a `keras_tuner.HyperModel`, e.g. `TemplateHyperModel`.
        directory: str, the folder holding the search's state.
        max_trials: int, trials after which the search ends (Hyperband too:
            it stops there even within a bracket).
        max_epochs: int, Hyperband's largest epoch budget (the other tuners
            take the limit from the hypermodel).
        seed: int, the oracle's seed.
        max_consecutive_failures: int, failed trials in a row that stop the
            search. Defaults to `3`.
        project_name: str, the subfolder of `directory` for KerasTuner's
            files. Defaults to `"trials"`.
        trials_ahead: int, on JAX, how many of a random search's next
            trials get ready while one trains (`tuning.trial_ahead`); `0`
            starts each trial when it comes. Defaults to `DEFAULT_TRIALS_AHEAD`.
        keep_best: int, on JAX, how many of the best finished trials keep
            their processes, to be retrained there (`TemplateTuner.keep_best`).
            Defaults to `0`.
    """
    check_tuner(name)
    make_oracle, tuner_class = TUNERS[name]
    oracle = make_oracle(max_epochs, objective=OBJECTIVE, seed=seed,
                         max_consecutive_failures=max_consecutive_failures)
    oracle.max_trials = max_trials
    oracle.verbose = 0
    tuner = tuner_class(oracle, hypermodel, directory=directory, project_name=project_name)
    tuner.trials_ahead = trials_ahead
    tuner.keep_best = keep_best
    return tuner
