"""Each template's default model against a linear baseline, on every bundled data set.

For each task's bundled data set and each seed, trains the template with its
defaults and fits scikit-learn's ridge (regression) or logistic regression
(classification) on the same split and preprocessing, then prints both test
scores (R^2 or accuracy) and their difference.

    python benchmarks/template_baselines.py [--seeds 0 1 2]
"""

import argparse

from templates.baselines import baseline_score
from templates.data import load_bundled
from templates.recipe import train
from templates.tasks import TASKS
from templates.training import TrainingConfig


def compare(task, seed):
    """Returns `(template_score, baseline_score)` for one task and seed."""
    spec = TASKS[task]
    features, target = load_bundled(spec.default_dataset)
    config = TrainingConfig(seed=seed)
    run = train(task, features, target, config=config, verbose=0)
    return run.metrics["test"][spec.score_metric], baseline_score(task, features, target, config=config)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    print(f"{'task':<11} {'data set':<14} {'seed':>4} {'metric':>8} {'template':>9} {'linear':>8} {'diff':>7}")
    for task, spec in TASKS.items():
        for seed in args.seeds:
            ours, linear = compare(task, seed)
            print(f"{task:<11} {spec.default_dataset:<14} {seed:>4} {spec.score_metric:>8} "
                  f"{ours:>9.4f} {linear:>8.4f} {ours - linear:>+7.4f}")


if __name__ == "__main__":
    main()
