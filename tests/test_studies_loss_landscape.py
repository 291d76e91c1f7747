"""Study 8, quick: exact gradient steps stay on a saddle point, noisy ones escape."""

import json

import numpy as np
import pandas as pd
import pytest

from studies import common, loss_landscape


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    output = tmp_path_factory.mktemp("loss_landscape")
    assert loss_landscape.main(["--quick", "--output", str(output)]) == 0
    return output


def test_writes_the_four_files_with_a_verdict(quick_run):
    assert sorted(p.name for p in quick_run.iterdir()) == sorted(common.FILES)
    record = json.loads((quick_run / "results.json").read_text())
    assert record["verdict"] in common.VERDICTS
    assert record["settings"]["l2"] == 0 and record["settings"]["optimizer"] == "adam"


def test_exact_steps_stay_on_the_saddle_and_noisy_steps_escape(quick_run):
    saddle = pd.read_csv(quick_run / "results.csv").query("part == 'saddle' and start == '(0, 0)'")
    exact = saddle[saddle.gradient_noise == 0]
    noisy = saddle[saddle.gradient_noise > 0]
    assert (exact.final_y == 0).all() and (exact.final_f == 0).all()
    assert (noisy.final_y.abs() > 1).all() and (noisy.final_f < -0.9).all()


def test_exact_steps_from_the_stable_line_are_drawn_into_the_saddle():
    path = loss_landscape.saddle_descent((1.0, 0.0), steps=200, learning_rate=0.1, noise=0.0,
                                         seed=0)
    assert abs(path[-1, 0]) < 1e-6 and path[-1, 1] == 0


def test_filter_normalised_direction_matches_each_units_norm():
    weights = [np.arange(6, dtype=float).reshape(2, 3) + 1, np.ones(3)]
    direction = loss_landscape.filter_normalised_direction(weights, np.random.default_rng(0))
    np.testing.assert_allclose(np.linalg.norm(direction[0], axis=0),
                               np.linalg.norm(weights[0], axis=0))
    assert not direction[1].any()
