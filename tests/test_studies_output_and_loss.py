"""Study 7, quick: OutputLossCheck flags every wrong output/loss pairing and no right one."""

import json

import numpy as np
import pandas as pd
import pytest

from studies import common, output_and_loss


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    output = tmp_path_factory.mktemp("output_and_loss")
    assert output_and_loss.main(["--quick", "--output", str(output)]) == 0
    return output


def test_writes_the_four_files_with_a_verdict(quick_run):
    assert sorted(p.name for p in quick_run.iterdir()) == sorted(common.FILES)
    record = json.loads((quick_run / "results.json").read_text())
    assert record["verdict"] in common.VERDICTS
    assert record["settings"]["optimizer"] == "Adam"


def test_check_flags_every_wrong_pairing_and_no_right_one(quick_run):
    table = pd.read_csv(quick_run / "results.csv")
    assert len(table) == len(output_and_loss.PAIRINGS)
    assert (table.flagged == ~table.right).all(), table[["pairing", "flagged"]]


def test_one_unit_softmax_predicts_a_single_class(quick_run):
    table = pd.read_csv(quick_run / "results.csv").set_index("pairing")
    # Softmax over one unit outputs 1.0 whatever the input.
    assert table.loc["softmax(1 unit) + BCE", "calibration_error"] > 0.3


def test_logits_are_read_through_the_sigmoid():
    pairing = output_and_loss.PAIRINGS[2]
    assert pairing.from_logits and pairing.activation is None
    p = output_and_loss.probabilities(pairing, np.array([[0.0], [100.0]]))
    np.testing.assert_allclose(p, [0.5, 1 - 1e-7])
