"""Specification of `tuning.trial_ahead`: a random search's next trials get ready while one trains.

Which trials start ahead is checked here with the processes left out; a
trial's process started ahead runs in a child Python (its own backend,
forked from a process that has not started it), and a whole search on JAX
with and without trials ahead in `tests/test_backends.py`.
"""

import os
import subprocess
import sys
import types

import keras_tuner
import pytest

from conftest import REPO_ROOT
from tuning import trial_ahead, tuners
from tuning.keras_tuner_internals import set_project_dir


class FakeCall:
    """Stands for a trial's `IsolatedCall`: notes its result and its cancellation."""

    def __init__(self, trial_id, log):
        self.trial_id, self.log = trial_id, log

    def result(self):
        self.log.append(("result", self.trial_id))
        return {"val_data_loss": 1.0 / (1 + int(self.trial_id)), "best_epoch": 2}

    def cancel(self):
        self.log.append(("cancel", self.trial_id))


class Started:
    """What `TrialAhead._start` would have started: no process."""

    def __init__(self, log):
        self.log = log

    def __call__(self, trial, trial_call):
        self.log.append(("start", trial.trial_id))
        return trial_ahead.TrialAhead(trial, call=FakeCall(trial.trial_id, self.log),
                                      go_writer=None)


def keras_on(backend):
    """Keras as `tuning.trial_ahead` sees it, on `backend` (Keras picks one per process)."""
    return types.SimpleNamespace(backend=types.SimpleNamespace(backend=lambda: backend))


@pytest.fixture
def on_jax(monkeypatch):
    """As in a search's process on JAX, which has not started JAX: trials may start ahead."""
    monkeypatch.setattr(trial_ahead, "keras", keras_on("jax"))
    monkeypatch.setattr(trial_ahead, "can_fork", lambda: True)
    monkeypatch.setattr(trial_ahead, "available_cores", lambda: 2)
    log = []
    monkeypatch.setattr(trial_ahead.TrialAhead, "_start", classmethod(
        lambda cls, trial, trial_call, held=False: Started(log)(trial, trial_call)))
    return log


def random_search(tmp_path, max_trials=4, oracle=None, trials_ahead=2):
    """A tuner-like object around an oracle (random search) with a space and a first trial."""
    oracle = oracle or keras_tuner.oracles.RandomSearchOracle(objective="val_loss", seed=1)
    oracle.max_trials = max_trials
    set_project_dir(oracle, str(tmp_path), "trials")
    space = keras_tuner.HyperParameters()
    space.Int("width", 8, 256)
    space.Choice("activation", ["relu", "tanh", "sigmoid"])
    oracle.update_space(space)
    tuner = types.SimpleNamespace(oracle=oracle, trials_ahead=trials_ahead,
                                  holds_finished_trials=lambda: False)
    next_trial(tuner)
    return tuner


def next_trial(tuner):
    trial = tuner.oracle.create_trial("chief")
    tuner.oracle.update_trial(trial.trial_id, {"val_loss": 1.0})
    tuner.oracle.end_trial(trial)
    return trial


def top_up(tuner, started=()):
    return trial_ahead.TrialAhead.top_up(tuner, list(started), trial_call=None)


def test_the_trials_started_ahead_are_the_trials_the_oracle_creates_next(tmp_path, on_jax):
    tuner = random_search(tmp_path, max_trials=4)
    ahead = top_up(tuner)
    assert on_jax == [("start", "1"), ("start", "2")]
    for position in range(3):
        trial = next_trial(tuner)
        assert ahead[0].runs(trial), (trial.trial_id, trial.hyperparameters.values)
        ahead = top_up(tuner, ahead[1:])
    assert on_jax == [("start", "1"), ("start", "2"), ("start", "3")]  # 4 trials in all
    assert ahead == []


def test_a_trial_ahead_that_no_longer_comes_next_is_stopped(tmp_path, on_jax):
    tuner = random_search(tmp_path)
    (first, second) = top_up(tuner)
    other = tuner.oracle.hyperparameters.copy()
    other.values = {**first.trial.hyperparameters.values, "width": 7}
    wrong = trial_ahead.TrialAhead(types.SimpleNamespace(trial_id="1", hyperparameters=other),
                                   call=FakeCall("wrong", on_jax), go_writer=None)
    ahead = top_up(tuner, [wrong, second])
    assert on_jax[2:] == [("cancel", "wrong"), ("cancel", "2"), ("start", "1"), ("start", "2")]
    assert [trial.trial.trial_id for trial in ahead] == ["1", "2"]
    assert not wrong.runs(next_trial(tuner)) and ahead[0].runs(tuner.oracle.trials["1"])


OTHER_ORACLES = {
    "bayesian": lambda: keras_tuner.oracles.BayesianOptimizationOracle(objective="val_loss"),
    "hyperband": lambda: keras_tuner.oracles.HyperbandOracle(objective="val_loss", max_epochs=4),
}


@pytest.mark.parametrize("case", ["tensorflow", "bayesian", "hyperband", "off", "first trial",
                                  "cannot fork", "one core"])
def test_no_trial_starts_ahead_where_its_values_or_its_program_are_unknown(tmp_path, on_jax,
                                                                           monkeypatch, case):
    oracle = OTHER_ORACLES[case]() if case in OTHER_ORACLES else None
    tuner = random_search(tmp_path, oracle=oracle, trials_ahead=0 if case == "off" else 2)
    if case == "tensorflow":
        monkeypatch.setattr(trial_ahead, "keras", keras_on("tensorflow"))
    if case == "first trial":
        tuner.oracle.trials.clear()
    if case == "cannot fork":
        monkeypatch.setattr(trial_ahead, "can_fork", lambda: False)
    if case == "one core":
        monkeypatch.setattr(trial_ahead, "available_cores", lambda: 1)
    assert top_up(tuner) == [] and on_jax == []


def test_a_trial_that_cannot_start_ahead_starts_when_it_comes(tmp_path, on_jax, monkeypatch):
    tuner = random_search(tmp_path)
    start = trial_ahead.TrialAhead._start

    def no_process_to_spare(trial, trial_call, held=False):
        if trial.trial_id == "2":
            raise BlockingIOError("fork: Resource temporarily unavailable")
        return start(trial, trial_call, held)

    monkeypatch.setattr(trial_ahead.TrialAhead, "_start", no_process_to_spare)
    assert [ahead.trial.trial_id for ahead in top_up(tuner)] == ["1"]


class SpaceOnly(keras_tuner.HyperModel):
    """A hypermodel whose trials never train in this process."""

    def declare_hyperparameters(self, hp):
        hp.Int("width", 8, 256, default=32)
        hp.Choice("activation", ["relu", "tanh", "sigmoid"])


def test_a_search_lets_each_trial_started_ahead_go_instead_of_starting_it_again(tmp_path, on_jax,
                                                                                 monkeypatch):
    own_processes = []

    def started_when_it_comes(function, *args, **kwargs):
        trial = args[2]  # `trial_call`'s arguments: build_and_fit, the checkpoint, the trial
        own_processes.append(trial.trial_id)
        return FakeCall(trial.trial_id, on_jax)

    monkeypatch.setattr(tuners, "IsolatedCall", started_when_it_comes)
    tuner = tuners.make_tuner("random", SpaceOnly(), directory=str(tmp_path), max_trials=4,
                              max_epochs=2, seed=1)
    tuner.search(verbose=0)
    assert own_processes == ["0"]  # the first trial takes the defaults: nothing looked it up
    assert on_jax == [("start", "1"), ("start", "2"), ("result", "0"),
                      ("start", "3"), ("result", "1"), ("result", "2"), ("result", "3")]
    assert [trial.score for trial in tuner.oracle.trials.values()] == [1.0, 0.5, 1 / 3, 0.25]


def test_trials_ahead_stop_at_the_last_trial(tmp_path, on_jax):
    tuner = random_search(tmp_path, max_trials=2)
    assert [ahead.trial.trial_id for ahead in top_up(tuner)] == ["1"]
    next_trial(tuner)
    assert top_up(tuner) == []


# Run in a child Python on JAX: a search's process forks trials only before
# it has started JAX, which this test process may have. Each trial process
# notes when its program is compiled, and whether it had been let go when
# the program ran.
STARTED_AHEAD = """
import os, sys, time
import keras_tuner
from keras_tuner.engine.trial import Trial
from templates import binary
from templates.data import load_bundled
from templates.recipe import FixedHyperParameters, prepare_data
from templates.training import TrainingConfig
from tuning import fused_fit
from tuning.trial_ahead import TrialAhead
from tuning.trial_process import TrialProcessError

folder = sys.argv[1]
data = prepare_data("binary", *load_bundled("breast_cancer"))
VALUES = {"depth": 1, "width": 8, "batch_size": 32, "learning_rate": 0.05, "dropout": 0.0,
          "l2": 1e-4, "optimizer": "adam", "activation": "relu"}
let_go_when_run = []
compile_quickly, run = fused_fit._compile_quickly, fused_fit._run

def noted_compile(lowered):
    executable = compile_quickly(lowered)
    open(os.path.join(folder, "compiled"), "w").close()
    return executable

def noted_run(*arguments):
    let_go_when_run.append(os.path.exists(os.path.join(folder, "go")))
    return run(*arguments)

fused_fit._compile_quickly, fused_fit._run = noted_compile, noted_run

def trial_fit(trial):
    hp = FixedHyperParameters(trial.hyperparameters.values)
    model = binary.build_model(hp, data)
    with fused_fit.fused(model) as record:
        history = binary.fit_model(hp, model, data, TrainingConfig(epochs=3, patience=2, seed=1),
                                   progress=False)
    return all(let_go_when_run), len(let_go_when_run), record.fused, len(history.epoch)

def wait_for(path):
    for _ in range(12000):  # 120 s at most, for a condition, not a duration
        if os.path.exists(path):
            return
        time.sleep(0.01)
    raise TimeoutError(path)

def trial(trial_id):
    hp = keras_tuner.HyperParameters()
    hp.values = dict(VALUES)
    return Trial(hyperparameters=hp, trial_id=trial_id)

kept = TrialAhead._start(trial("1"), lambda trial: (trial_fit, (trial,), {}))
wait_for(os.path.join(folder, "compiled"))
open(os.path.join(folder, "go"), "w").close()
print("kept", kept.go().result())
stopped = TrialAhead._start(trial("2"), lambda trial: (trial_fit, (trial,), {}))
stopped.cancel()
try:
    stopped.go().result()
except TrialProcessError as error:
    print("stopped:", error)
"""


def test_a_trial_started_ahead_compiles_then_trains_once_let_go_or_never(tmp_path):
    result = subprocess.run([sys.executable, "-c", STARTED_AHEAD, str(tmp_path)],
                            capture_output=True, text=True, cwd=REPO_ROOT, timeout=300,
                            env={**os.environ, "KERAS_BACKEND": "jax"}, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    # Its program compiled ahead; it ran once let go, as one program (3 epochs).
    assert "kept (True, 1, 1, 3)" in result.stdout, result.stdout + result.stderr[-2000:]
    assert "stopped: the call was cancelled." in result.stdout
