"""What every study shares: its command line, its four output files, data and models.

A study module defines `run(options) -> StudyResult` and hands it to
`study_main`, which parses the command line, runs the study, and writes
`results.csv`, `figure.png`, `results.json` and `summary.md`. Bad input ends
with one line `error: ...` on stderr and exit status 2, through the
templates' own checks for `--csv`.

Example:

>>> options = parse_options("learning_rate", ["--quick", "--output", "out"])
>>> options.seeds, options.quick, str(options.output)
((0,), True, 'out')
>>> parse_options("learning_rate", ["--seeds", "1,x"])
Traceback (most recent call last):
...
templates.errors.TemplateError: argument --seeds: invalid --seeds '1,x'; \
expected distinct non-negative integers separated by commas, e.g. 0,1,2
"""

# Importing the templates first silences TensorFlow's start-up lines.
import templates  # noqa: F401  isort: skip

import argparse
import dataclasses
import json
import math
import pathlib
import platform
import sys
import time

import keras
import numpy as np
import pandas as pd
import tensorflow as tf
from sklearn import datasets as sk_datasets
from sklearn.model_selection import train_test_split

from templates import data as template_data
from templates.cli import ArgumentParser
from templates.errors import TemplateError
from templates.numbers import format_number
from templates.tasks import TASKS, get_task

DEFAULT_SEEDS = (0, 1, 2)


def require_tensorflow_backend(name):
    """Raises a one-line `TemplateError` unless Keras runs on TensorFlow.

    Studies that take per-example gradients with `tf.GradientTape` call it
    first, so another `KERAS_BACKEND` ends in a clear error, not a traceback.

    Example:

    >>> require_tensorflow_backend("vanishing_gradients")  # on TensorFlow: no error
    """
    backend = keras.backend.backend()
    if backend != "tensorflow":
        raise TemplateError(
            f"Study {name} measures per-example gradients with tf.GradientTape; the active "
            f"Keras backend is '{backend}': expected KERAS_BACKEND=tensorflow."
        )
QUICK_SEEDS = (0,)
VERDICTS = ("SUPPORTED", "CONTRADICTED", "INCONCLUSIVE")
OUTPUT_ROOT = pathlib.Path("runs") / "studies"
# Small PNGs: the figures are committed under docs/studies/.
FIGURE_DPI = 90
FILES = ("results.csv", "figure.png", "results.json", "summary.md")
EXIT_BAD_INPUT = 2


@dataclasses.dataclass
class UserData:
    """A user's table, read and checked by the templates (`--csv`).

    Attributes:
        features: pandas.DataFrame, the raw feature columns.
        target: pandas.Series, the target encoded by the task's
            `encode_labels`: floats for regression, 0/1 for binary, class
            indices for multiclass.
        task: str, `"binary"`, `"multiclass"` or `"regression"`.
        class_names: list of str, the name of each class in index order;
            empty for regression. Defaults to `[]`.
        source: str, where the data came from, for the summary. Defaults to
            `""`.
    """

    features: pd.DataFrame
    target: pd.Series
    task: str
    class_names: list = dataclasses.field(default_factory=list)
    source: str = ""


@dataclasses.dataclass
class StudyOptions:
    """What the command line asked of a study.

    Attributes:
        seeds: tuple of int, one run per seed. `(0, 1, 2)` by default,
            `(0,)` with `--quick`.
        quick: bool, a tiny version that runs in seconds, for the tests.
        output: pathlib.Path, the folder the four files go into.
        data: UserData or None, the user's table (`--csv`), for the studies
            that accept one. Defaults to `None`.
        command: str, the command that reproduces the run, for the summary.
            Defaults to `""`.
    """

    seeds: tuple
    quick: bool
    output: pathlib.Path
    data: "UserData | None" = None
    command: str = ""


@dataclasses.dataclass
class StudyResult:
    """What a study measured and concluded.

    Attributes:
        claim: str, the explainer's claim, one or two sentences.
        protocol: str, markdown: data, model, and every setting that could
            hide the effect.
        table: pandas.DataFrame, the measurements (`results.csv` keeps full
            precision; the summary shows 4 significant digits).
        verdict: str, one of `VERDICTS`.
        evidence: str, markdown: the numbers the verdict rests on. Its first
            line is the one-line evidence of `report.md`.
        literature: str, markdown: how the result compares with the cited
            literature.
        settings: dict, JSON-able settings of the run (seeds, library
            versions, backend and duration are added when written).
        figure: matplotlib.figure.Figure, saved as `figure.png`.
        summary_table: pandas.DataFrame or None, a shorter table (e.g. means
            over seeds) shown in `summary.md` instead of `table`;
            `results.csv` always holds `table`. Defaults to `None`.
    """

    claim: str
    protocol: str
    table: pd.DataFrame
    verdict: str
    evidence: str
    literature: str
    settings: dict
    figure: object
    summary_table: "pd.DataFrame | None" = None


def parse_seeds(text):
    """Parses `--seeds 0,1,2` into `(0, 1, 2)`.

    Raises:
        argparse.ArgumentTypeError: for anything but distinct non-negative
            integers separated by commas.

    Example:

    >>> parse_seeds("3, 1")
    (3, 1)
    """
    parts = [part.strip() for part in text.split(",")]
    if not all(part.isdigit() for part in parts) or len(set(parts)) != len(parts):
        raise argparse.ArgumentTypeError(
            f"invalid --seeds {text!r}; expected distinct non-negative integers "
            "separated by commas, e.g. 0,1,2"
        )
    return tuple(int(part) for part in parts)


def build_parser(name, accepts_csv=False):
    """Returns the command-line parser of study `name`.

    Its errors raise `TemplateError` (one line, exit status 2 in
    `study_main`).
    """
    parser = ArgumentParser(
        prog=f"python -m studies.{name}",
        description=f"Run the {name} study and write results.csv, figure.png, "
        "results.json and summary.md.",
    )
    parser.add_argument("--seeds", type=parse_seeds, default=None,
                        help="comma-separated seeds (default: 0,1,2; with --quick: 0)")
    parser.add_argument("--quick", action="store_true",
                        help="a tiny run of a few seconds, for tests; verdicts are not meaningful")
    parser.add_argument("--output", type=pathlib.Path, default=None,
                        help=f"results folder (default: {OUTPUT_ROOT / name})")
    if accepts_csv:
        parser.add_argument("--csv", help="run on your own table instead of the built-in data")
        parser.add_argument("--target", help="the target column of --csv")
        parser.add_argument("--task", choices=list(TASKS), help="the task of --target")
    return parser


def parse_options(name, argv=None, accepts_csv=False):
    """Parses a study's command line into `StudyOptions`.

    Args:
        name: str, the study's name.
        argv: list of str, the arguments; `None` reads `sys.argv[1:]`.
        accepts_csv: bool, whether `--csv/--target/--task` are accepted.

    Raises:
        TemplateError: for bad arguments or a bad `--csv`.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(name, accepts_csv).parse_args(argv)
    seeds = args.seeds or (QUICK_SEEDS if args.quick else DEFAULT_SEEDS)
    data = None
    if accepts_csv:
        data = _user_data_from_args(args)
    output = args.output or OUTPUT_ROOT / name
    shown = list(argv)
    if output == OUTPUT_ROOT / name and "--output" in shown:
        # The default folder needs no flag to reproduce the run.
        del shown[shown.index("--output"):shown.index("--output") + 2]
    return StudyOptions(
        seeds=tuple(seeds),
        quick=args.quick,
        output=output,
        data=data,
        command=" ".join(["python", "-m", f"studies.{name}", *shown]),
    )


def _user_data_from_args(args):
    if args.csv is None:
        if args.target or args.task:
            raise TemplateError("--target and --task need --csv FILE, your table.")
        return None
    missing = [flag for flag, value in (("--target COLUMN", args.target),
                                        ("--task TASK", args.task)) if not value]
    if missing:
        raise TemplateError(
            f"--csv {args.csv} needs {' and '.join(missing)}; expected e.g. "
            f"--csv {args.csv} --target price --task regression."
        )
    return load_user_data(args.csv, args.target, args.task)


def load_user_data(path, target, task):
    """Reads and checks a user's CSV as the templates do.

    Args:
        path: str, the CSV file.
        target: str, the column to predict.
        task: str, `"binary"`, `"multiclass"` or `"regression"`.

    Returns:
        `UserData` with the target encoded by the task's `encode_labels`.

    Raises:
        TemplateError: for a missing or empty file, an unknown target
            column, empty feature columns or labels that do not fit the task.

    Example:

    >>> load_user_data("missing.csv", "y", "regression")
    Traceback (most recent call last):
    ...
    templates.errors.TemplateError: CSV file 'missing.csv' does not exist.
    """
    spec = get_task(task)
    frame = template_data.read_csv(path)
    features, raw_target = template_data.split_target(frame, target, f"'{path}'")
    template_data.check_features(features, f"'{path}'")
    labels = spec.encode_labels(raw_target)
    return UserData(
        features=features.reset_index(drop=True),
        target=pd.Series(np.asarray(labels.values), name=target),
        task=task,
        class_names=list(labels.class_names),
        source=str(path),
    )


def features_matrix(features, fit_rows=None):
    """Turns raw feature columns into a float32 matrix for a plain MLP.

    Numeric columns are standardised (missing values become the mean);
    text and boolean columns are one-hot encoded, missing values included.
    The statistics come from `fit_rows` only (the training rows), so that
    nothing leaks from the test rows.

    Args:
        features: pandas.DataFrame of raw columns.
        fit_rows: array of row positions to compute statistics on; `None`
            means every row. Defaults to `None`.

    Returns:
        np.ndarray of shape `(rows, columns after one-hot encoding)`.

    Example:

    >>> frame = pd.DataFrame({"a": [1.0, 3.0, None], "b": ["x", "y", "x"]})
    >>> features_matrix(frame).round(2).tolist()
    [[-1.0, 1.0, 0.0], [1.0, 0.0, 1.0], [0.0, 1.0, 0.0]]
    """
    fit_rows = np.arange(len(features)) if fit_rows is None else np.asarray(fit_rows)
    columns = []
    for column in (features[name] for name in features.columns):
        is_numeric = pd.api.types.is_numeric_dtype(column) and not (
            pd.api.types.is_bool_dtype(column)
        )
        if is_numeric:
            values = column.to_numpy(dtype="float64")
            fitted = values[fit_rows]
            mean = np.nanmean(fitted) if np.isfinite(fitted).any() else 0.0
            std = np.nanstd(fitted) if np.isfinite(fitted).any() else 1.0
            values = np.where(np.isnan(values), mean, values)
            columns.append(((values - mean) / (std or 1.0))[:, None])
        else:
            text = column.astype(str).where(column.notna(), "<missing>")
            categories = sorted(set(text.iloc[fit_rows]))
            columns.append(
                np.stack([(text == c).to_numpy(float) for c in categories], axis=1)
            )
    return np.concatenate(columns, axis=1).astype("float32")


def seed_everything(seed):
    """Seeds Python, NumPy and the Keras backend.

    Example:

    >>> seed_everything(0)
    """
    keras.utils.set_random_seed(int(seed))


def make_regression_data(seed, rows=512, features=10, noise=1.0):
    """Friedman's first regression problem, standardised.

    `y = 10 sin(pi x1 x2) + 20 (x3 - 0.5)^2 + 10 x4 + 5 x5 + noise`, with
    `x` uniform on `[0, 1]` (only the first five features matter); both `x`
    and `y` are then standardised, so a loss of `1.0` is what predicting
    the mean gets. Friedman (1991), scikit-learn's `make_friedman1`.

    Args:
        seed: int, the random seed.
        rows: int, number of rows. Defaults to `512`.
        features: int, at least 5. Defaults to `10`.
        noise: float, standard deviation of the noise before
            standardising. Defaults to `1.0`.

    Returns:
        `(x, y)`: float32 arrays of shapes `(rows, features)` and `(rows, 1)`.

    Example:

    >>> x, y = make_regression_data(0, rows=100)
    >>> x.shape, y.shape, round(float(y.std()), 3)
    ((100, 10), (100, 1), 1.0)
    """
    x, y = sk_datasets.make_friedman1(
        n_samples=rows, n_features=features, noise=noise, random_state=seed
    )
    x = (x - x.mean(axis=0)) / x.std(axis=0)
    y = (y - y.mean()) / y.std()
    return x.astype("float32"), y.reshape(-1, 1).astype("float32")


def make_classification_data(seed, rows=512, features=10, classes=2, separation=1.0):
    """A classification problem with informative and noise features.

    scikit-learn's `make_classification` (Guyon, 2003): clusters on the
    vertices of a hypercube, half the features informative, 5% of the
    labels flipped; features standardised.

    Args:
        seed: int, the random seed.
        rows: int, number of rows. Defaults to `512`.
        features: int, number of features. Defaults to `10`.
        classes: int, number of classes. Defaults to `2`.
        separation: float, the hypercube's size; larger is easier.
            Defaults to `1.0`.

    Returns:
        `(x, y)`: float32 features and int32 class indices of shape
        `(rows,)`.

    Example:

    >>> x, y = make_classification_data(0, rows=90, classes=3)
    >>> x.shape, sorted(set(y.tolist()))
    ((90, 10), [0, 1, 2])
    """
    informative = max(2, features // 2)
    x, y = sk_datasets.make_classification(
        n_samples=rows,
        n_features=features,
        n_informative=informative,
        n_redundant=0,
        n_classes=classes,
        n_clusters_per_class=1,
        class_sep=separation,
        flip_y=0.05,
        random_state=seed,
    )
    x = (x - x.mean(axis=0)) / x.std(axis=0)
    return x.astype("float32"), y.astype("int32")


def split(x, y, seed, test_fraction=0.25):
    """Splits arrays into `(x_train, x_test, y_train, y_test)`, seeded.

    Example:

    >>> x_train, x_test, y_train, y_test = split(np.zeros((8, 2)), np.zeros(8), 0)
    >>> len(x_train), len(x_test)
    (6, 2)
    """
    return train_test_split(x, y, test_size=test_fraction, random_state=seed)


def repeated_dataset(x, y, batch_size, seed):
    """A `tf.data.Dataset` of shuffled batches that never ends.

    The rows are reshuffled at every pass; batches run across passes, so
    `steps = epochs * len(x) // batch_size` covers `epochs` passes exactly
    when `batch_size` divides `len(x)`. Train with one
    `fit(dataset, epochs=1, steps_per_epoch=steps)`: Keras' per-epoch cost
    (about 0.1 s) is paid once, not at every pass.

    Example:

    >>> dataset = repeated_dataset(np.zeros((8, 2)), np.zeros(8), 4, seed=0)
    >>> [tuple(part.shape) for part in next(iter(dataset))]
    [(4, 2), (4,)]
    """
    return (
        tf.data.Dataset.from_tensor_slices((x, y))
        .shuffle(len(x), seed=int(seed), reshuffle_each_iteration=True)
        .repeat()
        .batch(batch_size, drop_remainder=True)
        .prefetch(2)
    )


def mlp(inputs, hidden, *, activation="relu", initializer="he_normal",
        outputs=1, output_activation=None, name=None):
    """A plain `keras.Sequential` MLP, with nothing that would hide an effect.

    No regularisation, no dropout, no batch normalisation; biases start at
    zero. Layers are named `hidden_1`, ..., `hidden_<n>` and `output`.

    Args:
        inputs: int, number of input features.
        hidden: sequence of int, units of each hidden layer.
        activation: str, activation of the hidden layers. Defaults to
            `"relu"`.
        initializer: str, kernel initializer of every layer. Defaults to
            `"he_normal"`.
        outputs: int, units of the output layer. Defaults to `1`.
        output_activation: str or None, activation of the output layer.
            Defaults to `None` (linear).
        name: str or None, the model's name. Defaults to `None`.

    Returns:
        An uncompiled `keras.Sequential`.

    Example:

    >>> model = mlp(4, (8, 8), activation="tanh", initializer="glorot_uniform")
    >>> [layer.name for layer in model.layers]
    ['hidden_1', 'hidden_2', 'output']
    """
    layers = [keras.Input((inputs,))]
    for index, units in enumerate(hidden, start=1):
        layers.append(keras.layers.Dense(
            units, activation=activation, kernel_initializer=initializer,
            name=f"hidden_{index}",
        ))
    layers.append(keras.layers.Dense(
        outputs, activation=output_activation, kernel_initializer=initializer,
        name="output",
    ))
    return keras.Sequential(layers, name=name)


def new_figure(rows=1, columns=1, width=5.0, height=3.6):
    """Returns `(figure, axes)` drawn with Agg, without touching pyplot.

    Example:

    >>> figure, axes = new_figure(1, 2)
    >>> len(axes)
    2
    """
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width * columns, height * rows), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False)
    return figure, axes.ravel() if rows * columns > 1 else axes[0, 0]


def markdown_table(frame, digits=4):
    """Renders a DataFrame as a markdown table, numbers to `digits` digits.

    Example:

    >>> frame = pd.DataFrame({"rate": [0.001, 0.0123456], "ok": [True, False]})
    >>> print(markdown_table(frame))
    | rate | ok |
    | ---: | --- |
    | 0.001 | True |
    | 0.01235 | False |
    """
    numeric = [
        pd.api.types.is_numeric_dtype(frame[column])
        and not pd.api.types.is_bool_dtype(frame[column])
        for column in frame.columns
    ]
    lines = [
        "| " + " | ".join(_cell(column) for column in frame.columns) + " |",
        "| " + " | ".join("---:" if n else "---" for n in numeric) + " |",
    ]
    for row in frame.itertuples(index=False):
        lines.append("| " + " | ".join(_cell(value, digits) for value in row) + " |")
    return "\n".join(lines)


def _cell(value, digits=4):
    if isinstance(value, (float, np.floating, int, np.integer)) and not isinstance(
        value, (bool, np.bool_)
    ):
        text = format_number(value.item() if hasattr(value, "item") else value, digits)
    else:
        text = str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def library_versions():
    """Returns the versions of Python and the libraries a study's numbers depend on."""
    import matplotlib
    import sklearn
    import tensorflow

    return {
        "python": platform.python_version(),
        "keras": keras.__version__,
        "tensorflow": tensorflow.__version__,
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "scikit-learn": sklearn.__version__,
        "matplotlib": matplotlib.__version__,
    }


def _jsonable(value):
    if isinstance(value, dict):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(item) for item in value]
    if isinstance(value, pathlib.Path):
        return str(value)
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON has no NaN or infinity
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(
        f"Study settings must be JSON-able; received {value!r} of type "
        f"{type(value).__name__}."
    )


def write_study(result, options, name, duration=None):
    """Writes a study's four files into `options.output`.

    Args:
        result: `StudyResult`.
        options: `StudyOptions`.
        name: str, the study's name.
        duration: float or None, seconds the study ran, recorded in
            `results.json` and the summary. Defaults to `None`.

    Returns:
        dict mapping each file name of `FILES` to the path written.

    Raises:
        ValueError: if the verdict is not one of `VERDICTS`.

    Example:

    >>> figure, axes = new_figure()
    >>> result = StudyResult(
    ...     claim="Lower is better.", protocol="None.",
    ...     table=pd.DataFrame({"x": [1.0]}), verdict="SUPPORTED",
    ...     evidence="x = 1.", literature="None.", settings={}, figure=figure)
    >>> options = StudyOptions(seeds=(0,), quick=True, output=pathlib.Path("out"))
    >>> sorted(write_study(result, options, "demo"))
    ['figure.png', 'results.csv', 'results.json', 'summary.md']
    """
    if result.verdict not in VERDICTS:
        raise ValueError(
            f"A study's verdict must be one of {', '.join(VERDICTS)}; "
            f"received verdict={result.verdict!r}."
        )
    output = pathlib.Path(options.output)
    output.mkdir(parents=True, exist_ok=True)
    paths = {file: output / file for file in FILES}
    result.table.to_csv(paths["results.csv"], index=False)
    result.figure.savefig(paths["figure.png"], dpi=FIGURE_DPI)
    record = {
        "study": name,
        "verdict": result.verdict,
        "claim": result.claim,
        "evidence": result.evidence,
        "command": options.command or f"python -m studies.{name}",
        "seeds": list(options.seeds),
        "quick": options.quick,
        "data": options.data.source if options.data else "built-in",
        "backend": keras.backend.backend(),
        "versions": library_versions(),
        "duration_s": duration,
        "settings": result.settings,
    }
    paths["results.json"].write_text(json.dumps(_jsonable(record), indent=2) + "\n")
    paths["summary.md"].write_text(_summary(result, options, name, record))
    return paths


def _summary(result, options, name, record):
    title = name.replace("_", " ").capitalize()
    quick = (
        "\n> Run with `--quick`: a tiny version for tests. Its numbers are too "
        "few to read the verdict from.\n"
        if options.quick
        else ""
    )
    duration = (
        f", {record['duration_s']:.0f} s" if record["duration_s"] is not None else ""
    )
    versions = ", ".join(f"{k} {v}" for k, v in record["versions"].items())
    shown = result.table if result.summary_table is None else result.summary_table
    return (
        f"# Study: {title}\n{quick}\n"
        f"**Verdict: {result.verdict}**\n\n"
        f"## Claim\n\n{result.claim.strip()}\n\n"
        f"## Protocol\n\n{result.protocol.strip()}\n\n"
        f"## Results\n\n![{name}](figure.png)\n\n"
        f"{markdown_table(shown)}\n\n"
        f"Full precision: [results.csv](results.csv); settings: "
        f"[results.json](results.json).\n\n"
        f"## Verdict: {result.verdict}\n\n{result.evidence.strip()}\n\n"
        f"## Literature\n\n{result.literature.strip()}\n\n"
        f"## Reproduce\n\n```\n{record['command']}\n```\n\n"
        f"Seeds {', '.join(map(str, options.seeds))}; data: {record['data']}; "
        f"backend {record['backend']}{duration}; {versions}.\n"
    )


def study_main(name, run, *, accepts_csv=False, argv=None):
    """Runs a study from the command line and writes its four files.

    Prints the verdict and one line per file written. Bad input prints one
    line `error: ...` on stderr and returns 2, before anything is trained.

    Args:
        name: str, the study's name.
        run: callable `run(options) -> StudyResult`.
        accepts_csv: bool, whether the study runs on `--csv/--target/--task`.
            Defaults to `False`.
        argv: list of str or None, the arguments; `None` reads `sys.argv`.

    Returns:
        int, the exit status: 0, or 2 for bad input.

    Example:

    >>> study_main("demo", None, argv=["--seeds", "-1"])
    2
    """
    try:
        options = parse_options(name, argv, accepts_csv)
        # Studies build many small models on purpose: TensorFlow's retracing
        # warnings about that would bury the output.
        tf.get_logger().setLevel("ERROR")
        started = time.perf_counter()
        result = run(options)
        duration = time.perf_counter() - started
    except TemplateError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    paths = write_study(result, options, name, duration=duration)
    print(f"{name}: {result.verdict} ({duration:.0f} s)")
    for path in paths.values():
        print(f"wrote {path}")
    return 0
