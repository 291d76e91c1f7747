"""Study 3, quick: a batch step costs more than a mini-batch step; one row's gradient is noisy."""

import json

import pandas as pd
import pytest

from studies import common, gradient_descent_modes


@pytest.fixture(scope="module")
def summary(tmp_path_factory):
    output = tmp_path_factory.mktemp("gradient_descent_modes")
    assert gradient_descent_modes.main(["--quick", "--output", str(output)]) == 0
    assert sorted(p.name for p in output.iterdir()) == sorted(common.FILES)
    assert json.loads((output / "results.json").read_text())["verdict"] in common.VERDICTS
    table = pd.read_csv(output / "results.csv")
    return table[table.tuned].set_index("mode")


def test_a_batch_step_costs_more_than_a_mini_batch_step(summary):
    # 1024 rows against 32 per step.
    assert summary.ms_per_step_p25["batch"] > summary.ms_per_step_p25["minibatch"]


def test_single_rows_point_less_along_the_full_gradient(summary):
    cosines = summary.cosine_init
    assert cosines["batch"] == pytest.approx(1.0, abs=1e-4)
    assert cosines["stochastic"] < cosines["minibatch"] < cosines["batch"]
