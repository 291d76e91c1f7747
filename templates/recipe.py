"""The steps a template calls, one per step: data, hyperparameters, evaluation.

A template (`templates.binary`, ...) reads top to bottom and calls this
module where the work is plumbing that nobody edits per model:

1. `prepare_data`: checks the rows and settings, encodes the labels as the
   task table says and splits the rows (stratified for classification, or
   a separate test set). Every mistake in data or settings is reported
   here, before anything is trained or written.
2. `hyperparameters`: the values the command line or `TrainingConfig` fix,
   checked against what the template's `hp.*` calls declare.
3. `finish`: records in the model what it is for (`templates.layers.ModelInfo`),
   then evaluates it on the validation and test rows.

Example:

>>> from templates import multiclass
>>> from templates.data import load_bundled
>>> from templates.training import TrainingConfig
>>> data = prepare_data("multiclass", *load_bundled("wine"), config=TrainingConfig())
>>> model = multiclass.build_model(hyperparameters(TrainingConfig(), data), data)
>>> model.get_layer("output").activation.__name__, data.class_names
('softmax', ['0', '1', '2'])
"""

import dataclasses
import math
import warnings

import keras
import keras_tuner
import numpy as np
import pandas as pd

from templates import batches, preprocessing, training
from templates import data as data_module
from templates.errors import TemplateError
from templates.layers import ModelInfo
from templates.tasks import get_task
from templates.training import TrainingConfig

EVALUATION_BATCH_SIZE = 1024
# Frames up to this many cells are converted for the model once, whole
# (`TemplateData.inputs`): a copy of at most 20 MB of float32.
CONVERTED_MAX_CELLS = 5_000_000
MODEL_INFO_LAYER = "model_info"


@dataclasses.dataclass
class TrainingRun:
    """What a template's `train` returns.

    Attributes:
        model: the trained `keras.Model` (takes a dict of raw columns).
        history: dict of per-epoch losses and metrics (`History.history`).
        metrics: dict ready for `metrics.json`: task, Keras backend, class
            names, best epoch, settings, hyperparameters, row counts, and
            test metrics under `"test"`.
    """

    model: keras.Model
    history: dict
    metrics: dict


@dataclasses.dataclass
class TemplateData:
    """The prepared rows of a run, as a template's `build_model` and `fit_model` use them.

    Attributes:
        task: str, the task's name.
        frame: DataFrame of all rows' raw feature columns.
        labels: `templates.labels.Labels` of all rows.
        split: `templates.data.Split` indexing `frame`.
    """

    task: str
    frame: pd.DataFrame
    labels: object
    split: data_module.Split
    # Every row of `frame` converted for the model (`frame_to_inputs`), by
    # column kinds and vocabularies; shared with the copies `with_rows`
    # makes (a trial's folds), so that each `inputs` call only picks rows.
    converted: dict = dataclasses.field(default_factory=dict, repr=False, compare=False)

    @property
    def class_names(self):
        """list of str, one name per class; empty for regression."""
        return self.labels.class_names

    @property
    def num_classes(self):
        """int, the number of classes (0 for regression)."""
        return len(self.labels.class_names)

    @property
    def one_hot(self):
        """bool, whether the labels are one-hot rows (multi-class from Python only)."""
        return self.labels.one_hot

    @property
    def train_rows(self):
        """int, the number of training rows."""
        return len(self.split.train)

    @property
    def target_mean(self):
        """float, the training rows' mean target (regression)."""
        return float(np.mean(self.labels.values[self.split.train]))

    @property
    def target_std(self):
        """float, the training rows' target standard deviation (regression; 1 if constant)."""
        return float(np.std(self.labels.values[self.split.train])) or 1.0

    def kinds(self):
        """`{column: dtype}` of the training rows (`templates.preprocessing.column_kinds`)."""
        return preprocessing.column_kinds(self.frame.iloc[self.split.train])

    def vocabularies(self):
        """`{column: vocabulary}` of the training rows' text columns."""
        return preprocessing.text_vocabularies(self.frame.iloc[self.split.train])

    def preprocessing(self):
        """Builds the model's inputs and preprocessed features, adapted on the training rows.

        Returns:
            `(inputs, features)`: a dict of `keras.Input` keyed by raw column
            name, and the feature tensor (numbers normalised with missing
            values imputed, text one-hot encoded) the network starts from.
        """
        inputs, features = preprocessing.build_preprocessing(self.frame.iloc[self.split.train])
        info = ModelInfo(self.task, self.class_names, name=MODEL_INFO_LAYER)
        return inputs, info(features)

    def inputs(self, rows):
        """`(inputs, targets)` of the rows at positions `rows` of `frame`."""
        kinds, vocabularies = self.kinds(), self.vocabularies()
        every_row = self._every_row(kinds, vocabularies)
        if every_row is None:
            inputs = preprocessing.frame_to_inputs(self.frame.iloc[rows], kinds, vocabularies)
        else:
            inputs = {name: values[np.asarray(rows, dtype=int)] for name, values in every_row.items()}
        return inputs, self.labels.values[rows]

    def _every_row(self, kinds, vocabularies):
        """`frame_to_inputs` of every row, kept in `converted`; `None` for a large or unconvertible frame."""
        if self.frame.size > CONVERTED_MAX_CELLS:
            return None
        key = (tuple(kinds.items()),
               tuple((name, tuple(vocabulary)) for name, vocabulary in vocabularies.items()))
        if key not in self.converted:
            try:
                self.converted[key] = preprocessing.frame_to_inputs(self.frame, kinds, vocabularies)
            except TemplateError:  # a bad value in other rows: each call converts its own rows
                self.converted[key] = None
        return self.converted[key]

    def training_batches(self, batch_size, seed=0):
        """The training rows in batches reshuffled every epoch (`templates.batches.make_batches`)."""
        return batches.make_batches(*self.inputs(self.split.train), batch_size=batch_size,
                                    shuffle=True, seed=seed)

    def validation_batches(self):
        """The validation rows in batches, or `None` when there are none."""
        if not len(self.split.validation):
            return None
        return batches.make_batches(*self.inputs(self.split.validation),
                                    batch_size=EVALUATION_BATCH_SIZE)

    def with_rows(self, train, validation=()):
        """The same data with other training (and validation) rows, e.g. a fold."""
        split = data_module.Split(train=np.asarray(train), validation=np.asarray(validation, dtype=int),
                                  test=self.split.test)
        return dataclasses.replace(self, split=split)


def _encode_together(spec, target, test_target, positive_class):
    """Encodes train and test labels in one pass so class indices agree."""
    if test_target is not None:
        combined = np.concatenate([np.asarray(target), np.asarray(test_target)])
        target = combined if combined.ndim == 2 else pd.Series(
            combined, name=getattr(target, "name", None))
    return spec.encode_labels(target, positive_class=positive_class)


def prepare(task, features, target, *, test_features=None, test_target=None,
            config=TrainingConfig()):
    """Checks the data and settings and splits the rows; no training yet.

    Returns:
        `(frame, labels, split, batch_size)`, where `frame` holds all rows
        (training rows first, then any separate test rows), `split` indexes
        into it, and `batch_size` is the batch size `config.gd` fixes
        (`None`: the template's own).
    """
    spec = get_task(task)
    config.check()
    frame = data_module.as_frame(features)
    if len(frame) != len(target):
        raise TemplateError(
            f"Received {len(frame)} feature rows but {len(target)} labels; expected one label per row."
        )
    data_module.check_features(frame, "the training data")
    if (test_features is None) != (test_target is None):
        raise TemplateError("Expected both test_features and test_target, or neither.")
    labels = _encode_together(spec, target, test_target, config.positive_class)
    if test_features is None:
        split = data_module.split_rows(
            len(frame), labels.values if spec.stratify else None,
            test_fraction=config.test_fraction,
            validation_fraction=config.validation_fraction, seed=config.seed,
        )
    else:
        test_frame = data_module.as_frame(test_features)
        data_module.check_same_columns(list(frame.columns), list(test_frame.columns), "the test data")
        fit_split = data_module.split_rows(
            len(frame), labels.values[: len(frame)] if spec.stratify else None,
            test_fraction=0, validation_fraction=config.validation_fraction, seed=config.seed,
        )
        split = data_module.Split(
            train=fit_split.train, validation=fit_split.validation,
            test=np.arange(len(frame), len(frame) + len(test_frame)),
        )
        frame = pd.concat([frame, test_frame[frame.columns]], ignore_index=True)
    data_module.check_features(frame.iloc[split.train], "the training split")
    batch_size = None
    if config.gd != "minibatch" or config.batch_size is not None:
        batch_size = training.batch_size_for(config.gd, config.batch_size or 1, len(split.train))
    return frame, labels, split, batch_size


def prepare_data(task, features, target, *, test_features=None, test_target=None,
                 config=TrainingConfig()):
    """Checks, encodes and splits the rows of a run (see `prepare`).

    Args:
        task: str, `regression`, `binary` or `multiclass`.
        features: DataFrame or 2-D array of raw feature columns (numbers,
            strings, missing values).
        target: labels, one per row (see `templates.labels`).
        test_features: optional DataFrame of a separate test set with the
            same columns; otherwise a seeded share of the rows is held out.
        test_target: labels of the separate test set.
        config: `TrainingConfig`.

    Returns:
        `TemplateData`.
    """
    frame, labels, split, _ = prepare(task, features, target, test_features=test_features,
                                      test_target=test_target, config=config)
    return TemplateData(task, frame, labels, split)


class FixedHyperParameters(keras_tuner.HyperParameters):
    """`keras_tuner.HyperParameters` whose declarations return preset values, checked.

    A template's `hp.Choice("optimizer", [...])` returns the preset value
    when one is given, else the declared default; a preset value outside
    the declared choices raises `TemplateError` before any layer is built.
    Numbers may lie outside the declared range (the range is the search's)
    as long as they have its sign.

    Args:
        values: dict `{name: value}` of the preset values.

    Example:

    >>> hp = FixedHyperParameters({"optimizer": "sgd"})
    >>> hp.Choice("optimizer", ["sgd", "adam"], default="adam"), hp.Float("l2", 0.0, 1.0, default=0.1)
    ('sgd', 0.1)
    """

    def __init__(self, values=None):
        super().__init__()
        self.preset = dict(values or {})
        self.values.update(self.preset)

    def Choice(self, name, values, *args, **kwargs):
        return self._checked(name, super().Choice(name, values, *args, **kwargs))

    def Int(self, name, *args, **kwargs):
        return self._checked(name, super().Int(name, *args, **kwargs))

    def Float(self, name, *args, **kwargs):
        return self._checked(name, super().Float(name, *args, **kwargs))

    def Boolean(self, name, *args, **kwargs):
        return self._checked(name, super().Boolean(name, *args, **kwargs))

    def _checked(self, name, value):
        if name in self.preset:
            declared = next(hp for hp in reversed(self.space) if hp.name == name)
            check_value(declared, value)
        return value

    def unused(self):
        """Names of preset values that no `hp.*` call declared."""
        return [name for name in self.preset if name not in {hp.name for hp in self.space}]


def value_rule(hyperparameter):
    """What a declared hyperparameter accepts: `(words, test)`, or `None` for anything.

    Choices of text accept one of their values, booleans a boolean; numbers
    (choices of numbers included) accept any value of the declared range's
    sign (an integer range from 1 up: integers >= 1), so a search's range
    does not limit a value fixed by hand: `l2=0` turns the penalty off.

    Example:

    >>> value_rule(keras_tuner.engine.hyperparameters.Float("l2", 0.0, 1.0))[0]
    'a number >= 0'
    """
    config = hyperparameter.get_config()
    values = config.get("values")
    if values is not None and not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                      for v in values):
        return "one of " + ", ".join(map(str, values)), lambda value: value in values
    if isinstance(hyperparameter, keras_tuner.engine.hyperparameters.Boolean):
        return "True or False", lambda value: isinstance(value, (bool, np.bool_))
    if isinstance(hyperparameter, keras_tuner.engine.hyperparameters.Fixed):
        return None
    numbers = values if values is not None else [config.get("min_value"), config.get("max_value")]
    if any(n is None for n in numbers):
        return None
    integer = isinstance(hyperparameter, keras_tuner.engine.hyperparameters.Int) or (
        values is not None and all(isinstance(v, int) for v in values))
    kind = "an integer" if integer else "a number"
    low = min(numbers)

    def finite(value):
        return isinstance(value, (int, float, np.number)) and not isinstance(value, bool) \
            and math.isfinite(value) and (not integer or float(value).is_integer())

    if low >= 1 and integer:
        return f"{kind} >= 1", lambda value: finite(value) and value >= 1
    if low >= 0:
        return f"{kind} >= 0", lambda value: finite(value) and value >= 0
    return kind, finite


def check_value(hyperparameter, value):
    """Raises `TemplateError` when `value` does not fit the declared `hyperparameter`.

    Example:

    >>> check_value(keras_tuner.engine.hyperparameters.Choice("optimizer", ["sgd"]), "adagrad")
    Traceback (most recent call last):
    ...
    templates.errors.TemplateError: Received optimizer='adagrad'; expected one of sgd.
    """
    rule = value_rule(hyperparameter)
    if rule is not None and not rule[1](value):
        raise TemplateError(f"Received {hyperparameter.name}={value!r}; expected {rule[0]}.")


def hyperparameters(config, data):
    """Returns the `hp` of a plain run: the values `config` fixes, the rest the template's defaults.

    Args:
        config: `TrainingConfig`; its `hidden`, `activation`, `dropout`,
            `l2`, `optimizer`, `learning_rate` and `batch_size` (or the
            batch size of its gradient-descent mode `gd`) fix those
            hyperparameters.
        data: `TemplateData`, for the batch sizes of `gd`.

    Returns:
        `FixedHyperParameters`.
    """
    values = config.hyperparameter_values()
    if config.gd != "minibatch" or config.batch_size is not None:
        values["batch_size"] = training.batch_size_for(config.gd, config.batch_size or 1,
                                                       data.train_rows)
    return FixedHyperParameters(values)


def from_logits(model):
    """Whether `model` outputs logits: its compiled loss was given `from_logits=True`."""
    losses = model.loss if isinstance(model.loss, (list, tuple)) else [model.loss]
    return any(isinstance(loss, keras.losses.Loss) and loss.get_config().get("from_logits")
               for loss in losses)


def model_info(model):
    """The `ModelInfo` layer of a template model, or of an ensemble's first member.

    Raises:
        TemplateError: for a model that was not built by a template.
    """
    from templates.ensemble import ensemble_members

    member = ensemble_members(model)[0]
    try:
        return member.get_layer(MODEL_INFO_LAYER)
    except ValueError:
        raise TemplateError(
            f"Model '{model.name}' has no '{MODEL_INFO_LAYER}' layer; expected a model built by "
            "a keras-templates template (its inputs from data.preprocessing())."
        ) from None


def predict(model, inputs):
    """The model's outputs for a dict of column arrays, as probabilities for classifiers.

    A model whose output is logits (`ModelInfo.from_logits`) gets the task's
    output activation (sigmoid or softmax) applied here.
    """
    outputs = model.predict(batches.make_batches(inputs, batch_size=EVALUATION_BATCH_SIZE),
                            verbose=0)
    info = model_info(model)
    if info.from_logits:
        activation = keras.activations.get(get_task(info.task).output_activation)
        outputs = keras.ops.convert_to_numpy(activation(outputs))
    return outputs


def evaluate(model, spec, inputs, targets):
    """Computes the task's test metrics, as plain floats."""
    prediction = predict(model, inputs)
    return {name: float(metric(targets, prediction)) for name, metric in spec.test_metrics.items()}


def finish(model, history, data, hp, config):
    """Records what the model is for, evaluates it, and gathers the run's results.

    Args:
        model: the trained `keras.Model` built by the template.
        history: the `keras.callbacks.History` that `fit` returned.
        data: `TemplateData`.
        hp: the run's `keras_tuner.HyperParameters`.
        config: `TrainingConfig`.

    Returns:
        `TrainingRun`.
    """
    spec = get_task(data.task)
    unused = hp.unused() if isinstance(hp, FixedHyperParameters) else []
    if unused:
        warnings.warn(f"The template declares no hyperparameter {', '.join(unused)}; the "
                      "value given for it was not used.", stacklevel=2)
    model_info(model).from_logits = from_logits(model)
    history = history.history
    best_epoch = int(np.nanargmin(history[config.monitor])) + 1 if config.monitor in history \
        else len(history["loss"])
    metrics = {
        "task": spec.name,
        "backend": keras.backend.backend(),
        "class_names": data.class_names,
        "positive_class": data.labels.positive_class,
        "best_epoch": best_epoch,
        "epochs_run": len(history["loss"]),
        "batch_size": hp.values.get("batch_size"),
        "rows": {name: len(getattr(data.split, name)) for name in ("train", "validation", "test")},
        "config": {name: value for name, value in dataclasses.asdict(config).items()
                   if value is not None and name not in config.hyperparameter_values()
                   and name != "hidden"},
        "hyperparameters": dict(hp.values),
        "validation": evaluate(model, spec, *data.inputs(data.split.validation)),
        "test": evaluate(model, spec, *data.inputs(data.split.test)),
    }
    return TrainingRun(model=model, history=history, metrics=metrics)
