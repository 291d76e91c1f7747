"""Benchmark of `tuning.search`: workers speed-up, memory over trials, quality vs baselines.

    python benchmarks/tuning.py [--trials-speed 8] [--rounds 3] [--trials-memory 30] \
        [--memory-workers 0,2] [--trials-quality 20] [--seeds 0,1,2] [--max-epochs E] \
        [--folds K] [--ensemble N] [--parts speed,memory,quality] \
        [--backend tensorflow|jax | --backends tensorflow,jax [--workers N]] [--warm-cache] \
        [--speed-task binary|multiclass|regression]

Prints, in one run:
1. wall time of the same 8-trial search (breast_cancer; `--speed-task` picks
   another task's bundled data set) in one process and
   with `--workers 2`, end to end (start-up, search, retraining, report), and
   their ratio, over alternating rounds; with `--backends tensorflow,jax`,
   instead, the same 8-trial search (same seed, same trials, one process, or
   `--workers N` on both) on each backend, the order rotating from round to round (TF, JAX, then JAX,
   TF, ...), each wall time, the ratio of each backend to the first one
   listed per round, and the median ratio (target for JAX/TF: <= 0.25);
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
would run it, in a fresh temporary folder, on the backend `--backend` names
(passed to every search of every part; default: the kit's own choice,
`KERAS_BACKEND`, keras.json or `templates.backend.DEFAULT_BACKEND`). Each
line names the backend the search reported in its metrics.json.

On JAX a search keeps its compiled programs in a persistent cache
(`$XDG_CACHE_HOME/keras-templates/jax`), shared by its trial processes.
By default every search gets a new, empty cache (its own XDG_CACHE_HOME in
the temporary folder), as a first search on a new machine would, so that a
later round does not reuse an earlier round's programs (matplotlib keeps its
usual font cache, through MPLCONFIGDIR). With `--warm-cache`
all the searches of the run share one cache (empty at the start of the run:
the first JAX search fills it, and the lines say how many files it held when
each search started).
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
BACKENDS = ("tensorflow", "jax")
# The bundled data set each task's searches run on.
DATASETS = {"binary": "breast_cancer", "multiclass": "wine", "regression": "diabetes"}
# The JAX search against the TensorFlow search (issue 13).
BACKEND_TARGET = 0.25


class Caches:
    """The XDG_CACHE_HOME of each search: a new one per search, or one shared (`warm`)."""

    def __init__(self, root, warm):
        self.root, self.warm = root, warm
        self.count = 0

    def environment(self):
        """The environment of the next search, with its own (or the shared) cache folder."""
        self.count += 1
        name = "cache-shared" if self.warm else f"cache-{self.count}"
        self.directory = os.path.join(self.root, name)
        os.makedirs(self.directory, exist_ok=True)
        # matplotlib keeps its font cache under XDG_CACHE_HOME too: point it at
        # its usual folder, so that no search rebuilds it (about 0.5 s).
        usual = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        matplotlib = os.environ.get("MPLCONFIGDIR") or os.path.join(usual, "matplotlib")
        return {**os.environ, "XDG_CACHE_HOME": self.directory, "MPLCONFIGDIR": matplotlib}

    def files(self):
        """How many files the current JAX compilation cache holds."""
        jax = os.path.join(self.directory, "keras-templates", "jax")
        return sum(len(files) for _, _, files in os.walk(jax))

    def describe(self):
        if self.warm:
            return "one compilation cache shared by all searches of this run (--warm-cache)"
        return "a new, empty compilation cache for every search"


def run_search(directory, *arguments, on_start=None, on_line=None, env=None):
    """Runs one search; returns its wall time in seconds."""
    command = [sys.executable, "-m", "tuning.search", "--directory", directory, *arguments]
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True, env=env)
    if on_start is not None:
        on_start(process.pid)
    for line in process.stdout:
        if on_line is not None:
            on_line(process.pid, line)
    if process.wait() != 0:
        raise SystemExit(f"search failed: {' '.join(command)}")
    return time.perf_counter() - started


def search_backend(directory):
    """The backend a finished search reports in its metrics.json."""
    with open(os.path.join(directory, "metrics.json")) as file:
        return json.load(file).get("backend", "?")


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


def backend_list(text):
    """An argparse type: comma-separated distinct backends, e.g. `tensorflow,jax`."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    if len(names) < 2 or len(set(names)) != len(names) or set(names) - set(BACKENDS):
        raise argparse.ArgumentTypeError(
            f"{text!r}; expected at least two distinct backends among {', '.join(BACKENDS)}, "
            "separated by commas")
    return names


def speed(trials, root, rounds, search_options, caches, task="binary"):
    arguments = ["--task", task, "--max-trials", str(trials), *search_options]
    ratios = []
    for round_ in range(rounds):
        one_directory = os.path.join(root, f"one-{round_}")
        one = run_search(one_directory, *arguments, env=caches.environment())
        two = run_search(os.path.join(root, f"two-{round_}"), *arguments, "--workers", "2",
                         env=caches.environment())
        ratios.append(two / one)
        print(f"{trials}-trial search, {DATASETS[task]}, {search_backend(one_directory)}: one "
              f"process {one:.1f}s, --workers 2 {two:.1f}s, ratio {two / one:.2f}", flush=True)
    print(f"median ratio over {rounds} rounds: {statistics.median(ratios):.2f}", flush=True)


def backend_speed(trials, root, rounds, backends, search_options, caches, task="binary"):
    """The same search on each backend, the order rotating each round."""
    arguments = ["--task", task, "--max-trials", str(trials), *search_options]
    reference = backends[0]
    ratios = {backend: [] for backend in backends[1:]}
    processes = "with workers" if "--workers" in search_options else "one process"
    print(f"{trials}-trial search, {DATASETS[task]}, {processes}, "
          f"options: {' '.join(search_options) or 'the command defaults'}; {caches.describe()}",
          flush=True)
    for round_ in range(rounds):
        shift = round_ % len(backends)
        order = backends[shift:] + backends[:shift]
        seconds, notes = {}, []
        for backend in order:
            directory = os.path.join(root, f"{backend}-{round_}")
            env = caches.environment()
            cached = caches.files()
            seconds[backend] = run_search(directory, *arguments, "--backend", backend, env=env)
            ran_on = search_backend(directory)
            if ran_on != backend:
                raise SystemExit(f"error: the search asked for --backend {backend} ran on {ran_on}")
            if caches.warm and backend == "jax":
                notes.append(f"the shared cache held {cached} files at the start of the jax search")
        for backend in backends[1:]:
            ratios[backend].append(seconds[backend] / seconds[reference])
        print(f"round {round_ + 1} ({', '.join(order)}): " + ", ".join(
            f"{backend} {seconds[backend]:.1f}s" for backend in backends) + "; " + ", ".join(
            f"{backend}/{reference} {ratios[backend][-1]:.3f}" for backend in backends[1:])
            + "".join(f"; {note}" for note in notes) + f"; {load()}", flush=True)
    for backend in backends[1:]:
        median = statistics.median(ratios[backend])
        verdict = ""
        if (reference, backend, task) == ("tensorflow", "jax", "binary"):
            verdict = f" (target <= {BACKEND_TARGET}: {'met' if median <= BACKEND_TARGET else 'not met'})"
        print(f"median {backend}/{reference} over {rounds} rounds: {median:.3f}{verdict}", flush=True)


def load():
    return "load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def memory(trials, root, workers, backend_options, caches):
    for count in workers:
        search_rss, tree_peaks = [], []
        tree = TreeMemory()

        def sample(pid, line, search_rss=search_rss, tree_peaks=tree_peaks, tree=tree):
            if line.startswith("trial "):
                search_rss.append(rss_mb(pid))
                tree_peaks.append(tree.window())

        directory = os.path.join(root, f"memory-{count}")
        run_search(directory, "--task", "multiclass",
                   "--max-trials", str(trials), "--max-epochs", "5", "--workers", str(count),
                   *backend_options, on_start=tree.start, on_line=sample,
                   env=caches.environment())
        tree.stop()
        print(f"RSS over {len(search_rss)} trials, {search_backend(directory)}, "
              f"--workers {count}: search process "
              f"{search_rss[0]:.0f} MB after trial 1, {search_rss[-1]:.0f} MB after trial "
              f"{len(search_rss)} (growth {search_rss[-1] - search_rss[0]:+.0f} MB); all its "
              f"processes together peak at {tree_peaks[0]:.0f} MB until trial 1 ends, "
              f"{max(tree_peaks[-3:]):.0f} MB over the last 3 trials "
              f"(growth {max(tree_peaks[-3:]) - tree_peaks[0]:+.0f} MB)", flush=True)


def quality(trials, root, workers, seeds, search_options, caches):
    for task, metric in QUALITY:
        differences = []
        for seed in seeds:
            directory = os.path.join(root, f"quality-{task}-{seed}")
            seconds = run_search(directory, "--task", task, "--max-trials", str(trials),
                                 "--workers", str(workers), "--seed", str(seed), *search_options,
                                 env=caches.environment())
            with open(os.path.join(directory, "metrics.json")) as file:
                metrics = json.load(file)
            tuned = metrics["test"][metric]
            name, best = max(((n, s[metric]) for n, s in metrics["baselines"].items()),
                             key=lambda item: item[1])
            differences.append(tuned - best)
            print(f"{task:<10} {metrics.get('backend', '?')} seed {seed} {metric}: tuned {tuned:.4f}, best baseline {best:.4f} "
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
    parser.add_argument("--speed-task", choices=sorted(DATASETS), default="binary",
                        help="task of the speed part's searches, on its bundled data set "
                        "(default: binary, on breast_cancer; the JAX target is set on it)")
    backends = parser.add_mutually_exclusive_group()
    backends.add_argument("--backend", choices=BACKENDS,
                          help="--backend of every search (default: the kit's own choice)")
    backends.add_argument("--backends", type=backend_list,
                          help="speed part: the same search on each of these backends, e.g. "
                          "tensorflow,jax, instead of one process against --workers 2")
    parser.add_argument("--workers", type=int, default=None,
                        help="with --backends: --workers of every search (default: one process)")
    parser.add_argument("--warm-cache", action="store_true",
                        help="one JAX compilation cache shared by all searches of the run "
                        "(default: a new, empty one per search)")
    args = parser.parse_args()
    backend_options = optional_arguments(backend=args.backend)
    search_options = optional_arguments(max_epochs=args.max_epochs, folds=args.folds,
                                        ensemble=args.ensemble)
    with tempfile.TemporaryDirectory() as root:
        caches = Caches(root, args.warm_cache)
        parts = args.parts.split(",")
        print(f"{load()} at the start", flush=True)
        if "speed" in parts:
            if args.backends:
                backend_speed(args.trials_speed, root, args.rounds, args.backends,
                              [*search_options, *optional_arguments(workers=args.workers)], caches,
                              task=args.speed_task)
            else:
                speed(args.trials_speed, root, args.rounds, [*search_options, *backend_options],
                      caches, task=args.speed_task)
        if "memory" in parts:
            memory(args.trials_memory, root, args.memory_workers, backend_options, caches)
        if "quality" in parts:
            quality(args.trials_quality, root, args.quality_workers, args.seeds,
                    [*search_options, *backend_options], caches)
        print(f"{load()} at the end", flush=True)


if __name__ == "__main__":
    main()
