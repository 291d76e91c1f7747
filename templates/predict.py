"""Predict with a saved template model: raw CSV rows in, one prediction per row out.

The model is loaded with Keras' safe mode (no arbitrary code) and takes the
raw columns it was trained on; extra columns, such as the target, are ignored.
Classifiers write the class label and its probability. What the model is for
(task, class names, whether it outputs logits) is read from the model's
`templates.layers.ModelInfo`, never guessed from its last layer.

    python -m templates.predict --model runs/binary-1/model.keras \\
        --csv new_rows.csv --output predictions.csv

Example:

>>> from templates import multiclass
>>> from templates.data import load_bundled
>>> features, target = load_bundled("wine")
>>> run = multiclass.train(features, target, config=multiclass.SETTINGS.replace(epochs=2), verbose=0)
>>> run.model.save("wine.keras")
>>> predictions = predict_frame(load_model("wine.keras"), features.head(3))
>>> list(predictions.columns), len(predictions)
(['prediction', 'probability'], 3)
"""

import os
import sys

import keras
import pandas as pd

from templates import data, data_loss, layers, preprocessing  # noqa: F401  (registers custom objects)
from templates import tensorflow_logs
from templates.artifacts import replace_atomically
from templates.cli import (
    ArgumentParser,
    add_backend_argument,
    exits_cleanly_on_bad_input,
    parse_backend_arguments,
)
from templates.ensemble import ensemble_members
from templates.errors import TemplateError
from templates.recipe import model_info, predict
from templates.tasks import get_task


def load_model(path):
    """Loads a template's `.keras` file in safe mode, for prediction on any backend.

    The model is not compiled: prediction needs no optimizer or loss, and a
    model saved on JAX keeps `jit_compile=True`, which on TensorFlow would
    run it through XLA for nothing.

    Raises:
        TemplateError: if the file is missing or not a Keras model.
    """
    if not os.path.isfile(path):
        raise TemplateError(f"Model file '{path}' does not exist; expected a .keras file.")
    try:
        # A model saved with Keras' string layers imports TensorFlow while it
        # loads, on any backend: without its start-up lines.
        with tensorflow_logs.startup_lines_filtered():
            return keras.saving.load_model(path, safe_mode=True, compile=False)
    except (ValueError, OSError) as error:
        raise TemplateError(
            f"Could not load '{path}' as a Keras model: {str(error).splitlines()[0]}"
        ) from None


def predict_frame(model, frame, source="the rows"):
    """Predicts one row of output per row of `frame`.

    Args:
        model: a model saved by a template.
        frame: DataFrame with the model's raw input columns.
        source: str, how to name the rows in error messages.

    Returns:
        DataFrame with a `prediction` column, plus `probability` (of the
        predicted class) for classifiers.
    """
    first_member = ensemble_members(model)[0]
    inputs = preprocessing.frame_to_inputs(frame, preprocessing.model_input_kinds(first_member),
                                           preprocessing.model_vocabularies(first_member), source)
    info = model_info(model)
    columns = get_task(info.task).decode_predictions(predict(model, inputs), info.class_names)
    return pd.DataFrame(columns)


@exits_cleanly_on_bad_input
def main(argv=None):
    parser = ArgumentParser(prog="python -m templates.predict", description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, help="a model.keras written by a template")
    parser.add_argument("--csv", required=True, help="rows to predict, with the training columns")
    parser.add_argument("--output", required=True, help="CSV file to write the predictions to")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --output")
    add_backend_argument(parser)
    args = parse_backend_arguments(parser, argv)
    if os.path.exists(args.output) and not args.overwrite:
        raise TemplateError(f"Output file '{args.output}' already exists; pass --overwrite to replace it.")
    rows = data.read_csv(args.csv)
    predictions = predict_frame(load_model(args.model), rows, f"'{args.csv}'")
    replace_atomically(args.output, lambda path: predictions.to_csv(path, index=False))
    print(f"wrote {len(predictions)} predictions to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
