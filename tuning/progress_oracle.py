"""An oracle mixin that times trials, prints one line per trial and stops on failures.

The oracle lives in the process that holds the search (the chief in
distributed mode), so the lines and the stop rule work the same with and
without workers.

Example:

>>> import keras_tuner
>>> class Oracle(ProgressOracle, keras_tuner.oracles.RandomSearchOracle):
...     pass
>>> Oracle(objective="val_loss", max_trials=2, max_consecutive_failures=3).max_consecutive_failures
3
"""

import re
import time

from keras_tuner.engine.trial import TrialStatus

from templates.numbers import format_number

SECONDS = "seconds"
BEST_EPOCH = "best_epoch"


def print_line(line):
    """Prints `line` and flushes, so a pipe or a log file gets it as the trial ends.

    Example:

    >>> print_line("trial 01 (1/8) completed in 4.1s")
    trial 01 (1/8) completed in 4.1s
    """
    print(line, flush=True)


def failure_reason(trial):
    """Returns the last line of a failed trial's traceback, without the error class."""
    lines = [line for line in (trial.message or "").splitlines() if line.strip()]
    return re.sub(r"^[\w.]+: ", "", lines[-1]) if lines else ""


class ProgressOracle:
    """Mixin for a KerasTuner `Oracle`: trial times, progress lines, failure limit.

    Every ended trial gets a `seconds` metric (wall time from its start to
    its end, as the oracle saw it) saved with it, and one line is printed:

        trial 03 (3/8) completed in 4.1s: val_data_loss=0.1234 at epoch 12; best 0.1100 (trial 01); learning_rate=0.0012 ...

    A failed trial (e.g. `FailOnNaN`) does not stop the search; once
    `max_consecutive_failures` trials in a row have failed, no new trial is
    created, so the search ends and `stopped_by_failures` is true.
    KerasTuner's own limit (which raises inside `end_trial` and, in
    distributed mode, inside the chief's server) is switched off.

    Args:
        max_consecutive_failures: int, failed trials in a row that stop the
            search. Defaults to `3`.
        report: callable taking one line of text. Defaults to `print_line`
            (printed at once, even when stdout is a pipe or a file).
        *args, **kwargs: passed to the KerasTuner oracle.
    """

    def __init__(self, *args, max_consecutive_failures=3, report=print_line, **kwargs):
        super().__init__(*args, max_consecutive_failed_trials=None, **kwargs)
        self.max_consecutive_failures = max_consecutive_failures
        self.report = report
        self._started = {}

    @property
    def consecutive_failures(self):
        """The number of failed trials at the end of the finishing order."""
        count = 0
        for trial_id in reversed(self.end_order):
            if self.trials[trial_id].status != TrialStatus.FAILED:
                break
            count += 1
        return count

    @property
    def stopped_by_failures(self):
        return self.consecutive_failures >= self.max_consecutive_failures

    def populate_space(self, trial_id):
        if self.stopped_by_failures:
            return {"status": TrialStatus.STOPPED, "values": None}
        return super().populate_space(trial_id)

    def create_trial(self, tuner_id):
        trial = super().create_trial(tuner_id)
        if trial.status == TrialStatus.RUNNING:
            self._started.setdefault(trial.trial_id, time.monotonic())
        return trial

    def end_trial(self, trial):
        started = self._started.pop(trial.trial_id, None)
        record = self.trials[trial.trial_id]
        if started is not None:
            if not record.metrics.exists(SECONDS):
                record.metrics.register(SECONDS)
            record.metrics.update(SECONDS, time.monotonic() - started)
        super().end_trial(trial)
        if record.status in (TrialStatus.COMPLETED, TrialStatus.FAILED):
            self.report(self.progress_line(record))

    def progress_line(self, trial):
        """Formats the line printed when `trial` ends."""
        seconds = _metric(trial, SECONDS)
        head = (f"trial {trial.trial_id} ({len(self.end_order)}/{self.max_trials}) "
                f"{trial.status.lower()} in {seconds:.1f}s")
        if trial.status == TrialStatus.COMPLETED:
            head += (f": {self.objective.name}={format_number(trial.score)} "
                     f"at epoch {_metric(trial, BEST_EPOCH):.0f}")
        else:
            head += f": {failure_reason(trial)}"
        best = self.get_best_trials(1)
        if best and best[0].status == TrialStatus.COMPLETED:
            head += f"; best {format_number(best[0].score)} (trial {best[0].trial_id})"
        values = " ".join(f"{name}={format_number(value)}"
                          for name, value in trial.hyperparameters.values.items())
        return f"{head}; {values}"


def _metric(trial, name):
    if not trial.metrics.exists(name):
        return float("nan")
    return trial.metrics.get_last_value(name)

