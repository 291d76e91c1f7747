"""The templates, predict and the search run on JAX as on TensorFlow, and models cross over.

Keras picks its backend once per process, so every run here is a child
process, as a user runs the kit: `--backend` on the command line, or
`KERAS_BACKEND` in the environment.
"""

import json
import os
import subprocess
import sys

import pandas as pd
import pytest

from conftest import REPO_ROOT, make_frame
from templates import backend, jax_runtime

TASKS = ("regression", "binary", "multiclass")


def run(*args, env=None):
    """Runs `python args` from the repository root; returns the CompletedProcess."""
    environment = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True,
                          cwd=REPO_ROOT, timeout=300, env=environment, check=False)


def check(result):
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def binary_csv(tmp_path_factory):
    path = tmp_path_factory.mktemp("backends") / "binary.csv"
    make_frame("binary", rows=150).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def trained(binary_csv, tmp_path_factory):
    """A binary model with a text column trained on each backend: `{backend: run folder}`."""
    runs = {}
    for name in backend.BACKENDS:
        output = tmp_path_factory.mktemp(f"binary-{name}")
        check(run("-m", "templates.binary", "--csv", binary_csv, "--target", "target",
                  "--epochs", "3", "--backend", name, "--output", output, "--overwrite"))
        runs[name] = output
    return runs


def predictions(model_folder, csv, name, tmp_path):
    output = tmp_path / f"predictions-{model_folder.name}-{name}.csv"
    check(run("-m", "templates.predict", "--model", model_folder / "model.keras", "--csv", csv,
              "--output", output, "--backend", name))
    return pd.read_csv(output)


def test_a_template_run_records_the_backend_it_ran_on(trained):
    for name, folder in trained.items():
        assert json.loads((folder / "metrics.json").read_text())["backend"] == name


@pytest.mark.parametrize("saved_on", backend.BACKENDS)
def test_a_model_saved_on_one_backend_predicts_the_same_rows_on_the_other(
        trained, binary_csv, saved_on, tmp_path):
    on_jax = predictions(trained[saved_on], binary_csv, "jax", tmp_path)
    on_tensorflow = predictions(trained[saved_on], binary_csv, "tensorflow", tmp_path)
    assert (on_jax["prediction"] == on_tensorflow["prediction"]).all()
    assert (on_jax["probability"] - on_tensorflow["probability"]).abs().max() < 1e-5


@pytest.mark.parametrize("task", TASKS)
def test_each_template_trains_on_jax_from_raw_rows_with_text_and_gaps(task, tmp_path):
    csv = tmp_path / "data.csv"
    make_frame(task).to_csv(csv, index=False)
    result = check(run("-m", f"templates.{task}", "--csv", csv, "--target", "target",
                       "--epochs", "3", "--output", tmp_path / "run",
                       env={"KERAS_BACKEND": "jax"}))
    assert "test: " in result.stdout
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["backend"] == "jax"


def test_a_run_on_jax_never_imports_tensorflow(binary_csv, tmp_path):
    # TensorFlow's import costs seconds in every process of a search.
    code = ("import sys; from templates import binary; "
            f"binary.main(['--csv', {str(binary_csv)!r}, '--target', 'target', '--epochs', '2', "
            f"'--output', {str(tmp_path / 'run')!r}, '--quiet']); "
            "print('tensorflow imported:', 'tensorflow' in sys.modules)")
    result = check(run("-c", code, env={"KERAS_BACKEND": "jax"}))
    assert "tensorflow imported: False" in result.stdout
    assert result.stderr == ""


def test_a_template_with_monitors_attached_trains_on_jax(binary_csv):
    code = ("from callbacks import GradientMonitor, ActivationMonitor; "
            "from templates import binary; import pandas as pd; "
            f"frame = pd.read_csv({str(binary_csv)!r}); "
            "run = binary.train(frame.drop(columns='target'), frame['target'], "
            "config=binary.SETTINGS.replace(epochs=2), "
            "callbacks=[GradientMonitor(), ActivationMonitor()], verbose=0); "
            "print(sorted(k for k in run.history if k.startswith('grad_norm/')))")
    result = check(run("-c", code, env={"KERAS_BACKEND": "jax"}))
    assert "'grad_norm/hidden_1'" in result.stdout


def test_a_search_runs_and_resumes_on_jax(binary_csv, tmp_path):
    arguments = ["-m", "tuning.search", "--task", "binary", "--csv", binary_csv,
                 "--target", "target", "--max-trials", "2", "--max-epochs", "3", "--folds", "1",
                 "--directory", tmp_path, "--backend", "jax"]
    first = check(run(*arguments))
    assert first.stdout.count("completed in") == 2
    assert (tmp_path / "best_model.keras").is_file()
    assert json.loads((tmp_path / "metrics.json").read_text())["backend"] == "jax"
    again = check(run(*arguments))
    assert "resuming: 2 of 2 trials finished" in again.stdout


def test_a_random_search_on_jax_scores_the_same_with_its_next_trials_ready_ahead(binary_csv,
                                                                                 tmp_path):
    def search(trials_ahead):
        directory = tmp_path / f"ahead-{trials_ahead}"
        check(run("-m", "tuning.search", "--task", "binary", "--csv", binary_csv,
                  "--target", "target", "--max-trials", "4", "--max-epochs", "4", "--folds", "2",
                  "--trials-ahead", trials_ahead, "--directory", directory, "--backend", "jax"))
        board = pd.read_csv(directory / "leaderboard.csv").drop(columns="seconds")
        files = sorted(path.relative_to(directory).as_posix()
                       for path in (directory / "trials").rglob("*"))
        return board, files, json.loads((directory / "metrics.json").read_text())["test"]

    board, files, test = search(2)
    board_without, files_without, test_without = search(0)
    pd.testing.assert_frame_equal(board, board_without)
    assert files == files_without
    assert test == test_without


RECORDED_SEARCH = """
import os, sys
from tuning import final_model, hypermodel, search, tuners

log, hold = sys.argv[1], sys.argv[2] == "hold"
def note(*words):
    with open(log, "a") as file:
        print(*words, file=file)

fit, retrain, trial_end = (hypermodel.TemplateHyperModel.fit, final_model._retrain,
                           tuners.TemplateTuner.on_trial_end)
def noted_fit(self, *args, **kwargs):
    note("trial", os.getpid())
    return fit(self, *args, **kwargs)
def noted_retrain(*args, program_of=None, **kwargs):
    note("retrain", os.getpid(), program_of is not None)
    return retrain(*args, program_of=program_of, **kwargs)
def noted_trial_end(self, trial):
    trial_end(self, trial)
    note("waiting", *sorted(self.finished_trial_processes()))
hypermodel.TemplateHyperModel.fit = noted_fit
final_model._retrain = noted_retrain
tuners.TemplateTuner.on_trial_end = noted_trial_end
if not hold:
    tuners.TemplateTuner.holds_finished_trials = lambda self: False
sys.exit(search.main(sys.argv[3:]))
"""


def test_a_jax_search_retrains_its_best_trials_in_their_own_processes(binary_csv, tmp_path):
    # The best --ensemble trials' processes wait, their programs compiled, and
    # retrain there: the same final model as retrained in new processes.
    def search(hold):
        directory, log = tmp_path / hold, tmp_path / f"{hold}.log"
        check(run("-c", RECORDED_SEARCH, log, hold, "--task", "binary", "--csv", binary_csv,
                  "--target", "target", "--max-trials", "5", "--max-epochs", "4", "--folds", "2",
                  "--ensemble", "2", "--directory", directory, "--backend", "jax",
                  env={"KERAS_BACKEND": "jax"}))
        lines = [line.split() for line in log.read_text().splitlines()]
        board = pd.read_csv(directory / "leaderboard.csv").drop(columns="seconds")
        return directory, lines, board

    directory, lines, board = search("hold")
    trials = [words[1] for words in lines if words[0] == "trial"]
    retrains = [words[1:] for words in lines if words[0] == "retrain"]
    assert len(trials) == 5 and len(retrains) == 2
    assert all(pid in trials and program_of == "True" for pid, program_of in retrains)
    waiting = [ids for kind, *ids in lines if kind == "waiting"]
    best = board.sort_values("score")["trial"].head(2)
    assert max(len(ids) for ids in waiting) == 2
    assert sorted(int(trial) for trial in waiting[-1]) == sorted(best)

    directory_without, lines_without, board_without = search("new")
    assert not [ids for kind, *ids in lines_without if kind == "waiting" and ids]
    assert not {words[1] for words in lines_without if words[0] == "retrain"} & set(trials)
    pd.testing.assert_frame_equal(board, board_without)
    for name in ("metrics.json", "best_hyperparameters.json"):
        assert (json.loads((directory / name).read_text())
                == json.loads((directory_without / name).read_text())), name
    from templates.predict import load_model

    weights = [load_model(folder / "best_model.keras").get_weights()
               for folder in (directory, directory_without)]
    for held, new in zip(*weights, strict=True):
        assert (held == new).all()


def test_backend_option_wins_over_keras_backend():
    code = "import templates, keras; print(keras.backend.backend())"
    result = check(run("-c", code, "--backend", "jax", env={"KERAS_BACKEND": "tensorflow"}))
    assert result.stdout.strip() == "jax"


def test_a_backend_the_kit_does_not_run_on_is_one_line_error(binary_csv, tmp_path):
    result = run("-m", "templates.binary", "--csv", binary_csv, "--target", "target",
                 "--output", tmp_path / "run", env={"KERAS_BACKEND": "torch"})
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "error: Keras runs on the 'torch' backend; expected one of tensorflow, jax "
        "(set KERAS_BACKEND or pass --backend).")


@pytest.mark.parametrize("argv, environ, keras_json, expected", [
    (["--backend", "tensorflow"], {"KERAS_BACKEND": "jax"}, None, "tensorflow"),
    ([], {"KERAS_BACKEND": "tensorflow"}, {"backend": "jax"}, "tensorflow"),
    ([], {}, {"backend": "jax"}, "jax"),
    # Keras writes "tensorflow" into a new keras.json by itself: no choice.
    ([], {}, {"backend": "tensorflow"}, backend.DEFAULT_BACKEND),
    ([], {}, None, backend.DEFAULT_BACKEND),
])
def test_the_backend_is_the_option_then_the_environment_then_keras_json_then_the_default(
        argv, environ, keras_json, expected, tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    if keras_json is not None:
        (tmp_path / "keras.json").write_text(json.dumps(keras_json))
    assert backend.chosen_backend(argv, environ) == expected


def test_initial_weights_drawn_in_buckets_are_keras_draws_of_the_same_seed():
    import jax
    import numpy as np
    from keras.src.backend.jax import random as jax_random

    original = getattr(jax_random.truncated_normal, "wrapped_sample", jax_random.truncated_normal)
    sample = jax_runtime.bucketed_sampler(original)
    key = jax.random.PRNGKey(3)
    for shape in [(30, 64), (256, 256), (400, 300)]:  # below, at and above the smallest bucket
        weights = np.asarray(sample(shape, 0.0, 0.5, "float32", seed=key))
        # The values Keras draws for that shape: a longer draw begins with a shorter one.
        np.testing.assert_array_equal(weights, original(shape, 0.0, 0.5, "float32", seed=key))
    assert np.abs(weights).max() <= 1.0 and abs(weights.std() - 0.5 * 0.88) < 0.01
    # Inside a compiled step (dropout), the call is Keras' own.
    traced = jax.jit(lambda key: sample((3, 2), 0.0, 1.0, "float32", seed=key))(
        jax.random.PRNGKey(0))
    assert traced.shape == (3, 2)
    # A draw inside a trace with a known seed (a subclassed model built by its
    # first call within a compiled step) gives the same values.
    inside = jax.jit(lambda: sample((30, 8), 0.0, 0.5, "float32", seed=key))()
    np.testing.assert_array_equal(inside, original((30, 8), 0.0, 0.5, "float32", seed=key))


def test_zeros_and_ones_made_outside_a_trace_are_jax_own_and_compile_nothing(caplog):
    import jax
    import numpy as np
    from keras.src.backend.jax import numpy as jax_numpy

    for name, fill in (("zeros", np.zeros), ("ones", np.ones)):
        original = getattr(jax_numpy, name)
        original = getattr(original, "wrapped_construct", original)
        construct = jax_runtime.host_constructor(original, fill)
        for shape, dtype in [((13, 17), "float32"), ((11,), "int32"), (19, None), ((), "bool")]:
            with jax.log_compiles(True), caplog.at_level("WARNING"):
                caplog.clear()
                value = construct(shape, dtype=dtype)
                assert not [line for line in caplog.messages if "Compiling" in line]
            expected = original(shape, dtype=dtype)
            assert (value.shape, value.dtype) == (expected.shape, expected.dtype)
            np.testing.assert_array_equal(value, expected)
        # Inside a compiled step, the call is JAX's own.
        traced = jax.jit(lambda construct=construct: construct((2, 3), "float32") + 1)()
        np.testing.assert_array_equal(traced, fill((2, 3)) + 1)


def test_the_folds_of_a_trial_share_one_model_and_fit_as_one_program_on_jax():
    # On JAX a compiled step frees the arrays it is given: shared state must be
    # copied. And a trial's fits run as one compiled program (`tuning.fused_fit`).
    result = run("-m", "pytest", "-q", "-p", "no:cacheprovider",
                 "tests/test_tuning_fold_models.py", "tests/test_tuning_fused_fit.py",
                 env={"KERAS_BACKEND": "jax"})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]


@pytest.fixture
def model_with_string_inputs(tmp_path):
    """A model as the templates saved them before text became codes: StringLookup inside."""
    import keras

    from templates.layers import ColumnNames, ModelInfo, ReplaceNaN

    numbers = keras.Input((2,), name="numeric_columns")
    colour = keras.Input((1,), name="colour", dtype="string")
    named = ReplaceNaN()(ColumnNames(["signal", "noise"], name="numeric_column_names")(numbers))
    one_hot = keras.layers.StringLookup(vocabulary=["blue", "green", "red"],
                                        output_mode="one_hot")(colour)
    features = ModelInfo("binary", ["no", "yes"], name="model_info")(
        keras.layers.Concatenate()([named, one_hot]))
    model = keras.Model({"numeric_columns": numbers, "colour": colour},
                        keras.layers.Dense(1, activation="sigmoid", name="output")(features))
    path = tmp_path / "old.keras"
    model.save(path)
    return path


def test_a_model_that_takes_text_as_strings_still_predicts_on_tensorflow(model_with_string_inputs):
    from templates.predict import load_model, predict_frame

    rows = make_frame("binary", rows=5).drop(columns="target")
    assert len(predict_frame(load_model(str(model_with_string_inputs)), rows)) == 5


def test_a_model_that_takes_text_as_strings_is_a_one_line_error_on_jax(
        model_with_string_inputs, binary_csv, tmp_path):
    result = run("-m", "templates.predict", "--model", model_with_string_inputs, "--csv",
                 binary_csv, "--output", tmp_path / "p.csv", "--backend", "jax")
    assert result.returncode == 2
    assert result.stderr.startswith("error: The model takes its text columns ('colour') as strings")
    assert "--backend tensorflow" in result.stderr and len(result.stderr.splitlines()) == 1
