"""Human-sized numbers for what a person reads: progress lines, reports, tables.

A run's losses and metrics are floats such as `0.00040684306656026695`;
`format_number` prints them with 4 significant digits, switching to
scientific notation when a number is very small or very large. Files meant
for programs (JSON, CSV) keep full precision: format only what is printed.

Example:

>>> format_number(0.00040684306656026695)
'4.068e-4'
>>> format_number(0.912280701754386)
'0.9123'
>>> format_number(25.0)
'25'
>>> format_number(12345.678), format_number(1234567.0)
('12350', '1.235e6')
>>> format_number(float("nan")), format_number(float("-inf")), format_number(None)
('nan', '-inf', 'n/a')
"""

import math
import numbers

# Below this magnitude (and from `LARGE` up) a number is written in
# scientific notation: 0.0004068 is harder to read than 4.068e-4.
SMALL = 1e-3
LARGE = 1e5


def format_number(value, digits=4):
    """Returns `value` as a short string with `digits` significant digits.

    Integers (and floats that hold one, up to `LARGE`) print without a
    decimal point; magnitudes below `1e-3` or from `1e5` up print in
    scientific notation with a short exponent (`4.068e-4`); NaN and
    infinities print as `nan`, `inf` and `-inf`; `None` (a missing value) as
    `n/a`. Anything else that is not a real number prints with `str`.

    Args:
        value: the number: a Python or NumPy int or float, or `None`.
        digits: int, significant digits. Defaults to `4`.

    Returns:
        str.

    Example:

    >>> format_number(0.5), format_number(-0.012345), format_number(12)
    ('0.5', '-0.01235', '12')
    >>> format_number(3.0e-12), format_number(0.0), format_number(99999.9)
    ('3e-12', '0', '1e5')
    >>> format_number(0.00040684306656026695, digits=3)
    '4.07e-4'
    """
    if value is None:
        return "n/a"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return str(value)
    if isinstance(value, numbers.Integral) and abs(value) < LARGE:
        return str(int(value))
    value = float(value)
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    rounded = float(f"{value:.{digits}g}")
    if rounded == 0 or SMALL <= abs(rounded) < LARGE:
        # From 10 ** digits up, `g` would switch to scientific notation.
        return f"{rounded:.{digits}g}" if abs(rounded) < 10**digits else str(int(rounded))
    mantissa, exponent = f"{rounded:.{digits - 1}e}".split("e")
    mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{mantissa}e{int(exponent)}"


def format_signed(value, digits=4):
    """Like `format_number`, with a sign in front of positive values too.

    Example:

    >>> format_signed(0.0123456), format_signed(-0.5), format_signed(0.0)
    ('+0.01235', '-0.5', '+0')
    """
    text = format_number(value, digits)
    return text if text.startswith("-") or text in ("nan", "n/a") else f"+{text}"
