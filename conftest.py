"""Runs every doctest in a fresh temporary folder, so examples that write files leave none behind."""

import pytest


@pytest.fixture(autouse=True)
def _doctests_run_in_a_temporary_folder(request, tmp_path, monkeypatch):
    if isinstance(request.node, pytest.DoctestItem):
        monkeypatch.chdir(tmp_path)
