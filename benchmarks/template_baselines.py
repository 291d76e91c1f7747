"""Each template's default model against a linear baseline, on every bundled data set.

For each task's bundled data set and each seed, trains the template with its
defaults and fits scikit-learn's ridge (regression) or logistic regression
(classification) on the same split and preprocessing, then prints both test
scores (R^2 or accuracy) and their difference. The templates run on the
backend `--backend` names (default: the kit's own choice, `KERAS_BACKEND`,
keras.json or `templates.backend.DEFAULT_BACKEND`); the first line says which.

    python benchmarks/template_baselines.py [--seeds 0 1 2] [--backend tensorflow|jax]
"""

import argparse

# The kit first: importing it chooses the backend from --backend (sys.argv),
# before anything imports Keras.
import templates  # noqa: F401  # isort: skip

from templates.backend import BACKENDS, check_backend, current_backend
from templates.baselines import template_against_linear
from templates.tasks import TASKS


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--backend", choices=BACKENDS,
                        help="Keras backend of the templates (default: the kit's own choice)")
    args = parser.parse_args()
    check_backend(args.backend)
    print(f"backend: {current_backend()}")
    print(f"{'task':<11} {'data set':<14} {'seed':>4} {'metric':>8} {'template':>9} {'linear':>8} {'diff':>7}")
    for task, spec in TASKS.items():
        for seed in args.seeds:
            ours, linear = template_against_linear(task, seed)
            print(f"{task:<11} {spec.default_dataset:<14} {seed:>4} {spec.score_metric:>8} "
                  f"{ours:>9.4f} {linear:>8.4f} {ours - linear:>+7.4f}", flush=True)


if __name__ == "__main__":
    main()
