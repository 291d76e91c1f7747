"""The search behind `python -m tuning.search`: arguments, trials, results.

`tuning.search.main` starts the local workers first (`tuning.workers`) and
then calls `main` here, which imports TensorFlow.

Example:

>>> parser().parse_args(["--task", "binary", "--workers", "2"]).workers
2
"""

import json
import os
import sys

import numpy as np

from templates import artifacts, backend, jax_runtime
from templates.baselines import baseline_scores
from templates.cli import (
    ArgumentParser,
    add_backend_argument,
    add_data_arguments,
    exits_cleanly_on_bad_input,
    format_metrics,
    load_data,
    parse_backend_arguments,
)
from templates.errors import TemplateError
from templates.model import load_template, template_module
from templates.recipe import TemplateData, prepare
from templates.tasks import TASKS, get_task
from templates.training import TrainingConfig, seed_everything
from tuning import distributed, workers
from tuning.final_model import Retraining
from tuning.hypermodel import TemplateHyperModel
from tuning.importance import importance, plot_sensitivity
from tuning.leaderboard import leaderboard
from tuning.progress_oracle import BEST_EPOCH
from tuning.report import write_report
from tuning.space import FIX_SYNTAX, describe, narrow_space, template_space
from tuning.tuners import DEFAULT_TRIALS_AHEAD, TUNERS, check_tuner, make_tuner

EXIT_SEARCH_FAILED = 1
SETTINGS_FILE = workers.SETTINGS_FILE
# Settings that must match for a search to resume; --max-trials may grow.
RESUME_SETTINGS = ("task", "template", "tuner", "data", "space", "max_epochs", "patience", "folds",
                   "seed")
# Below this many training and validation rows, trials are cross-validated by
# default: a fifth of them is too few validation rows to rank trials by.
CROSS_VALIDATION_MAX_ROWS = 2000
DEFAULT_FOLDS = 5
# The final model averages this many of the best trials, each retrained.
DEFAULT_ENSEMBLE = 3


class SearchFailed(Exception):
    """The search could not finish: too many failed trials, or no workers left."""


def parser():
    result = ArgumentParser(prog="python -m tuning.search", description="Tune a template model with KerasTuner.")
    result.add_argument("--template", metavar="FILE",
                        help="a template file (e.g. a copy of templates/binary.py): the search "
                        "space is its own hp.* declarations")
    result.add_argument("--task", help=f"the bundled template of a task, one of: {', '.join(TASKS)} "
                        "(or the task of --template)")
    add_data_arguments(result)
    result.add_argument("--tuner", default="random", help=f"one of: {', '.join(TUNERS)} (default: random)")
    result.add_argument("--max-trials", type=int, default=20, help="trials in all (default: 20)")
    result.add_argument("--max-epochs", type=int, default=100,
                        help="epoch limit per trial; early stopping ends sooner (default: 100)")
    result.add_argument("--patience", type=int, default=10,
                        help="epochs without validation-loss improvement before a trial stops (default: 10)")
    result.add_argument("--folds", type=int, default=0,
                        help="cross-validation folds per trial, on train+validation; 1 scores "
                        f"trials on the validation split; 0 chooses {DEFAULT_FOLDS} below "
                        f"{CROSS_VALIDATION_MAX_ROWS:,} rows (except with hyperband), else 1 "
                        "(default: 0)")
    result.add_argument("--fix", action="append", default=[], metavar="NAME=...",
                        help=f"fix or narrow a hyperparameter: {FIX_SYNTAX}; repeatable")
    result.add_argument("--ensemble", type=int, default=DEFAULT_ENSEMBLE,
                        help="the final model averages this many of the best trials, each "
                        "retrained on train+validation; 1 keeps the best trial alone "
                        f"(default: {DEFAULT_ENSEMBLE})")
    result.add_argument("--max-consecutive-failures", type=int, default=3,
                        help="failed trials in a row that stop the search (default: 3)")
    result.add_argument("--directory", default=workers.DEFAULT_DIRECTORY,
                        help=f"search state and results (default: {workers.DEFAULT_DIRECTORY})")
    result.add_argument("--workers", type=int, default=0,
                        help="local worker processes; 0 runs trials in this process (default: 0)")
    result.add_argument("--trials-ahead", type=int, default=DEFAULT_TRIALS_AHEAD,
                        help="on JAX, the random search's next trials get ready (models built, "
                        "programs compiled) while one trains, this many at most; 0 starts each "
                        f"when it comes (default: {DEFAULT_TRIALS_AHEAD})")
    result.add_argument("--threads", type=int, default=0,
                        help="compute threads in this process (on TensorFlow, one more runs the "
                        "input pipeline); 0 lets the backend choose (default: 0)")
    result.add_argument("--seed", type=int, default=42)
    add_backend_argument(result)
    return result


def resolve_template(args):
    """The template module to tune: `--template FILE`, or the bundled one of `--task`.

    Sets `args.task` to the template's task.
    """
    if args.template is None:
        if args.task is None:
            raise TemplateError("Expected --task (regression, binary or multiclass) or --template FILE.")
        return template_module(args.task)
    template = load_template(args.template)
    if args.task is not None and get_task(args.task).name != template.TASK:
        raise TemplateError(
            f"Received --task {args.task} with --template {args.template}, a {template.TASK} "
            "template; expected no --task, or the template's own."
        )
    args.task = template.TASK
    return template


def check_arguments(args):
    if args.task is not None:
        get_task(args.task)
    check_tuner(args.tuner)
    for name in ("max_trials", "max_epochs", "patience", "ensemble", "max_consecutive_failures"):
        if getattr(args, name) < 1:
            raise TemplateError(f"Received --{name.replace('_', '-')}={getattr(args, name)}; expected an integer >= 1.")
    for name in ("workers", "threads", "folds", "trials_ahead"):
        if getattr(args, name) < 0:
            raise TemplateError(f"Received --{name.replace('_', '-')}={getattr(args, name)}; "
                                "expected an integer >= 0.")
    if args.folds > 1 and args.tuner == "hyperband":
        raise TemplateError(
            f"Received --folds {args.folds} with --tuner hyperband; Hyperband continues promoted "
            "trials from their weights, which cross-validated trials do not keep. Expected "
            "--folds 1 (or 0) with hyperband."
        )


def resolve_folds(args, num_rows):
    """The folds per trial: `--folds`, or the default for `num_rows` rows and the tuner.

    Example:

    >>> resolve_folds(parser().parse_args(["--task", "binary"]), num_rows=455)
    5
    """
    if args.folds:
        return args.folds
    cross_validate = num_rows < CROSS_VALIDATION_MAX_ROWS and args.tuner != "hyperband"
    return DEFAULT_FOLDS if cross_validate else 1


def check_settings(directory, settings):
    """Refuses a DIR that holds a different search; records this one's settings."""
    path = os.path.join(directory, SETTINGS_FILE)
    if os.path.isfile(path):
        with open(path) as file:
            saved = json.load(file)
        for name in RESUME_SETTINGS:
            if saved.get(name) != settings[name]:
                raise TemplateError(
                    f"'{directory}' holds a search with {name}={saved.get(name)!r}, but this one "
                    f"has {name}={settings[name]!r}; choose another --directory or use the same settings."
                )
    elif os.path.isfile(directory):
        raise TemplateError(f"--directory '{directory}' is a file; expected a folder.")
    elif os.path.isdir(directory) and not workers.holds_only_worker_logs(directory):
        raise TemplateError(f"--directory '{directory}' is not empty and holds no search; choose another folder.")
    os.makedirs(directory, exist_ok=True)
    artifacts.write_json(settings, path)


def _is_worker():
    tuner_id = os.environ.get("KERASTUNER_TUNER_ID", "")
    return "KERASTUNER_ORACLE_IP" in os.environ and "chief" not in tuner_id


def _search(args, argv, hypermodel, search_args, pool):
    """Runs the trials; returns the oracle (in a worker: `None`) and the best trials' held processes.

    The processes are `{trial ID: IsolatedCall}` (`TemplateTuner.keep_best`):
    on JAX, in one process, the best `--ensemble` trials' wait to be
    retrained there. The caller releases them.
    """
    def new_tuner(keep_best=0):
        return make_tuner(args.tuner, hypermodel, directory=args.directory,
                          max_trials=args.max_trials, max_epochs=args.max_epochs, seed=args.seed,
                          max_consecutive_failures=args.max_consecutive_failures,
                          trials_ahead=args.trials_ahead, keep_best=keep_best)

    chief_address = f"{os.environ.get('KERASTUNER_ORACLE_IP')}:{os.environ.get('KERASTUNER_ORACLE_PORT')}"
    if _is_worker():
        distributed.wait_for_chief(chief_address)
        new_tuner().search(*search_args, verbose=0)
        return None, {}
    if "KERASTUNER_ORACLE_IP" in os.environ:  # the chief of a multi-machine search
        tuner = new_tuner()
        tuner.save()
        distributed.serve(tuner.oracle, chief_address)
        return tuner.oracle, {}
    if args.workers:
        if pool is None:
            pool = workers.new_pool(argv, args.workers, args.directory)
            pool.start()
        with workers.environment(KERASTUNER_TUNER_ID="chief",
                                 KERASTUNER_ORACLE_IP=workers.LOCALHOST,
                                 KERASTUNER_ORACLE_PORT=str(pool.port)):
            try:
                tuner = new_tuner()
                _announce(tuner.oracle)
                tuner.save()
                finished = distributed.serve(tuner.oracle, f"{workers.LOCALHOST}:{pool.port}", pool)
            finally:
                pool.stop()
            if not finished:
                raise SearchFailed(
                    f"every worker died {workers.MAX_RESTARTS + 1} times; see "
                    f"{pool.log_dir}/*.log. Finished trials are kept: "
                    "run the same command to resume."
                )
            return tuner.oracle, {}
    # One process: the same tuner ID as a chief, so either mode resumes the other.
    with workers.environment(KERASTUNER_TUNER_ID="chief"):
        tuner = new_tuner(keep_best=args.ensemble)
        _announce(tuner.oracle)
        try:
            tuner.search(*search_args, verbose=0)
        except BaseException:  # a search that stopped on an error leaves no process waiting
            tuner.release_finished_trials()
            raise
        finally:
            tuner.stop_trials_ahead()
        return tuner.oracle, tuner.finished_trial_processes()


def _announce(oracle):
    ended = len(oracle.end_order)
    if ended:
        print(f"resuming: {ended} of {oracle.max_trials} trials finished", flush=True)


def _set_threads(threads):
    if threads and backend.current_backend() == "jax":
        jax_runtime.limit_jax_threads(threads)
    elif threads:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        # One more inter-op thread than compute threads: with a single one,
        # the input pipeline waits for the training step and a trial takes
        # about 25 % longer (measured with --threads 1).
        tf.config.threading.set_inter_op_parallelism_threads(threads + 1)


def write_results(args, template, oracle, space, frame, labels, split, folds, trial_row_counts=(),
                  held=None):
    """Writes the leaderboard, the final model (the best trials, retrained and averaged) and the report.

    `held`: `{trial ID: IsolatedCall}` of trials' processes that wait to
    retrain their configuration (`_search`).
    """
    board = leaderboard(oracle, names=list(space))
    artifacts.replace_atomically(os.path.join(args.directory, "leaderboard.csv"),
                                 lambda path: board.to_csv(path, index=False))
    if oracle.stopped_by_failures:
        raise SearchFailed(
            f"the search stopped after {oracle.consecutive_failures} consecutive failed trials "
            f"(--max-consecutive-failures {oracle.max_consecutive_failures}); last: "
            f"{board['reason'].iloc[-1] or 'see leaderboard.csv'}. Fix or narrow the space with --fix."
        )
    best = [trial for trial in oracle.get_best_trials(args.ensemble) if trial.status == "COMPLETED"]
    if not best:
        raise SearchFailed("no trial completed; see leaderboard.csv for the reasons.")
    configurations = [
        ({name: trial.hyperparameters.get(name) for name in space},
         int(trial.metrics.get_last_value(BEST_EPOCH)))
        for trial in best
    ]
    # On JAX each configuration retrains with the program its trial compiled,
    # in that trial's process where it waits.
    retraining = Retraining(args.task, frame, labels, split, configurations, seed=args.seed,
                            template=template, trial_row_counts=trial_row_counts,
                            max_epochs=args.max_epochs,
                            held=[(held or {}).get(trial.trial_id) for trial in best])
    # While the final models train in their processes: the report's plot,
    # the baselines and the importances.
    plot_sensitivity(board, space, os.path.join(args.directory, "sensitivity.png"))
    baselines = baseline_scores(args.task, frame, labels.values, split)
    importances = importance(board, space, seed=args.seed)
    final = retraining.result()
    for position, reason in final.failures.items():
        print(f"left out of the final model: trial {best[position].trial_id}, whose retraining "
              f"diverged: {reason}", flush=True)
    artifacts.save_model(final.model, os.path.join(args.directory, "best_model.keras"))
    members = [{"trial": best[position].trial_id, "score": best[position].score,
                "hyperparameters": {**configurations[position][0],
                                    "epochs": configurations[position][1]}}
               for position in final.members]
    artifacts.write_json({**members[0], "ensemble": members},
                         os.path.join(args.directory, "best_hyperparameters.json"))
    artifacts.write_json({
        "task": args.task, "backend": backend.current_backend(),
        "class_names": labels.class_names, "positive_class": labels.positive_class,
        "best_trial": members[0]["trial"], "best_epoch": members[0]["hyperparameters"]["epochs"],
        "ensemble_trials": [member["trial"] for member in members], "folds": folds,
        "rows": {name: len(getattr(split, name)) for name in ("train", "validation", "test")},
        "test": final.test, "baselines": baselines, "importance": importances,
    }, os.path.join(args.directory, "metrics.json"))
    write_report(os.path.join(args.directory, "report.md"), args.task, final.test, baselines,
                 importances, members, trials=board["status"].value_counts().to_dict(), folds=folds)
    return final.test, baselines


@exits_cleanly_on_bad_input
def main(argv, pool=None):
    """Runs a search from the command line, after `tuning.search.main`.

    Args:
        argv: list of str, the command-line arguments.
        pool: the `tuning.workers.WorkerPool` already started for
            `--workers`, or `None` to start one here.

    Returns:
        int, the exit status: 0; 1 when the search failed (too many failed
        trials in a row, or all workers died); 2 for bad input.
    """
    args = parse_backend_arguments(parser(), argv)
    check_arguments(args)
    template = resolve_template(args)
    features, target, test_features, test_target = load_data(args, args.task)
    frame, labels, split, _ = prepare(
        args.task, features, target, test_features=test_features, test_target=test_target,
        config=TrainingConfig(positive_class=args.positive_class, seed=args.seed),
    )
    folds = resolve_folds(args, len(split.train) + len(split.validation))
    # Cross-validated trials train on folds of train+validation together.
    rows = np.concatenate([split.train, split.validation]) if folds > 1 else split.train
    data = TemplateData(args.task, frame, labels, split)
    data = data.with_rows(rows, () if folds > 1 else split.validation)
    # A worker trains the trials the chief's oracle hands it, whose space the
    # chief declared: reading it again would build the template's model in
    # one more process, at the start, beside the chief's (about 0.5 s each).
    space = {} if _is_worker() else narrow_space(args.fix, template_space(template, data))
    # On JAX a trial's folds run side by side on every core, in a local
    # worker too (`--threads` aside): with two workers on two cores, an
    # 8-trial search took 16.5-16.9 s so, against 18.2-18.4 s one fold at a time.
    hypermodel = TemplateHyperModel(template, data, space=space, max_epochs=args.max_epochs,
                                    patience=args.patience, folds=folds, seed=args.seed)
    if not _is_worker():
        check_settings(args.directory, {
            "task": args.task, "tuner": args.tuner, "space": describe(space),
            "template": os.path.abspath(args.template) if args.template else None,
            "data": [args.csv, args.target, args.test_csv] if args.csv else get_task(args.task).default_dataset,
            "max_epochs": args.max_epochs, "patience": args.patience, "folds": folds,
            "seed": args.seed,
        })
    _set_threads(args.threads)
    seed_everything(args.seed)
    search_args = ()
    held = {}
    try:
        oracle, held = _search(args, argv, hypermodel, search_args, pool)
        if oracle is None:
            return 0
        test, baselines = write_results(args, template, oracle, space, frame, labels, split, folds,
                                        hypermodel.program_row_counts(), held)
    except SearchFailed as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_SEARCH_FAILED
    finally:  # the trials' processes that waited to retrain (on JAX)
        for call in held.values():
            call.release()
    print(f"test: {format_metrics(test)}")
    for name, scores in baselines.items():
        print(f"{name}: {format_metrics(scores)}")
    print(f"saved: {args.directory}")
    return 0
