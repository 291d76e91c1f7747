"""Preprocessing inside the model: raw columns in, one feature vector out.

Each column becomes one named `keras.Input`. Numeric columns are normalised
with statistics of the training split only, and their missing values become
the training mean. Text columns are one-hot encoded with a vocabulary from the
training split; missing and unseen values share one extra slot. Because all of
this lives in the model, the saved model predicts from raw rows: strings
cannot enter a model compiled by JAX, so `frame_to_inputs` turns each text
column into codes of the vocabulary the model keeps (`TextOneHot`), on every
backend.

Example:

>>> import pandas as pd
>>> frame = pd.DataFrame({"age": [30.0, None, 50.0], "city": ["Oslo", "Rome", None]})
>>> inputs, features = build_preprocessing(frame)
>>> sorted(inputs), features.shape
(['city', 'numeric_columns'], (None, 4))
>>> frame_to_inputs(frame, column_kinds(frame), text_vocabularies(frame))["city"].ravel().tolist()
[1, 2, 0]
"""

import warnings

import keras
import numpy as np
import pandas as pd

from templates.errors import TemplateError, shorten
from templates.layers import (
    ColumnNames,
    ReplaceNaN,
    Standardize,
    TextOneHot,
    text_codes,
)

NUMERIC = "float32"
TEXT = "string"
# The dtype of a text column's input: codes of its vocabulary.
TEXT_CODES = "int32"
MISSING_TEXT = ""
# The model input holding every numeric column, and the layer naming them.
NUMERIC_INPUT = "numeric_columns"
COLUMN_NAMES_LAYER = "numeric_column_names"

# A template model's input dict is keyed by the raw column names, which may
# differ from the inputs' names (see `_input_name`); Keras warns about that
# when such a model is built or loaded.
warnings.filterwarnings("ignore", message="When providing `inputs` as a dict")


def column_kinds(frame):
    """Maps each column to its input dtype: `"float32"` or `"string"`.

    Booleans and text are categories; all other numbers are numeric.
    """
    if NUMERIC_INPUT in frame.columns:
        raise TemplateError(
            f"Column name '{NUMERIC_INPUT}' is reserved for the model's numeric "
            "input; rename that column."
        )
    return {
        name: NUMERIC
        if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)
        else TEXT
        for name, column in frame.items()
    }


def build_preprocessing(train_frame):
    """Builds the model's inputs and its preprocessed feature tensor.

    Numeric columns travel together as one matrix input, `NUMERIC_INPUT`
    (one tensor per step instead of one per column keeps training fast); a
    `ColumnNames` layer records which columns it holds, in order. Each text
    column is an input of its own, keyed by its name.

    Args:
        train_frame: DataFrame of the training split's raw feature columns;
            normalisation and vocabularies are computed from it alone.

    Returns:
        `(inputs, features)`: a dict of `keras.Input` and the concatenated
        numeric feature tensor.
    """
    kinds = column_kinds(train_frame)
    numeric = [name for name, kind in kinds.items() if kind == NUMERIC]
    text = [name for name, kind in kinds.items() if kind == TEXT]
    inputs, encoded = {}, []
    if numeric:
        inputs[NUMERIC_INPUT] = keras.Input(shape=(len(numeric),), name=NUMERIC_INPUT, dtype=NUMERIC)
        values = train_frame[numeric].to_numpy(dtype="float64")
        normalize = Standardize(mean=np.nanmean(values, axis=0),
                                variance=np.nanvar(values, axis=0), name="normalize_numeric")
        named = ColumnNames(numeric, name=COLUMN_NAMES_LAYER)(inputs[NUMERIC_INPUT])
        encoded.append(ReplaceNaN(name="impute_mean")(normalize(named)))
    vocabularies = text_vocabularies(train_frame)
    for index, name in enumerate(text):
        inputs[name] = keras.Input(shape=(1,), name=_input_name(name), dtype=TEXT_CODES)
        encoded.append(TextOneHot(vocabularies[name], column=name, name=f"one_hot_{index}")(
            inputs[name]))
    features = encoded[0] if len(encoded) == 1 else keras.layers.Concatenate(
        name="features")(encoded)
    return inputs, features


def text_vocabularies(frame):
    """The vocabulary of each text column of `frame`: its sorted values, missing excluded.

    Example:

    >>> text_vocabularies(pd.DataFrame({"city": ["Rome", None, "Oslo"], "age": [1, 2, 3]}))
    {'city': ['Oslo', 'Rome']}
    """
    return {name: sorted(set(_text_column(frame[name])) - {MISSING_TEXT})
            for name, kind in column_kinds(frame).items() if kind == TEXT}


def _input_name(column):
    # Keras names may not contain "/"; the model's input dict keeps the raw
    # column name as its key, so predictions still match columns by name.
    return column.replace("/", "_")


def _text_column(column):
    return column.astype(object).where(column.notna(), MISSING_TEXT).astype(str).to_numpy()


def model_input_kinds(model):
    """Returns `{column: dtype}` for a model built by `build_preprocessing`."""
    if not isinstance(model.input, dict):
        raise TemplateError(
            "The model does not take named columns; expected a model saved by "
            "a keras-templates template."
        )
    numeric = model.get_layer(COLUMN_NAMES_LAYER).names if NUMERIC_INPUT in model.input else []
    text = [name for name in model.input if name != NUMERIC_INPUT]
    return {**{name: NUMERIC for name in numeric}, **{name: TEXT for name in text}}


def model_vocabularies(model):
    """Returns `{column: vocabulary}` of the text columns of a model built by `build_preprocessing`.

    Raises:
        TemplateError: on a backend other than TensorFlow, for a model saved
            before text columns became vocabulary codes (its text inputs take
            strings, which only TensorFlow can feed to a model).
    """
    vocabularies = {layer.column: layer.vocabulary for layer in model.layers
                    if isinstance(layer, TextOneHot)}
    strings = [name for name, kind in model_input_kinds(model).items()
               if kind == TEXT and name not in vocabularies]
    if strings and keras.backend.backend() != "tensorflow":
        raise TemplateError(
            f"The model takes its text columns ({shorten(strings)}) as strings, as models saved "
            "before keras-templates encoded text as vocabulary codes did; only TensorFlow feeds "
            "strings to a model. Expected --backend tensorflow (or KERAS_BACKEND=tensorflow), "
            "or a model trained again."
        )
    return vocabularies


def clean_columns(frame, kinds, source="the data"):
    """Returns the columns in `kinds` as float32 numbers (NaN if missing) or text.

    Args:
        frame: DataFrame holding (at least) the columns in `kinds`.
        kinds: dict `{column: "float32" | "string"}`.
        source: str, how to name the data in error messages.

    Raises:
        TemplateError: for a missing column or a non-numeric value in a
            numeric column.
    """
    missing = [name for name in kinds if name not in frame.columns]
    if missing:
        raise TemplateError(
            f"{source} lacks {len(missing)} column(s) the model expects: "
            f"{shorten(missing)}."
        )
    return pd.DataFrame({
        name: _numeric_column(frame[name], name, source) if kind == NUMERIC
        else _text_column(frame[name])
        for name, kind in kinds.items()
    })


def frame_to_inputs(frame, kinds, vocabularies, source="the data"):
    """Turns raw columns into the arrays the model's inputs expect.

    Args:
        frame: DataFrame holding (at least) the columns in `kinds`.
        kinds: dict `{column: "float32" | "string"}`.
        vocabularies: dict `{column: vocabulary}` of the text columns
            (`text_vocabularies` of the training rows, or `model_vocabularies`);
            a text column without one stays strings, as a model saved
            before `TextOneHot` takes it.
        source: str, how to name the data in error messages.

    Returns:
        A dict of arrays: the numeric columns as one `(rows, columns)` float32
        matrix under `NUMERIC_INPUT` (NaN where missing), each text column as
        `(rows, 1)` int32 codes of its vocabulary under its name.

    Raises:
        TemplateError: for a missing column or a non-numeric value in a
            numeric column.
    """
    columns = clean_columns(frame, kinds, source)
    numeric = [name for name, kind in kinds.items() if kind == NUMERIC]
    arrays = {}
    if numeric:
        arrays[NUMERIC_INPUT] = columns[numeric].to_numpy(dtype="float32")
    for name in (name for name, kind in kinds.items() if kind == TEXT):
        values = columns[name].to_numpy(dtype=object).reshape(-1, 1)
        # A model saved before `TextOneHot` looks strings up itself (TensorFlow only).
        arrays[name] = text_codes(values, vocabularies[name]) if name in vocabularies else values
    return arrays


def _numeric_column(column, name, source):
    numbers = pd.to_numeric(column, errors="coerce")
    bad = numbers.isna() & column.notna()
    if bad.any():
        raise TemplateError(
            f"Column '{name}' in {source} holds the non-numeric value "
            f"{column[bad].iloc[0]!r}; expected numbers (or an empty cell)."
        )
    return numbers.to_numpy(dtype="float32")
