"""TensorFlow's C++ start-up lines never reach the terminal; real errors still do."""

import os
import subprocess
import sys

import pytest
import tensorflow as tf
from tensorflow.python.eager import context

from templates import tensorflow_logs
from tests.conftest import REPO_ROOT

STARTUP_WORDS = ("cuInit", "oneDNN", "cpu_feature_guard", "absl::InitializeLog")
# Lines TensorFlow 2.21 wrote at start on a machine without a GPU.
STARTUP_LINES = [
    b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    b"I0000 00:00:1795678499.617760   19161 port.cc:153] oneDNN custom operations are on.",
    b"I0000 00:00:1795678499.618065   19161 cudart_stub.cc:31] Could not find cuda drivers.",
    b"I0000 00:00:1795678499.668269   19161 cpu_feature_guard.cc:227] This TensorFlow binary...",
    b"To enable the following instructions: AVX2 AVX512F FMA, in other operations, rebuild...",
]
CUINIT = (b"E0000 00:00:1795678507.474238   19161 cuda_platform.cc:52] failed call to cuInit: "
          b"INTERNAL: CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)")


def test_start_up_lines_are_held_back_and_everything_else_is_written(capfd):
    with tensorflow_logs.startup_lines_filtered():
        os.write(2, b"\n".join([*STARTUP_LINES, b"E0000 00:00:1.5 7 kernel.cc:9] a real error",
                                b"error: bad input"]) + b"\n")
    assert capfd.readouterr().err.splitlines() == [
        "E0000 00:00:1.5 7 kernel.cc:9] a real error", "error: bad input"]


@pytest.mark.parametrize("driver, hidden", [(False, True), (True, False)])
def test_a_failed_cuinit_is_hidden_only_without_a_cuda_driver(monkeypatch, driver, hidden):
    monkeypatch.setattr(tensorflow_logs, "_CUDA_DRIVER", driver)
    assert tensorflow_logs.is_startup_line(CUINIT) is hidden


def test_tensorflow_still_has_the_methods_that_start_its_runtime():
    for name in tensorflow_logs.RUNTIME_START_HOOKS:
        assert callable(getattr(context.Context, name, None)), (
            f"TensorFlow {tf.__version__} has no Context.{name}; update "
            "templates.tensorflow_logs.RUNTIME_START_HOOKS to what starts its runtime now."
        )


# What a search does: import the kit, fork a trial that starts TensorFlow's
# runtime, then start it in the search's own process (the final model).
SEARCH_LIKE = """
import templates
import tensorflow as tf
from tuning.trial_process import can_fork, run_isolated

assert can_fork()
print(run_isolated(lambda: float(tf.constant(1.0) + 1.0)))
print(float(tf.constant(2.0) + 1.0))
"""


def test_a_process_and_its_forked_trials_print_no_start_up_lines():
    result = subprocess.run([sys.executable, "-c", SEARCH_LIKE], check=False, cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout == "2.0\n3.0\n"
    assert result.stderr == "", [word for word in STARTUP_WORDS if word in result.stderr]
