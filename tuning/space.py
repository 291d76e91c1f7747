"""The search space: the template's own `hp.*` declarations, and `--fix`.

A template declares its hyperparameters the KerasTuner way, beside the
layers they set (`hp.Float("learning_rate", 1e-4, 1e-1, sampling="log",
default=1e-3)` in its `build_model`, `hp.Choice("batch_size", ...)` in its
`fit_model`). `template_space` collects those declarations, so a copy of a
template that adds `hp.Boolean("batch_norm")` is searched over it too.
`--fix` then replaces a row's range by one value, a list of choices or a
narrower range:

    --fix optimizer=adam          one value (a `Fixed` hyperparameter)
    --fix activation=relu,tanh    a choice among these values
    --fix learning_rate=1e-3:1e-2 a narrower range (numeric settings only)

A fixed value may lie outside the declared range (e.g. `learning_rate=5`)
as long as it has the range's sign; a text choice must be one of the
declared values.

Example:

>>> space = narrow_space(["optimizer=adam", "width=16:32"])
>>> space["optimizer"].values, (space["width"].low, space["width"].high)
(('adam',), (16, 32))
"""

import dataclasses
import functools

import keras_tuner
import numpy as np
import pandas as pd

from templates.errors import TemplateError
from templates.recipe import TemplateData, value_rule
from tuning.trial_process import run_isolated

FIX_SYNTAX = "NAME=VALUE, NAME=A,B,C or NAME=LOW:HIGH"
_TYPES = keras_tuner.engine.hyperparameters


@dataclasses.dataclass(frozen=True)
class Hyperparameter:
    """One tunable setting, as the template declared it (and `--fix` narrowed it).

    Attributes:
        name: str, the hyperparameter's name in KerasTuner and the leaderboard.
        parse: callable turning command-line text into a value (`int`,
            `float`, `str` or `parse_bool`).
        valid: callable returning whether a parsed value is acceptable.
        rule: str, what `valid` accepts, for error messages.
        values: tuple, the choices of a categorical setting; one value means
            fixed. Empty for a numeric range.
        low: number, the range's lower end (numeric settings).
        high: number, the range's upper end.
        log: bool, whether the range is sampled on a log scale.
        default: the value of the first trial: the template's own default,
            so every search starts from a known configuration.
    """

    name: str
    parse: object
    valid: object
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
            if set(self.values) == {False, True} and self.parse is parse_bool:
                return hp.Boolean(self.name, default=bool(self.default))
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
            raise TemplateError(f"Received --fix {self.name}={text}; expected {self.rule}.")
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


def parse_bool(text):
    """Parses `true`/`false` (any case, or 1/0) for `--fix` of a boolean."""
    lowered = text.lower()
    if lowered in ("true", "1"):
        return True
    if lowered in ("false", "0"):
        return False
    raise ValueError(text)


def from_declared(declared):
    """Returns the `Hyperparameter` row of one KerasTuner declaration.

    Example:

    >>> row = from_declared(keras_tuner.engine.hyperparameters.Int("depth", 1, 4, default=2))
    >>> row.low, row.high, row.default, row.rule
    (1, 4, 2, 'an integer >= 1')
    """
    config = declared.get_config()
    words, test = value_rule(declared) or ("any value", lambda value: True)
    if isinstance(declared, _TYPES.Boolean):
        return Hyperparameter(declared.name, parse_bool, test, words, values=(False, True),
                              default=config["default"])
    if isinstance(declared, _TYPES.Fixed):
        value = config["value"]
        return Hyperparameter(declared.name, _parser_of([value]), test, words, values=(value,),
                              default=value)
    if isinstance(declared, _TYPES.Choice):
        values = tuple(config["values"])
        return Hyperparameter(declared.name, _parser_of(values), test, words, values=values,
                              default=declared.default)
    parse = int if isinstance(declared, _TYPES.Int) else float
    return Hyperparameter(declared.name, parse, test, words, low=config["min_value"],
                          high=config["max_value"], log=config.get("sampling") == "log",
                          default=declared.default)


def _parser_of(values):
    if all(isinstance(value, bool) for value in values):
        return parse_bool
    if all(isinstance(value, int) and not isinstance(value, bool) for value in values):
        return int
    if all(isinstance(value, (int, float)) and not isinstance(value, bool) for value in values):
        return float
    return str


class _NoTraining:
    """Stands in for a model in `fit_model`, to collect its declarations without training."""

    def fit(self, *args, **kwargs):
        return None


def _declarations(template, data):
    """The template's `hp` config after its `build_model` and `fit_model` ran once."""
    from templates.training import TrainingConfig

    hp = keras_tuner.HyperParameters()
    template.build_model(hp, data)
    template.fit_model(hp, _NoTraining(), data, TrainingConfig(), progress=False)
    return hp.get_config()


def template_space(template, data):
    """Collects the hyperparameters a template declares, in the order it declares them.

    The template's `build_model` and `fit_model` run once with fresh
    `keras_tuner.HyperParameters` (in a child process where the platform
    allows it, so that this process does not start TensorFlow's runtime and
    can still fork its trials; see `tuning.trial_process`).

    Args:
        template: a template module (`build_model(hp, data)`,
            `fit_model(hp, model, data, config, ...)`).
        data: `templates.recipe.TemplateData` the model is built on.

    Returns:
        dict mapping each name to its `Hyperparameter`.

    Raises:
        TemplateError: if the template declares a conditional hyperparameter,
            which the search space here cannot hold.
    """
    try:
        config = run_isolated(_declarations, template, data)
    except TemplateError:
        raise
    except Exception as error:  # noqa: BLE001 - a user's template may raise anything
        raise TemplateError(
            f"Building the template's model to read its hyperparameters failed: "
            f"{type(error).__name__}: {error}".splitlines()[0]
        ) from None
    declared = keras_tuner.HyperParameters.from_config(config)
    conditional = [hp.name for hp in declared.space if hp.conditions]
    if conditional:
        raise TemplateError(
            f"The template declares conditional hyperparameters {conditional}; expected "
            "hyperparameters declared unconditionally (the same ones in every trial)."
        )
    return {hp.name: from_declared(hp) for hp in declared.space}


@functools.cache
def bundled_space(task="binary"):
    """The space of the bundled template of `task`, declared on a few rows."""
    from templates.model import template_module
    from templates.tasks import get_task

    rows = np.arange(8)
    frame = pd.DataFrame({"x": rows.astype(float)})
    labels = get_task(task).encode_labels({"regression": rows.astype(float), "binary": rows % 2,
                                           "multiclass": rows % 3}[task])
    from templates.data import Split

    data = TemplateData(task, frame, labels, Split(train=rows, validation=rows[:2], test=rows[:0]))
    return template_space(template_module(task), data)


def narrow_space(fixes=(), space=None):
    """Returns `space` with the `--fix` arguments applied.

    Args:
        fixes: iterable of str, each `NAME=VALUE`, `NAME=A,B,C` or
            `NAME=LOW:HIGH`; a later fix of the same name wins.
        space: dict of `Hyperparameter` from `template_space`. Defaults to
            the bundled binary template's space.

    Returns:
        dict mapping each name to its `Hyperparameter`.

    Raises:
        TemplateError: for an unknown name, a malformed fix, or a value the
            template would reject.
    """
    base = dict(bundled_space() if space is None else space)
    narrowed = dict(base)
    for fix in fixes:
        name, equals, text = fix.partition("=")
        if not equals or not text.strip():
            raise TemplateError(f"Received --fix '{fix}'; expected {FIX_SYNTAX}.")
        name = name.strip()
        if name not in base:
            raise TemplateError(
                f"Received --fix '{fix}'; unknown hyperparameter '{name}', expected "
                f"one of: {', '.join(base)}."
            )
        narrowed[name] = base[name].narrowed(text)
    return narrowed


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
