"""Fixtures shared by the callbacks' tests."""

import inspect

import keras
import numpy as np
import pandas as pd
import pytest

# Collecting doctests imports every module; each backend's own module imports
# its framework, which the other backends' runs need not load.
collect_ignore = [
    f"_backend_{name}.py"
    for name in ("tensorflow", "jax", "torch")
    if name != keras.backend.backend()
]


@pytest.fixture
def template_data():
    """Raw columns for a template, their labels, and a 64-row probe of the inputs.

    Returns:
        `(features, target, probe_x)`: a DataFrame with a numeric and a text
        column, "yes"/"no" labels, and the first 64 rows as model inputs.
    """
    from templates import preprocessing

    rng = np.random.default_rng(0)
    features = pd.DataFrame(
        {"age": rng.normal(40, 10, 200).astype("float32"),
         "city": rng.choice(["Oslo", "Rome", "Lima"], 200)}
    )
    target = np.where(features["age"] > 40, "yes", "no")
    kinds = preprocessing.column_kinds(features)
    arguments = [features.head(64), kinds]
    # The templates' preprocessing (reworked for JAX at the time of writing)
    # may take the text columns' vocabularies as an argument.
    if "vocabularies" in inspect.signature(preprocessing.frame_to_inputs).parameters:
        arguments.append(preprocessing.text_vocabularies(features))
    probe_x = preprocessing.frame_to_inputs(*arguments)
    return features, target, probe_x
