"""`format_number`: about 4 significant digits for what a person reads."""

import numpy as np
import pytest

from templates.numbers import format_number, format_signed


@pytest.mark.parametrize("value, text", [
    (0.00040684306656026695, "4.068e-4"),
    (0.912280701754386, "0.9123"),
    (0.001, "0.001"),
    (0.00099999, "0.001"),
    (25.0, "25"),
    (12345.678, "12350"),
    (123456.0, "1.235e5"),
    (-0.0123456, "-0.01235"),
    (0.0, "0"),
    (7, "7"),
    (np.float32(0.1), "0.1"),
    (np.float64(2.5e-7), "2.5e-7"),
    (np.int64(300), "300"),
    (float("nan"), "nan"),
    (float("inf"), "inf"),
    (-float("inf"), "-inf"),
    (None, "n/a"),
    ("relu", "relu"),
    (True, "True"),
])
def test_formats_with_four_significant_digits(value, text):
    assert format_number(value) == text


def test_digits_sets_the_significant_digits():
    assert format_number(0.00040684306656026695, digits=3) == "4.07e-4"
    assert format_number(2 / 3, digits=2) == "0.67"


def test_never_prints_more_than_the_significant_digits():
    for value in np.random.default_rng(0).lognormal(0, 8, size=500):
        mantissa = format_number(value).split("e")[0].replace("-", "").replace(".", "")
        assert len(mantissa.lstrip("0")) <= 5  # 4 digits, plus zeros before the point


def test_format_signed_shows_the_sign_of_a_difference():
    assert [format_signed(v) for v in (0.0123456, -0.5, 0.0)] == ["+0.01235", "-0.5", "+0"]
