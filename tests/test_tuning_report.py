"""`report.md` prints human-sized numbers; the JSON files keep them in full."""

import json
import re

from templates.artifacts import write_json
from tuning.report import report_markdown

LEARNING_RATE = 0.00040684306656026695
MEMBERS = [
    {"trial": "07", "score": 0.0812345678901,
     "hyperparameters": {"learning_rate": LEARNING_RATE, "optimizer": "adam", "width": 64,
                         "dropout": 0.17612345, "epochs": 57}},
    {"trial": "02", "score": 0.0912345678901,
     "hyperparameters": {"learning_rate": 0.0123456789, "optimizer": "sgd", "width": 188,
                         "dropout": 0.0, "epochs": 120}},
]


def report():
    return report_markdown(
        "binary", {"accuracy": 0.9736842105263158, "auc": 0.99603174603},
        {"linear": {"accuracy": 0.9824561403508771, "auc": 0.9953703703}},
        {"learning_rate": 0.61234, "width": 0.38766}, MEMBERS, trials={"COMPLETED": 2})


def test_tables_show_four_significant_digits():
    text = report()
    assert "| tuned network | 0.9737 | 0.996 |" in text
    assert "| linear | 0.9825 | 0.9954 |" in text
    assert "| 07 | 0.08123 | 4.068e-4 | adam | 64 | 0.1761 | 57 |" in text
    assert "| 02 | 0.09123 | 0.01235 | sgd | 188 | 0 | 120 |" in text
    assert "Tuned accuracy minus best baseline: -0.008772." in text


def test_no_number_in_the_report_has_more_than_four_significant_digits():
    numbers = re.findall(r"\d+\.\d+", report())
    digits = {number: len(number.replace(".", "").lstrip("0")) for number in numbers}
    assert numbers and max(digits.values()) <= 4, digits


def test_the_json_files_keep_full_precision(tmp_path):
    write_json({**MEMBERS[0], "ensemble": MEMBERS}, tmp_path / "best_hyperparameters.json")
    saved = json.loads((tmp_path / "best_hyperparameters.json").read_text())
    assert saved["hyperparameters"]["learning_rate"] == LEARNING_RATE
    assert "0.00040684306656026695" in (tmp_path / "best_hyperparameters.json").read_text()
