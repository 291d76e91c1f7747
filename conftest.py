"""Runs every doctest in a fresh temporary folder, so examples that write files leave none behind.

The suite runs on TensorFlow in this process, whatever the kit's default
backend (`templates.backend`); the tests of the JAX and PyTorch backends run
in child processes that set `KERAS_BACKEND` themselves.
"""

import os

import pytest

os.environ.setdefault("KERAS_BACKEND", "tensorflow")


@pytest.fixture(autouse=True)
def _doctests_run_in_a_temporary_folder(request, tmp_path, monkeypatch):
    if isinstance(request.node, pytest.DoctestItem):
        monkeypatch.chdir(tmp_path)
