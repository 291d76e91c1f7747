"""Benchmark of `tuning.search`: workers speed-up, memory over trials, quality vs baselines.

    python benchmarks/tuning.py [--trials-speed 8] [--rounds 3] [--trials-memory 30] \
        [--trials-quality 20] [--seeds 0,1,2] [--max-epochs E] [--folds K] \
        [--parts speed,memory,quality]

Prints, in one run:
1. wall time of the same 8-trial search (breast_cancer) in one process and
   with `--workers 2`, end to end (start-up, search, retraining, report), and
   their ratio, over alternating rounds;
2. resident memory of a 30-trial search after trial 1 and after the last
   trial (the growth is what leaks between trials);
3. on breast_cancer, wine and diabetes, for each seed (which also draws the
   split), the tuned test score against the best scikit-learn baseline on
   the same split (accuracy, or R^2 for diabetes), and the mean difference.

The searches use the command's defaults (`--max-epochs 100`, `--patience
10`, 5-fold cross-validation on these small tables) unless `--max-epochs` or
`--folds` is given.

Every search runs as its own `python -m tuning.search` process, as a user
would run it, in a fresh temporary folder.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QUALITY = (("binary", "accuracy"), ("multiclass", "accuracy"), ("regression", "r2"))


def run_search(directory, *arguments, on_line=None):
    """Runs one search; returns its wall time in seconds."""
    command = [sys.executable, "-m", "tuning.search", "--directory", directory, *arguments]
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True)
    for line in process.stdout:
        if on_line is not None:
            on_line(process.pid, line)
    if process.wait() != 0:
        raise SystemExit(f"search failed: {' '.join(command)}")
    return time.perf_counter() - started


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def optional_arguments(**values):
    """`--name value` for each value that is not `None`."""
    return [text for name, value in values.items() if value is not None
            for text in (f"--{name.replace('_', '-')}", str(value))]


def speed(trials, root, rounds, search_options):
    arguments = ["--task", "binary", "--max-trials", str(trials), *search_options]
    ratios = []
    for round_ in range(rounds):
        one = run_search(os.path.join(root, f"one-{round_}"), *arguments)
        two = run_search(os.path.join(root, f"two-{round_}"), *arguments, "--workers", "2")
        ratios.append(two / one)
        print(f"{trials}-trial search, breast_cancer: one process {one:.1f}s, "
              f"--workers 2 {two:.1f}s, ratio {two / one:.2f}", flush=True)
    print(f"median ratio over {rounds} rounds: {statistics.median(ratios):.2f}", flush=True)


def memory(trials, root):
    samples = []

    def sample(pid, line):
        if line.startswith("trial "):
            samples.append(rss_mb(pid))

    run_search(os.path.join(root, "memory"), "--task", "multiclass", "--max-trials", str(trials),
               "--max-epochs", "5", on_line=sample)
    print(f"RSS over {len(samples)} trials: {samples[0]:.0f} MB after trial 1, "
          f"{samples[-1]:.0f} MB after trial {len(samples)}, max {max(samples):.0f} MB, "
          f"growth {samples[-1] - samples[0]:+.0f} MB", flush=True)


def quality(trials, root, workers, seeds, search_options):
    for task, metric in QUALITY:
        differences = []
        for seed in seeds:
            directory = os.path.join(root, f"quality-{task}-{seed}")
            seconds = run_search(directory, "--task", task, "--max-trials", str(trials),
                                 "--workers", str(workers), "--seed", str(seed), *search_options)
            with open(os.path.join(directory, "metrics.json")) as file:
                metrics = json.load(file)
            tuned = metrics["test"][metric]
            name, best = max(((n, s[metric]) for n, s in metrics["baselines"].items()),
                             key=lambda item: item[1])
            differences.append(tuned - best)
            print(f"{task:<10} seed {seed} {metric}: tuned {tuned:.4f}, best baseline {best:.4f} "
                  f"({name}), difference {tuned - best:+.4f}; {trials} trials in {seconds:.0f}s",
                  flush=True)
        print(f"{task:<10} mean difference over seeds {','.join(map(str, seeds))}: "
              f"{statistics.mean(differences):+.4f}", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials-speed", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of the speed part")
    parser.add_argument("--trials-memory", type=int, default=30)
    parser.add_argument("--trials-quality", type=int, default=20)
    parser.add_argument("--quality-workers", type=int, default=2)
    parser.add_argument("--seeds", default="0,1,2", help="seeds (and splits) of the quality part")
    parser.add_argument("--max-epochs", type=int, default=None,
                        help="epoch limit per trial in the speed and quality parts "
                        "(default: the command's own, 100)")
    parser.add_argument("--folds", type=int, default=None,
                        help="--folds of the speed and quality searches (default: the command's own)")
    parser.add_argument("--parts", default="speed,memory,quality")
    args = parser.parse_args()
    search_options = optional_arguments(max_epochs=args.max_epochs, folds=args.folds)
    with tempfile.TemporaryDirectory() as root:
        parts = args.parts.split(",")
        if "speed" in parts:
            speed(args.trials_speed, root, args.rounds, search_options)
        if "memory" in parts:
            memory(args.trials_memory, root)
        if "quality" in parts:
            quality(args.trials_quality, root, args.quality_workers,
                    [int(seed) for seed in args.seeds.split(",")], search_options)


if __name__ == "__main__":
    main()
