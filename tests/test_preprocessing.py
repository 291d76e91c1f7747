"""Preprocessing lives in the model: raw rows with text and gaps go straight in."""

import numpy as np
import pandas as pd
import pytest

from conftest import make_frame
from templates import batches, binary, preprocessing, regression
from templates.data import Split
from templates.errors import TemplateError
from templates.predict import predict_frame
from templates.recipe import TemplateData, prepare, prepare_data


def test_normalisation_is_adapted_on_the_training_split_only(tiny_config):
    frame = make_frame("regression")
    features = frame.drop(columns="target")
    features.loc[:, "signal"] = np.arange(len(frame), dtype=float)
    run = regression.train(features, frame["target"], config=tiny_config, verbose=0)
    _, _, split, _ = prepare("regression", features, frame["target"], config=tiny_config)
    normalize = run.model.get_layer("normalize_numeric")
    train_rows = features.iloc[split.train][["signal", "noise"]]
    np.testing.assert_allclose(np.ravel(normalize.mean), np.nanmean(train_rows, axis=0), rtol=1e-5)
    assert not np.isclose(np.ravel(normalize.mean)[0], features["signal"].mean())


def test_raw_rows_with_missing_values_and_unseen_categories_predict(tiny_config):
    frame = make_frame("binary")
    run = binary.train(frame.drop(columns="target"), frame["target"], config=tiny_config, verbose=0)
    new_rows = pd.DataFrame({
        "signal": [1.0, np.nan, -2.0],
        "noise": [np.nan, np.nan, 0.5],
        "colour": ["purple", None, "red"],
    })
    predictions = predict_frame(run.model, new_rows)
    assert len(predictions) == 3
    assert set(predictions["prediction"]) <= {"no", "yes"}
    assert np.all((predictions["probability"] >= 0.5) & (predictions["probability"] <= 1.0))


def test_text_and_boolean_columns_become_categories():
    frame = pd.DataFrame({"n": [1.0, 2.0], "flag": [True, False], "city": ["a", "b"]})
    assert preprocessing.column_kinds(frame) == {"n": "float32", "flag": "string", "city": "string"}


def test_columns_with_slashes_in_their_names_work(tiny_config):
    frame = make_frame("regression").rename(columns={"noise": "od280/od315"})
    run = regression.train(frame.drop(columns="target"), frame["target"], config=tiny_config, verbose=0)
    assert "od280/od315" in preprocessing.model_input_kinds(run.model)


def test_numpy_arrays_are_accepted_from_python(tiny_config):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(80, 3))
    run = binary.train(x, (x[:, 0] > 0).astype(int), config=tiny_config, verbose=0)
    assert preprocessing.model_input_kinds(run.model) == {"x0": "float32", "x1": "float32", "x2": "float32"}
    assert run.metrics["class_names"] == ["0", "1"]


def test_text_columns_with_slashes_in_their_names_work(tiny_config):
    frame = make_frame("binary").rename(columns={"colour": "colour/shade"})
    run = binary.train(frame.drop(columns="target"), frame["target"], config=tiny_config, verbose=0)
    assert "colour/shade" in run.model.input


def test_numeric_columns_reach_the_model_as_one_matrix_in_column_order():
    frame = pd.DataFrame({"b": [1.0, 2.0], "city": ["x", "y"], "a": [3.0, np.nan]})
    arrays = preprocessing.frame_to_inputs(frame, preprocessing.column_kinds(frame),
                                           preprocessing.text_vocabularies(frame))
    np.testing.assert_array_equal(arrays[preprocessing.NUMERIC_INPUT], [[1.0, 3.0], [2.0, np.nan]])


def test_text_reaches_the_model_as_codes_of_the_vocabulary_it_keeps(tiny_config):
    # Strings cannot enter a model compiled by JAX: codes can, on every backend.
    frame = make_frame("binary")
    run = binary.train(frame.drop(columns="target"), frame["target"], config=tiny_config, verbose=0)
    vocabularies = preprocessing.model_vocabularies(run.model)
    assert vocabularies == {"colour": ["blue", "green", "red"]}
    rows = pd.DataFrame({"signal": [0.0] * 4, "noise": [0.0] * 4,
                         "colour": ["red", "blue", None, "purple"]})
    arrays = preprocessing.frame_to_inputs(rows, preprocessing.model_input_kinds(run.model),
                                           vocabularies)
    assert arrays["colour"].dtype == np.int32
    assert arrays["colour"].ravel().tolist() == [3, 1, 0, 0]


def test_a_non_numeric_value_in_a_numeric_column_is_named():
    with pytest.raises(ValueError, match="'abc'"):
        preprocessing.frame_to_inputs(pd.DataFrame({"n": ["1", "abc"]}), {"n": "float32"}, {})


@pytest.mark.parametrize("num_rows", [batches.ROW_SLICING_MAX_ROWS, batches.ROW_SLICING_MAX_ROWS + 1])
def test_a_shuffled_dataset_yields_every_row_once_per_epoch_in_a_new_order(num_rows):
    # Both pipelines (row slicing for small data, gathered batches above it)
    # keep each row's columns and target together.
    rows = np.arange(num_rows)
    inputs = {"numeric_columns": np.stack([rows, -rows], axis=1).astype("float32"),
              "city": rows.astype(str).astype(object)}
    data = batches.make_dataset(inputs, rows, batch_size=64, shuffle=True, seed=3)

    def one_epoch():
        batches = list(data.as_numpy_iterator())
        columns = np.concatenate([features["numeric_columns"] for features, _ in batches])
        cities = np.concatenate([features["city"] for features, _ in batches])
        targets = np.concatenate([target for _, target in batches])
        assert max(len(target) for _, target in batches) == 64
        np.testing.assert_array_equal(columns[:, 0], targets)
        np.testing.assert_array_equal(columns[:, 1], -targets)
        np.testing.assert_array_equal(cities.astype(str), targets.astype(str))
        return targets

    first, second = one_epoch(), one_epoch()
    np.testing.assert_array_equal(np.sort(first), rows)
    np.testing.assert_array_equal(np.sort(second), rows)
    assert not np.array_equal(first, rows) and not np.array_equal(first, second)


def test_the_rows_of_a_fold_are_picked_from_one_conversion_with_the_fold_s_vocabulary():
    frame = make_frame("binary")
    data = prepare_data("binary", frame.drop(columns="target"), frame["target"])
    # A fold whose training rows lack one colour: its vocabulary differs.
    rows = np.concatenate([data.split.train, data.split.validation])
    without_blue = rows[frame["colour"].iloc[rows].to_numpy() != "blue"]
    for fold in (data.with_rows(rows), data.with_rows(without_blue[:60], rows[:20])):
        for picked in (fold.split.train, fold.split.validation, rows):
            inputs, targets = fold.inputs(picked)
            expected = preprocessing.frame_to_inputs(frame.iloc[picked], fold.kinds(),
                                                     fold.vocabularies())
            assert inputs.keys() == expected.keys()
            for name, values in expected.items():
                assert inputs[name].dtype == values.dtype
                np.testing.assert_array_equal(inputs[name], values)
            np.testing.assert_array_equal(targets, data.labels.values[picked])
    # One conversion per vocabulary, shared by the copies of the data.
    assert data.with_rows(rows).converted is data.converted and len(data.converted) == 2


def test_a_bad_value_outside_the_rows_asked_for_does_not_stop_their_conversion():
    split = Split(train=np.array([0, 1, 2]), validation=np.array([], int), test=np.array([3]))
    labels = type("Labels", (), {"values": np.zeros(4, "float32")})()
    data = TemplateData("regression", pd.DataFrame({"n": ["1", "2", "3", "abc"]}), labels, split)
    data.kinds = lambda: {"n": preprocessing.NUMERIC}  # as if inferred from numbers
    inputs, _ = data.inputs([0, 2])
    np.testing.assert_array_equal(inputs[preprocessing.NUMERIC_INPUT], [[1.0], [3.0]])
    with pytest.raises(TemplateError, match="'abc'"):
        data.inputs([3])
