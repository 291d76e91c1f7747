"""The search space: every tunable setting, its default range, and `--fix`.

Each setting is one `Hyperparameter` row of `SEARCH_SPACE`. `--fix` replaces
a row's range by one value, a list of choices or a narrower range:

    --fix optimizer=adam          one value (a `Fixed` hyperparameter)
    --fix activation=relu,tanh    a choice among these values
    --fix learning_rate=1e-3:1e-2 a narrower range (numeric settings only)

A fixed value may lie outside the default range (e.g. `learning_rate=5`) as
long as the template accepts it.

Example:

>>> space = narrow_space(["optimizer=adam", "width=16:32"])
>>> space["optimizer"].values, (space["width"].low, space["width"].high)
(('adam',), (16, 32))
"""

import dataclasses
import math
from typing import Callable

from templates.errors import TemplateError
from templates.model import ACTIVATION_INITIALIZERS, OPTIMIZERS
from templates.training import TrainingConfig

FIX_SYNTAX = "NAME=VALUE, NAME=A,B,C or NAME=LOW:HIGH"


@dataclasses.dataclass(frozen=True)
class Hyperparameter:
    """One tunable setting.

    Attributes:
        name: str, the hyperparameter's name in KerasTuner and the leaderboard.
        parse: callable turning command-line text into a value (`int`,
            `float` or `str`).
        valid: callable returning whether a parsed value is acceptable.
        rule: str, what `valid` accepts, for error messages.
        values: tuple, the choices of a categorical setting; one value means
            fixed. Empty for a numeric range.
        low: number, the range's lower end (numeric settings).
        high: number, the range's upper end.
        log: bool, whether the range is sampled on a log scale.
        default: the value of the first trial, when the range allows it: the
            templates' own default, so every search starts from a known good
            configuration.
    """

    name: str
    parse: Callable
    valid: Callable
    rule: str
    values: tuple = ()
    low: "float | None" = None
    high: "float | None" = None
    log: bool = False
    default: object = None

    @property
    def fixed(self):
        """Whether the setting holds one value only."""
        return len(self.values) == 1

    def declare(self, hp):
        """Registers the setting in a `keras_tuner.HyperParameters` and returns its value."""
        if self.fixed:
            return hp.Fixed(self.name, self.values[0])
        if self.values:
            default = self.default if self.default in self.values else None
            return hp.Choice(self.name, list(self.values), default=default)
        sampling = "log" if self.log else "linear"
        in_range = self.default is not None and self.low <= self.default <= self.high
        default = self.default if in_range else None
        if self.parse is int:
            return hp.Int(self.name, self.low, self.high, sampling=sampling, default=default)
        return hp.Float(self.name, self.low, self.high, sampling=sampling, default=default)

    def narrowed(self, text):
        """Returns this setting restricted as `--fix NAME=text` says."""
        if ":" in text:
            return self._range(text)
        values = tuple(self._value(part) for part in text.split(","))
        return dataclasses.replace(self, values=tuple(dict.fromkeys(values)))

    def _value(self, text):
        try:
            value = self.parse(text.strip())
        except ValueError:
            value = None
        if value is None or not self.valid(value):
            raise TemplateError(
                f"Received --fix {self.name}={text}; expected {self.rule}."
            )
        return value

    def _range(self, text):
        if self.low is None:
            raise TemplateError(
                f"Received --fix {self.name}={text}; {self.name} is a choice, "
                f"expected one value or a list, e.g. {self.name}={','.join(map(str, self.values[:2]))}."
            )
        low, _, high = text.partition(":")
        low, high = self._value(low), self._value(high)
        if not low < high or (self.log and low <= 0):
            raise TemplateError(
                f"Received --fix {self.name}={text}; expected LOW:HIGH with LOW < HIGH"
                + (" and LOW > 0 (log scale)." if self.log else ".")
            )
        return dataclasses.replace(self, low=low, high=high)


# The templates' defaults: the first trial of every search.
_TEMPLATE = TrainingConfig()


def _finite(value):
    return math.isfinite(value)


SEARCH_SPACE = {
    hyperparameter.name: hyperparameter
    for hyperparameter in (
        Hyperparameter("learning_rate", float, lambda v: _finite(v) and v > 0,
                       "a number > 0", low=1e-4, high=1e-1, log=True,
                       default=_TEMPLATE.learning_rate),
        Hyperparameter("optimizer", str, lambda v: v in OPTIMIZERS,
                       f"one of {', '.join(OPTIMIZERS)}", values=tuple(OPTIMIZERS),
                       default=_TEMPLATE.optimizer),
        Hyperparameter("activation", str, lambda v: v in ACTIVATION_INITIALIZERS,
                       f"one of {', '.join(ACTIVATION_INITIALIZERS)}",
                       values=tuple(ACTIVATION_INITIALIZERS), default=_TEMPLATE.activation),
        Hyperparameter("depth", int, lambda v: v >= 1, "an integer >= 1", low=1, high=4,
                       default=len(_TEMPLATE.hidden)),
        Hyperparameter("width", int, lambda v: v >= 1, "an integer >= 1",
                       low=16, high=256, log=True, default=_TEMPLATE.hidden[0]),
        Hyperparameter("dropout", float, lambda v: 0 <= v < 1, "a number with 0 <= dropout < 1",
                       low=0.0, high=0.5, default=_TEMPLATE.dropout),
        Hyperparameter("l2", float, lambda v: _finite(v) and v >= 0, "a number >= 0",
                       low=1e-6, high=1e-1, log=True, default=_TEMPLATE.l2),
        Hyperparameter("batch_size", int, lambda v: v >= 1, "an integer >= 1",
                       values=(32, 64, 128, 256), default=_TEMPLATE.batch_size),
    )
}


def narrow_space(fixes=()):
    """Returns `SEARCH_SPACE` with the `--fix` arguments applied.

    Args:
        fixes: iterable of str, each `NAME=VALUE`, `NAME=A,B,C` or
            `NAME=LOW:HIGH`; a later fix of the same name wins.

    Returns:
        dict mapping each name to its `Hyperparameter`.

    Raises:
        TemplateError: for an unknown name, a malformed fix, or a value the
            template would reject.
    """
    space = dict(SEARCH_SPACE)
    for fix in fixes:
        name, equals, text = fix.partition("=")
        if not equals or not text.strip():
            raise TemplateError(f"Received --fix '{fix}'; expected {FIX_SYNTAX}.")
        name = name.strip()
        if name not in SEARCH_SPACE:
            raise TemplateError(
                f"Received --fix '{fix}'; unknown hyperparameter '{name}', expected "
                f"one of: {', '.join(SEARCH_SPACE)}."
            )
        space[name] = SEARCH_SPACE[name].narrowed(text)
    return space


def describe(space):
    """Returns the `--fix` arguments that rebuild `space`, for comparing searches.

    Example:

    >>> describe(narrow_space(["optimizer=adam"]))["optimizer"]
    'adam'
    """
    return {
        name: ",".join(map(str, h.values)) if h.values else f"{h.low}:{h.high}"
        for name, h in space.items()
    }
