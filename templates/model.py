"""A template's model from Python, without training: `build_model(task, rows, labels, ...)`.

The network itself is written in each template (`templates.binary.build_model`
and so on); this builds the bundled template's model for `task` on given
rows, with some hyperparameters fixed, for tools and tests that need a
template model without a training run.

Example:

>>> import pandas as pd
>>> from templates.labels import encode_binary_labels
>>> frame = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0]})
>>> model = build_model("binary", frame, encode_binary_labels([0, 0, 1, 1]), hidden=(8,))
>>> model.get_layer("output").activation.__name__, model.loss.name
('sigmoid', 'binary_crossentropy')
"""

import importlib
import importlib.util
import os

import numpy as np

from templates import data
from templates.errors import TemplateError
from templates.recipe import FixedHyperParameters, TemplateData
from templates.tasks import get_task
from templates.training import TrainingConfig


def template_module(task):
    """The bundled template of `task`, e.g. `templates.binary`."""
    return importlib.import_module(f"templates.{get_task(task).name}")


def load_template(path):
    """Imports a template file, e.g. an edited copy of `templates/binary.py`.

    Args:
        path: str, the `.py` file.

    Returns:
        The module: it holds `TASK`, `build_model(hp, data)` and
        `fit_model(hp, model, data, config, ...)`.

    Raises:
        TemplateError: if the file is missing or is not a template.
    """
    if not os.path.isfile(path):
        raise TemplateError(f"Template file '{path}' does not exist; expected a .py file.")
    name = "template_" + "".join(c if c.isalnum() else "_" for c in os.path.splitext(
        os.path.basename(path))[0])
    spec = importlib.util.spec_from_file_location(name, os.path.abspath(path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    missing = [attribute for attribute in ("TASK", "build_model", "fit_model")
               if not hasattr(module, attribute)]
    if missing:
        raise TemplateError(
            f"Template file '{path}' lacks {', '.join(missing)}; expected a copy of a template "
            "(templates/regression.py, binary.py or multiclass.py)."
        )
    get_task(module.TASK)
    return module


def build_model(task, train_features, labels, *, template=None, **values):
    """Builds and compiles a template's model on `train_features`.

    Args:
        task: str, a key of `templates.tasks.TASKS`.
        train_features: DataFrame of the training rows' raw columns (the
            preprocessing adapts on them).
        labels: `templates.labels.Labels` of those rows.
        template: the template module; defaults to the task's bundled one.
        **values: `hidden` and the other model fields of `TrainingConfig`
            (`activation`, `dropout`, `l2`, `optimizer`, `learning_rate`),
            or hyperparameters by name (`depth`, `width`, ...); the rest keep
            the template's defaults.

    Returns:
        A compiled `keras.Model` whose inputs are a dict keyed by column.
    """
    rows = np.arange(len(train_features))
    prepared = TemplateData(get_task(task).name, data.as_frame(train_features), labels,
                            data.Split(train=rows, validation=rows[:0], test=rows[:0]))
    config_fields = {name: values.pop(name) for name in list(values)
                     if name in TrainingConfig.__dataclass_fields__}
    config = TrainingConfig(**config_fields)
    config.check()
    hp = FixedHyperParameters({**config.hyperparameter_values(), **values})
    return (template or template_module(task)).build_model(hp, prepared)
