"""The studies' shared command line and output files."""

import importlib
import json
import os

import pandas as pd
import pytest

import studies
from studies import common
from templates.errors import TemplateError
from tests.conftest import make_frame


def _result(verdict="SUPPORTED"):
    figure, axes = common.new_figure()
    axes.plot([0, 1], [1, 0])
    return common.StudyResult(
        claim="Loss falls.",
        protocol="One line.",
        table=pd.DataFrame({"step": [0, 1], "loss": [1.0, 0.123456789]}),
        verdict=verdict,
        evidence="Loss fell from 1 to 0.1235.\nMore detail.",
        literature="None.",
        settings={"optimizer": "sgd"},
        figure=figure,
    )


def _never_called(options):
    raise AssertionError("the study ran despite bad input")


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["--seeds", "1,x"], "invalid --seeds '1,x'"),
        (["--seeds", "1,1"], "invalid --seeds '1,1'"),
        (["--seeds", ""], "invalid --seeds ''"),
        (["--csv", "table.csv"], "unrecognized arguments: --csv"),
    ],
)
def test_bad_arguments_print_one_error_line_and_exit_2(capsys, argv, expected):
    assert common.study_main("demo", _never_called, argv=argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and expected in err
    assert len(err.splitlines()) == 1


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["--csv", "missing.csv", "--target", "y", "--task", "regression"],
         "CSV file 'missing.csv' does not exist."),
        (["--csv", "{csv}"], "needs --target COLUMN and --task TASK"),
        (["--csv", "{csv}", "--target", "nope", "--task", "binary"],
         "Target column 'nope' is not in"),
        (["--csv", "{csv}", "--target", "target", "--task", "binary"],
         "Binary target holds 3 classes"),
        (["--target", "target"], "--target and --task need --csv FILE"),
    ],
)
def test_bad_csv_prints_one_error_line_and_exits_2(capsys, tmp_path, argv, expected):
    csv = tmp_path / "table.csv"
    make_frame("multiclass", rows=30).to_csv(csv, index=False)
    argv = [arg.format(csv=csv) for arg in argv]
    assert common.study_main("demo", _never_called, accepts_csv=True, argv=argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and expected in err
    assert len(err.splitlines()) == 1


def test_csv_reaches_the_study_encoded_by_its_task(tmp_path):
    csv = tmp_path / "table.csv"
    make_frame("binary", rows=30).to_csv(csv, index=False)
    options = common.parse_options(
        "demo", ["--csv", str(csv), "--target", "target", "--task", "binary"],
        accepts_csv=True,
    )
    assert options.data.task == "binary"
    assert list(options.data.features.columns) == ["signal", "noise", "colour"]
    assert set(options.data.target) == {0, 1}
    assert options.data.class_names == ["no", "yes"]
    assert common.features_matrix(options.data.features).shape == (30, 6)


def test_defaults_three_seeds_one_with_quick():
    assert common.parse_options("demo", []).seeds == (0, 1, 2)
    assert common.parse_options("demo", ["--quick"]).seeds == (0,)
    assert str(common.parse_options("demo", []).output) == "runs/studies/demo"


def test_study_main_writes_the_four_files(tmp_path, capsys):
    code = common.study_main(
        "demo", lambda options: _result(), argv=["--quick", "--output", str(tmp_path)]
    )
    assert code == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(common.FILES)
    record = json.loads((tmp_path / "results.json").read_text())
    assert record["verdict"] == "SUPPORTED"
    assert record["seeds"] == [0]
    assert record["settings"] == {"optimizer": "sgd"}
    assert record["duration_s"] >= 0 and record["versions"]["keras"]
    assert pd.read_csv(tmp_path / "results.csv")["loss"][1] == 0.123456789
    summary = (tmp_path / "summary.md").read_text()
    assert "**Verdict: SUPPORTED**" in summary
    assert "| 1 | 0.1235 |" in summary and "![demo](figure.png)" in summary
    assert "demo: SUPPORTED" in capsys.readouterr().out


def test_write_study_refuses_an_unknown_verdict(tmp_path):
    options = common.StudyOptions(seeds=(0,), quick=True, output=tmp_path)
    with pytest.raises(ValueError, match="received verdict='MAYBE'"):
        common.write_study(_result("MAYBE"), options, "demo")


def test_a_study_that_needs_tensorflow_names_the_active_backend(monkeypatch):
    monkeypatch.setattr(common.keras.backend, "backend", lambda: "jax")
    with pytest.raises(TemplateError, match="active Keras backend is 'jax'"):
        common.require_tensorflow_backend("vanishing_gradients")


@pytest.mark.parametrize("study", ["batch_size", "optimizers", "sensitivity"])
@pytest.mark.parametrize("case", ["missing file", "missing target column"])
def test_each_csv_study_rejects_a_bad_csv_before_training(capsys, tmp_path, csv_for, study, case):
    module = importlib.import_module(f"studies.{study}")
    csv, target = {"missing file": (str(tmp_path / "nope.csv"), "target"),
                   "missing target column": (csv_for("binary"), "label")}[case]
    argv = ["--csv", csv, "--target", target, "--task", "binary", "--output", str(tmp_path / "out")]
    assert module.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and len(err.splitlines()) == 1
    assert (f"'{csv}' does not exist" if case == "missing file" else "'label' is not in") in err
    assert not (tmp_path / "out").exists()


def test_studies_choose_tensorflow_unless_keras_backend_says_otherwise(monkeypatch):
    # Importing `studies` sets KERAS_BACKEND before the templates pick the kit's backend;
    # `python -m studies` hands it to every study's process.
    monkeypatch.delenv("KERAS_BACKEND", raising=False)
    importlib.reload(studies)
    assert os.environ["KERAS_BACKEND"] == "tensorflow"
    monkeypatch.setenv("KERAS_BACKEND", "jax")
    importlib.reload(studies)
    assert os.environ["KERAS_BACKEND"] == "jax"
