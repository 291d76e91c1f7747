"""On JAX, a random search's next trials get ready while the current one trains.

Before its folds train side by side on every core, a trial's process
builds its models, traces its training program (`tuning.fused_fit`) and
compiles it: about a second of CPU, and no two trials share a program,
since it depends on their hyperparameters. A random search's next values do
not depend on this trial's score, so `TrialAhead.top_up` looks them up
ahead, with the IDs the oracle will give those trials, without drawing them
(`keras_tuner_internals.next_random_values`, `next_trial_ids`), and starts
each of those trials' processes at once (`tuner.trials_ahead` at most). A
process runs its trial as it would have been run (the same function,
arguments, callbacks and files) up to its first `fit`, which compiles the
program and then waits (`fused_fit.before_training`) until the search
creates that trial and lets it go (`go`): it then trains at once. Its build,
trace and compilation so overlap the trials before it. Where the next trial
is not the one looked up (a failed trial retried first), that process is
stopped (`cancel`) and the trial runs as usual. The trials, their scores
and their files are the same as without.

Nothing starts ahead on TensorFlow (its `fit` compiles as it trains), for
Bayesian optimisation and Hyperband (their next values depend on this
trial's score), before the first trial (it takes the defaults the space
declares), on one core (nothing would run beside the trial), nor where
trials do not run in processes of their own (`tuning.trial_process.can_fork`).

Example:

>>> TrialAhead.top_up(tuner=None, started=[], trial_call=None)
[]
"""

import contextlib
import os

import keras
import keras_tuner
from keras_tuner.engine.trial import Trial, TrialStatus

from tuning import fused_fit
from tuning.hypermodel import available_cores
from tuning.keras_tuner_internals import next_random_values, next_trial_ids
from tuning.trial_process import IsolatedCall, can_fork

# The byte that lets a trial started ahead train.
GO = b"g"


class TrialAhead:
    """The next trial's process, started ahead: ready to train once let go.

    Attributes:
        trial: the `keras_tuner.engine.trial.Trial` it runs: the ID and
            values the oracle will give its next trial.
    """

    def __init__(self, trial, call, go_writer):
        self.trial = trial
        self._call = call
        self._go_writer = go_writer

    @classmethod
    def top_up(cls, tuner, started, trial_call):
        """The next trials' processes, started ahead where it helps: `tuner.trials_ahead` at most.

        Args:
            tuner: the `keras_tuner.Tuner` running a trial, or `None`.
            started: list of the `TrialAhead` already started, next first:
                those that no longer run the trial coming in their place
                are stopped.
            trial_call: callable taking a trial, returning the `(function,
                args, kwargs)` its process runs.

        Returns:
            list of `TrialAhead`, next first.
        """
        upcoming = _upcoming_trials(tuner)
        kept = []
        for ahead in started:
            if len(kept) < len(upcoming) and ahead.runs(upcoming[len(kept)]):
                kept.append(ahead)
            else:
                ahead.cancel()
        for trial in upcoming[len(kept):]:
            try:
                kept.append(cls._start(trial, trial_call, held=tuner.holds_finished_trials()))
            except OSError:  # no process or pipe to spare: the trial starts when it comes
                break
        return kept

    @classmethod
    def _start(cls, trial, trial_call, held=False):
        function, args, kwargs = trial_call(trial)
        go_reader, go_writer = os.pipe()
        start = IsolatedCall.held if held else IsolatedCall
        try:
            call = start(_when_let_go, go_reader, function, *args, **kwargs)
        except BaseException:
            os.close(go_writer)
            raise
        finally:
            os.close(go_reader)
        return cls(trial, call, go_writer)

    def runs(self, trial):
        """Whether it runs `trial`: the same ID and values."""
        return (trial.trial_id == self.trial.trial_id
                and trial.hyperparameters.values == self.trial.hyperparameters.values)

    def go(self):
        """Lets it train; returns its `tuning.trial_process.IsolatedCall`."""
        if self._go_writer is not None:  # else cancelled: `result()` says so
            with contextlib.suppress(OSError):  # it ended already (an error): `result()` says
                os.write(self._go_writer, GO)
            self._close()
        return self._call

    def cancel(self):
        """Stops its process."""
        self._call.cancel()
        self._close()

    def _close(self):
        if self._go_writer is not None:
            os.close(self._go_writer)
            self._go_writer = None


def _upcoming_trials(tuner):
    """The trials the oracle will create next, `tuner.trials_ahead` at most (none where it cannot tell)."""
    if tuner is None or not tuner.trials_ahead:
        return []
    oracle = tuner.oracle
    if (keras.backend.backend() != "jax" or not can_fork() or available_cores() < 2
            or not isinstance(oracle, keras_tuner.oracles.RandomSearchOracle)
            or not oracle.trials):
        return []
    count = tuner.trials_ahead
    if oracle.max_trials is not None:
        count = min(count, oracle.max_trials - len(oracle.trials))
    if count <= 0:
        return []
    trials = []
    for values, trial_id in zip(next_random_values(oracle, count), next_trial_ids(oracle, count)):
        hyperparameters = oracle.hyperparameters.copy()
        hyperparameters.values = values
        trials.append(Trial(hyperparameters=hyperparameters, trial_id=trial_id,
                            status=TrialStatus.RUNNING))
    return trials


class NotLetGo(BaseException):  # a signal, as KeyboardInterrupt is
    """Raised in a trial started ahead whose search will not run it."""


def _when_let_go(go_reader, function, *args, **kwargs):
    """`function(*args, **kwargs)`, whose first `fit` waits for `GO` on `go_reader` before training."""

    def wait():
        if os.read(go_reader, len(GO)) != GO:  # its end: the search went on without it
            raise NotLetGo

    with fused_fit.before_training(wait):
        return function(*args, **kwargs)
