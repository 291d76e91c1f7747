"""The command line of the templates: options, data loading, results printed.

Bad input ends the program with one line, `error: <what was wrong>`, on
stderr and exit status 2, before anything is trained or written.

Example:

>>> from templates import multiclass
>>> multiclass.main(["--epochs", "2", "--output", "wine-run", "--quiet"])
... # doctest: +ELLIPSIS
best epoch: ...
test: accuracy=...
saved: wine-run
0
"""

import argparse
import functools
import importlib
import sys

from templates import artifacts, backend, data
from templates.errors import TemplateError
from templates.numbers import format_number
from templates.tasks import get_task
from templates.training import GD_MODES, TrainingConfig

EXIT_BAD_INPUT = 2


class ArgumentParser(argparse.ArgumentParser):
    """An `argparse` parser whose errors are one line and exit status 2."""

    def error(self, message):
        raise TemplateError(message)


def exits_cleanly_on_bad_input(main):
    """Turns `TemplateError` into `error: ...` on stderr and exit status 2."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except TemplateError as error:
            print(f"error: {error}", file=sys.stderr)
            return EXIT_BAD_INPUT

    return wrapper


def parse_hidden(text):
    """Parses `--hidden 64,64` into `(64, 64)`; `--hidden ""` means none."""
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid --hidden {text!r}; expected comma-separated layer sizes, e.g. 64,64"
        ) from None


def add_data_arguments(parser):
    """Adds `--csv`, `--target` and `--test-csv`, shared with the tuning CLI."""
    parser.add_argument("--csv", help="training data; without it, a bundled data set")
    parser.add_argument("--target", help="the target column of --csv")
    parser.add_argument("--test-csv", help="a separate test set with the same columns")
    parser.add_argument("--positive-class", help="binary only: the label to treat as positive")


def add_backend_argument(parser):
    """Adds `--backend`, which `templates.backend` reads before Keras is imported."""
    parser.add_argument("--backend", choices=list(backend.BACKENDS),
                        help="Keras backend (default: KERAS_BACKEND, else keras.json, else "
                        f"{backend.DEFAULT_BACKEND})")


def parse_backend_arguments(parser, argv):
    """Parses `argv` and checks that Keras runs on the `--backend` it names."""
    args = parser.parse_args(argv)
    backend.check_backend(args.backend)
    return args


def template_parser(task, settings=TrainingConfig(), prog=None):
    """The parser of a template's options; `settings` gives the run settings' defaults.

    The model's options (`--hidden`, `--activation`, `--learning-rate`, ...)
    default to `None`: the template's own hyperparameter defaults.
    """
    spec = get_task(task)
    parser = ArgumentParser(
        prog=prog or f"python -m templates.{task}",
        description=f"Train the {task} template. Without --csv it trains on "
        f"scikit-learn's bundled '{spec.default_dataset}' data set.",
    )
    add_data_arguments(parser)
    model = parser.add_argument_group("model (default: the template's hyperparameter defaults)")
    model.add_argument("--hidden", type=parse_hidden,
                       help="hidden layer sizes, one width, e.g. 64,64 (depth and width)")
    model.add_argument("--activation", help="hidden activation, e.g. relu, tanh")
    model.add_argument("--dropout", type=float)
    model.add_argument("--l2", type=float)
    model.add_argument("--optimizer", help="e.g. adam, sgd, momentum, rmsprop")
    model.add_argument("--learning-rate", type=float)
    model.add_argument("--batch-size", type=int)
    parser.add_argument("--gd", choices=list(GD_MODES), default=settings.gd,
                        help="batch: whole training set per step; stochastic: one "
                        "row per step; minibatch (default): --batch-size rows")
    parser.add_argument("--epochs", type=int, default=settings.epochs,
                        help=f"upper bound; early stopping ends sooner (default: {settings.epochs})")
    parser.add_argument("--patience", type=int, default=settings.patience,
                        help=f"epochs without improvement before stopping (default: {settings.patience})")
    parser.add_argument("--seed", type=int, default=settings.seed)
    parser.add_argument("--output", help="results folder (default: a new folder under runs/)")
    parser.add_argument("--overwrite", action="store_true", help="allow writing into an existing --output")
    parser.add_argument("--quiet", action="store_true", help="no progress line")
    add_backend_argument(parser)
    return parser


def parse_arguments(task, argv=None, settings=TrainingConfig()):
    """Parses a template's command line and checks its --output folder.

    Args:
        task: str, the template's task.
        argv: list of str (default: `sys.argv[1:]`).
        settings: `TrainingConfig`, the template's settings (the defaults).

    Returns:
        The `argparse.Namespace`, with `output` set to a new folder under
        `runs/` when not given.
    """
    args = parse_backend_arguments(template_parser(task, settings), argv)
    args.output = args.output or artifacts.default_output_dir(task)
    artifacts.check_output_dir(args.output, args.overwrite)
    args.settings = settings
    return args


def load_data(args, task):
    """Returns `(features, target, test_features, test_target)` from the arguments."""
    default_dataset = get_task(task).default_dataset
    if args.csv is None:
        if args.target or args.test_csv:
            raise TemplateError("--target and --test-csv need --csv FILE, the training data.")
        features, target = data.load_bundled(default_dataset)
        return features, target, None, None
    if not args.target:
        raise TemplateError(f"--csv {args.csv} needs --target COLUMN, the column to predict.")
    features, target = data.split_target(data.read_csv(args.csv), args.target, f"'{args.csv}'")
    if args.test_csv is None:
        return features, target, None, None
    test_frame = data.read_csv(args.test_csv)
    data.check_same_columns(
        [*features.columns, args.target], list(test_frame.columns), f"'{args.test_csv}'"
    )
    test_features, test_target = data.split_target(test_frame, args.target, f"'{args.test_csv}'")
    return features, target, test_features, test_target


def config_from_args(args):
    """The `TrainingConfig` of the parsed arguments (on the template's settings)."""
    return args.settings.replace(
        hidden=args.hidden, activation=args.activation, dropout=args.dropout, l2=args.l2,
        optimizer=args.optimizer, learning_rate=args.learning_rate, gd=args.gd,
        batch_size=args.batch_size, epochs=args.epochs, patience=args.patience,
        positive_class=args.positive_class, seed=args.seed,
    )


def format_metrics(metrics):
    """Formats `{name: value}` as `name=value` pairs with about 4 significant digits.

    Example:

    >>> format_metrics({"accuracy": 0.9736842105263158, "mse": 1234.5678, "r2": 1.0})
    'accuracy=0.9737 mse=1235 r2=1'
    """
    return " ".join(f"{name}={format_number(value)}" for name, value in metrics.items())


def print_results(run, output_dir):
    """Prints the lines a person wants at the end of a run."""
    if run.metrics["positive_class"] is not None:
        print(f"positive class: {run.metrics['positive_class']}")
    print(f"best epoch: {run.metrics['best_epoch']} of {run.metrics['epochs_run']}")
    print(f"validation: {format_metrics(run.metrics['validation'])}")
    print(f"test: {format_metrics(run.metrics['test'])}")
    print(f"saved: {output_dir}")


def run_template(task, argv=None):
    """Runs the bundled template of `task` (`templates.<task>.main`).

    Returns:
        int, the exit status: 0, or 2 for bad input.
    """
    return importlib.import_module(f"templates.{get_task(task).name}").main(argv)
