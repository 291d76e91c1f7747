"""Benchmark of `tuning.search`: workers speed-up, memory over trials, quality vs baselines.

    python benchmarks/tuning.py [--trials-speed 8] [--rounds 3] [--trials-memory 30] \
        [--memory-workers 0,2] [--trials-quality 20] [--seeds 0,1,2] [--max-epochs E] \
        [--folds K] [--ensemble N] [--parts speed,memory,quality]

Prints, in one run:
1. wall time of the same 8-trial search (breast_cancer) in one process and
   with `--workers 2`, end to end (start-up, search, retraining, report), and
   their ratio, over alternating rounds;
2. resident memory of a 30-trial search (wine, 5 epochs a trial), in one
   process and with `--workers 2`: the search process's after trial 1 and
   after the last trial, and the peak of all its processes (workers, trial
   processes) together during trial 1 and during the last 3 trials; the
   growth is what piles up between trials;
3. on breast_cancer, wine and diabetes, for each seed (which also draws the
   split), the tuned test score against the best scikit-learn baseline on
   the same split (accuracy, or R^2 for diabetes), and the mean difference.

The searches use the command's defaults (`--max-epochs 100`, `--patience
10`, 5-fold cross-validation on these small tables, a final model averaging
the 3 best trials) unless `--max-epochs`, `--folds` or `--ensemble` is given.

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
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QUALITY = (("binary", "accuracy"), ("multiclass", "accuracy"), ("regression", "r2"))


def run_search(directory, *arguments, on_start=None, on_line=None):
    """Runs one search; returns its wall time in seconds."""
    command = [sys.executable, "-m", "tuning.search", "--directory", directory, *arguments]
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True)
    if on_start is not None:
        on_start(process.pid)
    for line in process.stdout:
        if on_line is not None:
            on_line(process.pid, line)
    if process.wait() != 0:
        raise SystemExit(f"search failed: {' '.join(command)}")
    return time.perf_counter() - started


def rss_mb(pid):
    """Resident memory of one process in MB; 0 once it has ended."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def process_tree(pid):
    """`pid` and every process descended from it (workers, trial processes)."""
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    parent = int(stat.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry))
    tree, waiting = [], [pid]
    while waiting:
        tree.append(waiting.pop())
        waiting.extend(children.get(tree[-1], []))
    return tree


class TreeMemory:
    """Samples, every 0.1 s, the resident memory of a search's whole process tree.

    `window()` returns the peak since the previous call, so calling it at
    each trial's progress line gives each trial's peak.
    """

    def __init__(self):
        self.pid = None
        self.peak = 0.0
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)

    def start(self, pid):
        self.pid = pid
        self.thread.start()

    def _sample(self):
        while not self.stopped.wait(0.1):
            self.peak = max(self.peak, sum(rss_mb(pid) for pid in process_tree(self.pid)))

    def window(self):
        peak, self.peak = self.peak, 0.0
        return peak

    def stop(self):
        self.stopped.set()


def integers(text):
    """An argparse type: comma-separated integers, e.g. `0,1,2`."""
    try:
        return [int(item) for item in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}; expected integers separated by commas") from None


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


def memory(trials, root, workers):
    for count in workers:
        search_rss, tree_peaks = [], []
        tree = TreeMemory()

        def sample(pid, line):
            if line.startswith("trial "):
                search_rss.append(rss_mb(pid))
                tree_peaks.append(tree.window())

        run_search(os.path.join(root, f"memory-{count}"), "--task", "multiclass",
                   "--max-trials", str(trials), "--max-epochs", "5", "--workers", str(count),
                   on_start=tree.start, on_line=sample)
        tree.stop()
        print(f"RSS over {len(search_rss)} trials, --workers {count}: search process "
              f"{search_rss[0]:.0f} MB after trial 1, {search_rss[-1]:.0f} MB after trial "
              f"{len(search_rss)} (growth {search_rss[-1] - search_rss[0]:+.0f} MB); all its "
              f"processes together peak at {tree_peaks[0]:.0f} MB until trial 1 ends, "
              f"{max(tree_peaks[-3:]):.0f} MB over the last 3 trials "
              f"(growth {max(tree_peaks[-3:]) - tree_peaks[0]:+.0f} MB)", flush=True)


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
    parser.add_argument("--memory-workers", type=integers, default=[0, 2],
                        help="--workers values of the memory part")
    parser.add_argument("--trials-quality", type=int, default=20)
    parser.add_argument("--quality-workers", type=int, default=2)
    parser.add_argument("--seeds", type=integers, default=[0, 1, 2], help="seeds (and splits) of the quality part")
    parser.add_argument("--max-epochs", type=int, default=None,
                        help="epoch limit per trial in the speed and quality parts "
                        "(default: the command's own, 100)")
    parser.add_argument("--folds", type=int, default=None,
                        help="--folds of the speed and quality searches (default: the command's own)")
    parser.add_argument("--ensemble", type=int, default=None,
                        help="--ensemble of the speed and quality searches (default: the command's own)")
    parser.add_argument("--parts", default="speed,memory,quality")
    args = parser.parse_args()
    search_options = optional_arguments(max_epochs=args.max_epochs, folds=args.folds,
                                        ensemble=args.ensemble)
    with tempfile.TemporaryDirectory() as root:
        parts = args.parts.split(",")
        if "speed" in parts:
            speed(args.trials_speed, root, args.rounds, search_options)
        if "memory" in parts:
            memory(args.trials_memory, root, args.memory_workers)
        if "quality" in parts:
            quality(args.trials_quality, root, args.quality_workers, args.seeds, search_options)


if __name__ == "__main__":
    main()
