"""Study 1, quick: sigmoid's gradient shrinks layer after layer, ReLU+He's does not."""

import json

import pandas as pd
import pytest

from studies import common, vanishing_gradients


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    output = tmp_path_factory.mktemp("vanishing_gradients")
    assert vanishing_gradients.main(["--quick", "--output", str(output)]) == 0
    return output


def _slope(table, activation, initializer):
    rows = table[(table.activation == activation) & (table.initializer == initializer)
                 & table.trained]
    return float(rows.slope_init.mean())


def test_writes_the_four_files_with_a_verdict(quick_run):
    assert sorted(p.name for p in quick_run.iterdir()) == sorted(common.FILES)
    record = json.loads((quick_run / "results.json").read_text())
    assert record["verdict"] in common.VERDICTS
    assert record["settings"]["optimizer"] == "SGD" and record["settings"]["l2"] == 0.0


def test_sigmoid_gradient_shrinks_steeply_per_layer(quick_run):
    table = pd.read_csv(quick_run / "results.csv")
    # Theory: about log10(0.25) = -0.6 per layer.
    assert _slope(table, "sigmoid", "glorot_uniform") < -0.4


def test_relu_with_he_keeps_the_gradient_flat(quick_run):
    table = pd.read_csv(quick_run / "results.csv")
    assert abs(_slope(table, "relu", "he_normal")) < 0.15


def test_sigmoid_first_layer_barely_moves(quick_run):
    table = pd.read_csv(quick_run / "results.csv")
    sigmoid = table[(table.activation == "sigmoid") & table.trained].iloc[0]
    relu = table[(table.activation == "relu") & table.trained].iloc[0]
    sigmoid_ratio = sigmoid.moved_first / sigmoid.moved_last_hidden
    relu_ratio = relu.moved_first / relu.moved_last_hidden
    assert sigmoid_ratio < 0.1 < relu_ratio
