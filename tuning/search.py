"""Tune a template: `python -m tuning.search --template churn.py` or `--task binary`.

Runs a KerasTuner search over the hyperparameters the template declares
(`tuning.space.template_space`: the bundled templates declare the learning
rate, optimizer, activation, depth, width, dropout, L2 and batch size; an
edited copy searches whatever it declares), one line per trial. Each trial
runs the template's own `fit_model`, with early stopping up to --max-epochs
(Hyperband: up to its own budget), and is scored by its best validation
loss without the L2 penalty (`val_data_loss`: trials with different L2
compare fairly).
When the search ends, the best --ensemble configurations (default 3) are
each retrained on train+validation for their best epoch count, averaged into
one model and evaluated once on the test split. DIR then holds
`best_hyperparameters.json`, `leaderboard.csv`, `best_model.keras` (usable
with `python -m templates.predict`), `metrics.json`, `report.md` and
`sensitivity.png`.

    python -m tuning.search --task regression --csv data.csv --target price \\
        --tuner bayesian --max-trials 20 --fix optimizer=adam --directory runs/tune

Each trial trains in a child process (on Linux), so memory stays flat
across trials (`tuning.trial_process`). Run the same command again after an
interruption (Ctrl-C, kill -9) and the search resumes from DIR, keeping
every finished trial. --workers N runs N local worker processes against a
chief in this process (KerasTuner's gRPC distributed mode on 127.0.0.1; on
Linux the workers are forked once this process has imported TensorFlow);
see docs/tuning.md for several machines.

Example:

>>> main(["--task", "multiclass", "--max-trials", "1", "--max-epochs", "2",
...       "--directory", "runs/doc-tuning", "--fix", "width=16"])  # doctest: +SKIP
0
"""

import contextlib
import gc
import sys

from tuning import workers
from tuning.trial_process import can_fork


def main(argv=None):
    """Runs a search from the command line.

    With `--workers N`, the N local workers start as early as they can: on
    Linux they are forked right after this process imports TensorFlow, so
    that it is imported once; elsewhere they are spawned before that import,
    so that their imports overlap this one (`tuning.workers`).

    Args:
        argv: list of str (default: `sys.argv[1:]`).

    Returns:
        int, the exit status: 0; 1 when the search failed (too many failed
        trials in a row, or all workers died); 2 for bad input.
    """
    workers.follow_chief()
    argv = sys.argv[1:] if argv is None else list(argv)
    pool = workers.plan(argv)
    fork = pool is not None and can_fork()
    if pool is not None and not fork:
        pool.start()
    try:
        with _frozen_once_imported():
            from templates.cli import EXIT_BAD_INPUT
            from tuning import cli  # imports TensorFlow (or JAX)

        if fork:
            pool.fork(cli.main)
        status = cli.main(argv, pool=pool)
    finally:
        if pool is not None:
            pool.stop()
    if status == EXIT_BAD_INPUT and pool is not None:
        pool.remove_created()
    return status


@contextlib.contextmanager
def _frozen_once_imported():
    """Imports without garbage collections, then freezes what they made (`gc.freeze`).

    Importing Keras with JAX or TensorFlow makes some 300,000 objects that
    live as long as the process. Each collection during the imports walks
    them all again (a sixth of the imports' 1.6 s); frozen, later
    collections leave them out, here and in the trials' forked processes.
    A process that imported them already (tests) is left as it is.
    """
    if "tuning.cli" in sys.modules:
        yield
        return
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if was_enabled:
            gc.enable()


if __name__ == "__main__":
    status = main()
    # Frozen, the objects left are freed at exit without the collections
    # that would first walk them all: 0.35 s on JAX, 0.5 s on TensorFlow.
    gc.freeze()
    sys.exit(status)
