"""One model that averages the outputs of several template models.

The members are template models (built by a template's `build_model`)
trained on the same rows, so they take the same raw columns and give the
same kind of output: probabilities (sigmoid, softmax), logits, or values in
target units. Their mean is the same kind of output, and the ensemble saves,
loads and predicts like a single template model (`templates.predict`): the
first member's `templates.layers.ModelInfo` describes it.

Example:

>>> import pandas as pd
>>> from templates.labels import encode_binary_labels
>>> from templates.model import build_model
>>> frame = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0]})
>>> labels = encode_binary_labels([0, 0, 1, 1])
>>> ensemble = average_models([build_model("binary", frame, labels, hidden=(8,)) for _ in range(2)])
>>> len(ensemble_members(ensemble))
2
"""

import keras

from templates.errors import TemplateError
from templates.preprocessing import model_input_kinds

AVERAGE_LAYER = "average_of_members"


def average_models(models, name="ensemble"):
    """Returns a model whose output is the mean of `models`' outputs.

    Args:
        models: sequence of template models taking the same input columns.
            One model is returned as it is.
        name: str, the ensemble model's name. Defaults to `"ensemble"`.

    Raises:
        TemplateError: if `models` is empty, a model is not a template
            model (named column inputs), or the models take different columns.
    """
    models = list(models)
    if not models:
        raise TemplateError("Received no models to average; expected at least one.")
    if len(models) == 1:
        return models[0]
    first = model_input_kinds(models[0])
    for index, model in enumerate(models[1:], start=1):
        if model_input_kinds(model) != first:
            raise TemplateError(
                f"Model {index} takes columns {model_input_kinds(model)}, model 0 takes {first}; "
                "expected models trained on the same columns."
            )
    inputs = {key: keras.Input(shape=tensor.shape[1:], dtype=tensor.dtype, name=tensor.name)
              for key, tensor in models[0].input.items()}
    for index, model in enumerate(models):
        model.name = f"member_{index}"
    outputs = keras.layers.Average(name=AVERAGE_LAYER)([model(inputs) for model in models])
    return keras.Model(inputs, outputs, name=name)


def ensemble_members(model):
    """Returns the template models that `model` averages, or `[model]` for a single one."""
    if AVERAGE_LAYER not in [layer.name for layer in model.layers]:
        return [model]
    return [layer for layer in model.layers if isinstance(layer, keras.Model)]
