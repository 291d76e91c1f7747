"""The command line shared by the three templates.

Bad input ends the program with one line, `error: <what was wrong>`, on
stderr and exit status 2, before anything is trained or written.

Example:

>>> run_template("multiclass", ["--epochs", "2", "--output", "wine-run", "--quiet"])
... # doctest: +ELLIPSIS
best epoch: ...
test: accuracy=...
saved: wine-run
0
"""

import argparse
import functools
import sys

from templates import artifacts, data
from templates.errors import TemplateError
from templates.model import ACTIVATION_INITIALIZERS, OPTIMIZERS
from templates.recipe import train
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


def template_parser(task):
    spec = get_task(task)
    defaults = TrainingConfig()
    parser = ArgumentParser(
        prog=f"python -m templates.{task}",
        description=f"Train the {task} template. Without --csv it trains on "
        f"scikit-learn's bundled '{spec.default_dataset}' data set.",
    )
    add_data_arguments(parser)
    parser.add_argument("--hidden", type=parse_hidden, default=defaults.hidden,
                        help="hidden layer sizes (default: 64,64)")
    parser.add_argument("--activation", choices=list(ACTIVATION_INITIALIZERS), default=defaults.activation)
    parser.add_argument("--dropout", type=float, default=defaults.dropout)
    parser.add_argument("--l2", type=float, default=defaults.l2)
    parser.add_argument("--optimizer", choices=list(OPTIMIZERS), default=defaults.optimizer)
    parser.add_argument("--learning-rate", type=float, default=defaults.learning_rate)
    parser.add_argument("--gd", choices=list(GD_MODES), default=defaults.gd,
                        help="batch: whole training set per step; stochastic: one "
                        "row per step; minibatch (default): --batch-size rows")
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--epochs", type=int, default=defaults.epochs,
                        help="upper bound; early stopping on validation loss ends sooner")
    parser.add_argument("--patience", type=int, default=defaults.patience)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--output", help="results folder (default: a new folder under runs/)")
    parser.add_argument("--overwrite", action="store_true", help="allow writing into an existing --output")
    parser.add_argument("--quiet", action="store_true", help="no per-epoch lines")
    return parser


def load_data(args, default_dataset):
    """Returns `(features, target, test_features, test_target)` from the arguments."""
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
    return TrainingConfig(
        hidden=args.hidden, activation=args.activation, dropout=args.dropout, l2=args.l2,
        optimizer=args.optimizer, learning_rate=args.learning_rate, gd=args.gd,
        batch_size=args.batch_size, epochs=args.epochs, patience=args.patience,
        positive_class=args.positive_class, seed=args.seed,
    )


def format_metrics(metrics):
    return " ".join(f"{name}={value:.4f}" for name, value in metrics.items())


@exits_cleanly_on_bad_input
def run_template(task, argv=None):
    """Runs a template from the command line: data, training, evaluation, saving.

    Args:
        task: str, `regression`, `binary` or `multiclass`.
        argv: list of str, the arguments (default: `sys.argv[1:]`).

    Returns:
        int, the exit status: 0, or 2 for bad input.
    """
    spec = get_task(task)
    args = template_parser(task).parse_args(argv)
    output_dir = args.output or artifacts.default_output_dir(task)
    artifacts.check_output_dir(output_dir, args.overwrite)
    features, target, test_features, test_target = load_data(args, spec.default_dataset)
    run = train(
        task, features, target, test_features=test_features, test_target=test_target,
        config=config_from_args(args), verbose=0 if args.quiet else 2,
    )
    artifacts.save_run(run, output_dir, spec.curve_metric, overwrite=args.overwrite)
    if run.metrics["positive_class"] is not None:
        print(f"positive class: {run.metrics['positive_class']}")
    print(f"best epoch: {run.metrics['best_epoch']} of {run.metrics['epochs_run']}")
    print(f"validation: {format_metrics(run.metrics['validation'])}")
    print(f"test: {format_metrics(run.metrics['test'])}")
    print(f"saved: {output_dir}")
    return 0
