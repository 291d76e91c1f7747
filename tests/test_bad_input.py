"""Bad input ends with one line `error: ...` naming the value, exit 2, nothing written."""

import numpy as np
import pandas as pd
import pytest

from templates.cli import run_template
from templates.predict import main as predict_main

from conftest import make_frame, run_module


def write(tmp_path, name, frame):
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return str(path)


def with_target(task, target):
    frame = make_frame(task, rows=60)
    frame["target"] = target
    return frame


def prepare_case(case, tmp_path):
    """Returns `(task, argv)` for a named bad input."""
    good = write(tmp_path, "good.csv", make_frame("binary", rows=60))
    data = ["--csv", good, "--target", "target"]
    cases = {
        "missing file": ("binary", ["--csv", str(tmp_path / "nope.csv"), "--target", "target"]),
        "empty file": ("binary", ["--csv", str(tmp_path / "empty.csv"), "--target", "target"]),
        "target column absent": ("binary", ["--csv", good, "--target", "label"]),
        "test csv columns differ": ("binary", [*data, "--test-csv", write(
            tmp_path, "test.csv", make_frame("binary").drop(columns="noise"))]),
        "non-numeric regression target": ("regression", ["--csv", write(
            tmp_path, "text.csv", with_target("regression", ["1.5"] * 59 + ["abc"])), "--target", "target"]),
        "non-finite regression target": ("regression", ["--csv", write(
            tmp_path, "inf.csv", with_target("regression", [1.0] * 59 + [np.inf])), "--target", "target"]),
        "binary with three classes": ("binary", ["--csv", write(
            tmp_path, "b.csv", with_target("binary", ["a", "b", "c"] * 20)), "--target", "target"]),
        "single class": ("multiclass", ["--csv", write(
            tmp_path, "m.csv", with_target("multiclass", ["a"] * 60)), "--target", "target"]),
        "all-empty feature column": ("binary", ["--csv", write(
            tmp_path, "e.csv", make_frame("binary", rows=60).assign(blank=np.nan)), "--target", "target"]),
        "unknown optimizer": ("binary", [*data, "--optimizer", "adagrad"]),
        "unknown activation": ("binary", [*data, "--activation", "swish"]),
        "batch size zero": ("binary", [*data, "--batch-size", "0"]),
        "batch size negative": ("binary", [*data, "--batch-size", "-4"]),
        "batch size larger than the training set": ("binary", [*data, "--batch-size", "1000"]),
        "malformed hidden": ("binary", [*data, "--hidden", "64,abc"]),
        "hidden layers of different widths": ("binary", [*data, "--hidden", "64,32"]),
        "negative learning rate": ("binary", [*data, "--learning-rate", "-0.1"]),
        "target without csv": ("binary", ["--target", "target"]),
        "positive class not a label": ("binary", [*data, "--positive-class", "maybe"]),
    }
    (tmp_path / "empty.csv").write_text("")
    return cases[case]


EXPECTED_FRAGMENTS = {
    "missing file": "nope.csv' does not exist",
    "empty file": "empty.csv' is empty",
    "target column absent": "'label' is not in",
    "test csv columns differ": "missing 'noise'",
    "non-numeric regression target": "non-numeric value 'abc'",
    "non-finite regression target": "non-finite value inf",
    "binary with three classes": "templates.multiclass",
    "single class": "single class ['a']",
    "all-empty feature column": "'blank'",
    "unknown optimizer": "'adagrad'",
    "unknown activation": "'swish'",
    "batch size zero": "batch_size=0",
    "batch size negative": "batch_size=-4",
    "batch size larger than the training set": "batch_size=1000",
    "malformed hidden": "'64,abc'",
    "hidden layers of different widths": "hidden=[64, 32]; expected layers of one width",
    "negative learning rate": "learning_rate=-0.1; expected a number >= 0",
    "target without csv": "need --csv",
    "positive class not a label": "positive_class='maybe'",
}


@pytest.mark.parametrize("case", list(EXPECTED_FRAGMENTS))
def test_bad_input_prints_one_error_line_exits_2_and_writes_nothing(case, tmp_path, capsys):
    task, argv = prepare_case(case, tmp_path)
    output = tmp_path / "out"
    status = run_template(task, [*argv, "--output", str(output), "--epochs", "1", "--quiet"])
    err = capsys.readouterr().err
    assert status == 2
    assert err.count("\n") == 1 and err.startswith("error: ")
    assert EXPECTED_FRAGMENTS[case] in err
    assert not output.exists()


def test_the_target_error_lists_the_columns(tmp_path, capsys):
    task, argv = prepare_case("target column absent", tmp_path)
    run_template(task, [*argv, "--output", str(tmp_path / "out")])
    assert "'signal', 'noise', 'colour', 'target'" in capsys.readouterr().err


def test_from_the_shell_stderr_is_exactly_one_line_without_traceback(tmp_path):
    result = run_module("templates.binary", "--csv", tmp_path / "nope.csv", "--target", "y",
                        "--output", tmp_path / "out")
    assert result.returncode == 2
    assert result.stderr.splitlines() == [f"error: CSV file '{tmp_path / 'nope.csv'}' does not exist."]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("problem, fragment", [
    ("missing model", "does not exist"),
    ("missing column", "lacks 1 column(s)"),
])
def test_predict_reports_bad_input_in_one_line(problem, fragment, tmp_path, capsys, csv_for):
    model_dir = tmp_path / "run"
    csv = csv_for("regression")
    assert run_template("regression", ["--csv", csv, "--target", "target", "--hidden", "4",
                                       "--epochs", "1", "--output", str(model_dir), "--quiet"]) == 0
    capsys.readouterr()
    rows = pd.read_csv(csv).drop(columns="noise") if problem == "missing column" else pd.read_csv(csv)
    rows.to_csv(tmp_path / "rows.csv", index=False)
    model = model_dir / ("model.keras" if problem == "missing column" else "absent.keras")
    status = predict_main(["--model", str(model), "--csv", str(tmp_path / "rows.csv"),
                           "--output", str(tmp_path / "p.csv")])
    err = capsys.readouterr().err
    assert status == 2 and err.startswith("error: ") and fragment in err
    assert not (tmp_path / "p.csv").exists()
