"""Study 3, quick: each mode's steps are timed; one row's gradient is noisy."""

import json

import numpy as np
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


def test_each_mode_times_its_steps_of_its_own_number_of_rows(summary):
    # Whether a batch step costs more than a mini-batch step is the study's
    # finding (its verdict), not this test's: step times measured on a
    # loaded machine can come out either way.
    sizes = summary.batch_size
    assert sizes["batch"] > sizes["minibatch"] > sizes["stochastic"] == 1
    for column in ("ms_per_step_p25", "ms_per_step_median"):
        assert (summary[column] > 0).all() and np.isfinite(summary[column]).all(), column


def test_single_rows_point_less_along_the_full_gradient(summary):
    cosines = summary.cosine_init
    assert cosines["batch"] == pytest.approx(1.0, abs=1e-4)
    assert cosines["stochastic"] < cosines["minibatch"] < cosines["batch"]
