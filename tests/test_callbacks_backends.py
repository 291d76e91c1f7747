"""The callbacks' tests pass on the JAX and PyTorch backends too.

Keras picks its backend once per process, from `KERAS_BACKEND`, so each of
these backends runs `pytest callbacks/` in a child process of its own; this
in-process run of the suite covers TensorFlow, Keras' default. Both children
start together when the first of these tests runs (this process only waits
on them), and each test waits for its child to exit, with a timeout.
"""

import importlib.util
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
BACKENDS = ("jax", "torch")
TIMEOUT_S = 900
TAIL_CHARS = 6000
NO_TENSORFLOW = "tensorflow imported by collection: False"

# pytest on the arguments, printing whether collecting the tests (importing
# the callbacks, their tests and doctests) imported TensorFlow.
CHILD = """
import sys

import pytest


class ReportTensorFlow:
    def pytest_collection_finish(self, session):
        imported = "tensorflow" in sys.modules
        print("\\ntensorflow imported by collection:", imported, flush=True)


sys.exit(pytest.main(sys.argv[1:], plugins=[ReportTensorFlow()]))
"""


@pytest.fixture(scope="module")
def children(request, tmp_path_factory):
    """Starts `pytest callbacks/` under each backend this session tests.

    Returns:
        dict from backend name to `(process, path of its output)`, for the
        backends installed.
    """
    selected = {
        item.callspec.params["backend"]
        for item in request.session.items
        if getattr(item, "module", None) is request.module
        and hasattr(item, "callspec")
    }
    started = {}
    folder = tmp_path_factory.mktemp("callbacks_backends")
    for backend in sorted(selected):
        if importlib.util.find_spec(backend) is None:
            continue
        output = folder / f"{backend}.log"
        with open(output, "wb") as stream:
            process = subprocess.Popen(
                [sys.executable, "-c", CHILD, "-q", "-p", "no:cacheprovider",
                 "callbacks/"],
                cwd=ROOT,
                env={**os.environ, "KERAS_BACKEND": backend},
                stdout=stream,
                stderr=subprocess.STDOUT,
            )
        started[backend] = (process, output)
    yield started
    for process, _ in started.values():
        if process.poll() is None:
            process.kill()
            process.wait()


def finished_output(children, backend):
    """Waits for the backend's child to exit; returns its exit code and output."""
    if backend not in children:
        pytest.skip(
            f"{backend} is not installed: pip install '.[test]' installs it"
        )
    process, output = children[backend]
    try:
        returncode = process.wait(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        pytest.fail(
            f"pytest callbacks/ with KERAS_BACKEND={backend} ran over "
            f"{TIMEOUT_S} s; its output ends:\n"
            f"{output.read_text(errors='replace')[-TAIL_CHARS:]}"
        )
    return returncode, output.read_text(errors="replace")


@pytest.mark.parametrize("backend", BACKENDS)
def test_callbacks_tests_pass(children, backend):
    returncode, output = finished_output(children, backend)

    assert returncode == 0, (
        f"pytest callbacks/ with KERAS_BACKEND={backend} exited with "
        f"{returncode}; its output ends:\n{output[-TAIL_CHARS:]}"
    )


@pytest.mark.parametrize("backend", BACKENDS)
def test_collecting_callbacks_tests_does_not_import_tensorflow(
    children, backend
):
    _, output = finished_output(children, backend)

    assert NO_TENSORFLOW in output, (
        f"Collecting callbacks/ with KERAS_BACKEND={backend} imported "
        "TensorFlow (or did not finish); the output begins:\n"
        f"{output[:TAIL_CHARS]}"
    )
