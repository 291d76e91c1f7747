"""`python -m studies`: each study in its own process, every verdict in report.md."""

import json
import sys

import pytest

from studies import __main__ as studies_main

# Stands in for a study: writes results.json (and the rest) where --output says.
_FAKE_STUDY = """
import json, pathlib, sys
output = pathlib.Path(sys.argv[sys.argv.index("--output") + 1])
for name in ("results.csv", "figure.png", "summary.md"):
    (output / name).write_text("")
(output / "results.json").write_text(json.dumps({
    "verdict": "SUPPORTED", "claim": "Lower is better.",
    "evidence": "Loss fell 10x.\\nDetails.", "quick": "--quick" in sys.argv}))
"""
_FAILING_STUDY = "import sys; print('training...'); sys.exit('ValueError: boom')"


def _fake(script):
    return lambda name: [sys.executable, "-c", script]


def test_unknown_study_is_one_error_line_and_exit_2(capsys):
    assert studies_main.main(["--only", "learning_rate,nope"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: invalid --only 'learning_rate,nope'")
    assert len(err.splitlines()) == 1


def test_report_lists_each_verdict_with_links(tmp_path, monkeypatch):
    monkeypatch.setattr(studies_main, "_command", _fake(_FAKE_STUDY))
    argv = ["--quick", "--only", "learning_rate,vanishing_gradients", "--output", str(tmp_path)]
    assert studies_main.main(argv) == 0
    report = (tmp_path / "report.md").read_text()
    for number, name in ((1, "vanishing_gradients"), (2, "learning_rate")):
        assert f"| {number} | {name} | **SUPPORTED** | Loss fell 10x. |" in report
        assert f"[summary]({name}/summary.md)" in report
        assert f"![{name}]({name}/figure.png)" in report
    assert json.loads((tmp_path / "learning_rate" / "results.json").read_text())["quick"]


def test_a_failed_study_is_reported_and_fails_the_run(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(studies_main, "_command", _fake(_FAILING_STUDY))
    assert studies_main.main(["--only", "learning_rate", "--output", str(tmp_path)]) == 1
    report = (tmp_path / "report.md").read_text()
    assert "| 2 | learning_rate | **FAILED** | exit status 1: ValueError: boom |" in report
    assert "[log](learning_rate/log.txt)" in report
    assert "training..." in (tmp_path / "learning_rate" / "log.txt").read_text()
    assert "FAILED: learning_rate" in capsys.readouterr().out


@pytest.mark.parametrize("study", ["learning_rate"])
def test_runs_a_real_quick_study_in_its_own_process(tmp_path, study):
    assert studies_main.main(["--quick", "--only", study, "--output", str(tmp_path)]) == 0
    record = json.loads((tmp_path / study / "results.json").read_text())
    assert f"**{record['verdict']}**" in (tmp_path / "report.md").read_text()
