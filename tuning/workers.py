"""Local worker processes of a search: forked after TensorFlow is imported, or spawned.

Importing TensorFlow takes several seconds of CPU, and a search with
`--workers N` runs N + 1 processes that need it. On Linux, `tuning.search`
therefore imports it once, in the chief, and forks the N workers from there
(`WorkerPool.fork`) before the chief starts any thread or TensorFlow runtime:
each worker starts with TensorFlow loaded. Elsewhere, or when TensorFlow is
already running in the calling process (a test, a notebook), the workers are
spawned as new interpreters before the chief's own import, so that the
imports overlap (`WorkerPool.start`). A worker that dies is always restarted
by spawning (the chief then runs threads and is no longer safe to fork), with
its tuner ID; a trial that killed its worker twice is failed. Each worker
runs the search's own command line with `KERASTUNER_TUNER_ID=tunerK` and
waits for the chief's oracle (`tuning.distributed.serve`) to answer. This
module imports nothing heavy.

Example:

>>> with environment(KERASTUNER_TUNER_ID="chief"):
...     os.environ["KERASTUNER_TUNER_ID"]
'chief'
>>> plan(["--task", "binary"]) is None  # no --workers: nothing to start
True
"""

import argparse
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import traceback

from tuning.trial_process import die_with_parent

LOCALHOST = "127.0.0.1"
MAX_RESTARTS = 3
DEFAULT_DIRECTORY = "runs/tuning"
LOG_FOLDER = "workers"  # inside the search's directory: tuner0.log, ...
SETTINGS_FILE = "search.json"
# Set for a spawned worker: the process ID of the chief that started it.
CHIEF_PID_VARIABLE = "KERAS_TEMPLATES_CHIEF_PID"


def follow_chief():
    """In a spawned local worker: makes it end when its chief dies.

    A no-op in any other process. Call it first thing in `tuning.search.main`.
    """
    chief = os.environ.pop(CHIEF_PID_VARIABLE, None)
    if chief is None:
        return
    die_with_parent()
    if os.getppid() != int(chief):  # the chief died before the line above
        os._exit(1)


@contextlib.contextmanager
def environment(**variables):
    """Sets environment variables inside the block and restores them after."""
    saved = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def free_port():
    """Returns a TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as probe:
        probe.bind((LOCALHOST, 0))
        return probe.getsockname()[1]


class _ForkedWorker:
    """The `poll`, `terminate` and `wait` of `subprocess.Popen`, for a forked child."""

    def __init__(self, pid):
        self.pid = pid
        self.returncode = None

    def poll(self):
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def terminate(self):
        if self.poll() is None:
            os.kill(self.pid, signal.SIGTERM)

    def wait(self):
        if self.returncode is None:
            _, status = os.waitpid(self.pid, 0)
            self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode


class WorkerPool:
    """Local worker processes of one search, restarted when they die.

    Args:
        argv: list of str, the search's command-line arguments; each worker
            runs the same search.
        count: int, the number of workers.
        port: int, the chief's port on 127.0.0.1.
        log_dir: str, where each worker's output goes (`tuner0.log`, ...).
        threads: int, TensorFlow threads per worker, passed as `--threads`.
    """

    def __init__(self, argv, count, port, log_dir, threads):
        self.argv = [*argv, "--workers", "0", "--threads", str(threads)]
        self.command = [sys.executable, "-m", "tuning.search", *self.argv]
        self.ids = [f"tuner{index}" for index in range(count)]
        self.port = port
        self.log_dir = log_dir
        self.processes = {}
        self.restarts = dict.fromkeys(self.ids, 0)
        self.deaths = {}
        self.created = None

    def _make_log_dir(self):
        # Remembers the outermost folder this makes, for `remove_created`.
        folder = self.log_dir
        while not os.path.exists(folder):
            self.created, folder = folder, os.path.dirname(folder) or "."
        os.makedirs(self.log_dir, exist_ok=True)

    def remove_created(self):
        """Removes the folders the pool made for its logs; call after `stop`.

        For a command refused as bad input, which must leave nothing behind.
        """
        if self.created is not None:
            shutil.rmtree(self.created, ignore_errors=True)

    def start(self):
        """Spawns every worker as a new Python process."""
        self._make_log_dir()
        for tuner_id in self.ids:
            self._spawn(tuner_id)

    def fork(self, run):
        """Forks every worker from this process; each calls `run(argv)` and exits.

        Call it right after importing TensorFlow, before this process starts
        threads or runs TensorFlow (see `tuning.trial_process.can_fork`).

        Args:
            run: callable taking the worker's argument list and returning its
                exit status, e.g. `tuning.cli.main`.
        """
        self._make_log_dir()
        sys.stdout.flush()
        sys.stderr.flush()
        for tuner_id in self.ids:
            log = os.open(self._log_path(tuner_id), os.O_WRONLY | os.O_CREAT | os.O_APPEND)
            pid = os.fork()
            if pid == 0:
                self._run_forked(tuner_id, log, run)
            os.close(log)
            self.processes[tuner_id] = _ForkedWorker(pid)

    def _run_forked(self, tuner_id, log, run):
        # In the child: never returns into the chief's code.
        status = 1
        try:
            os.dup2(log, 1)
            os.dup2(log, 2)
            die_with_parent()
            os.environ.update(self._environment(tuner_id))
            status = run(list(self.argv))
        except BaseException:  # noqa: B036 - whatever happens, the child must exit here
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(status if isinstance(status, int) else 1)

    def _environment(self, tuner_id):
        return {"KERASTUNER_TUNER_ID": tuner_id, "KERASTUNER_ORACLE_IP": LOCALHOST,
                "KERASTUNER_ORACLE_PORT": str(self.port)}

    def _log_path(self, tuner_id):
        return os.path.join(self.log_dir, f"{tuner_id}.log")

    def _spawn(self, tuner_id):
        # With close_fds=False and no preexec_fn, Popen starts the worker with
        # posix_spawn, which runs no code between fork and exec: the chief may
        # be serving the oracle by now, and gRPC's fork handlers could abort
        # a forked child before its exec (grpc/grpc#43055; seen restarting a
        # killed worker). Python's own file descriptors are not inherited
        # anyway (PEP 446). The worker ties itself to the chief instead.
        log = open(self._log_path(tuner_id), "ab")
        self.processes[tuner_id] = subprocess.Popen(
            self.command, stdout=log, stderr=subprocess.STDOUT, close_fds=False,
            env={**os.environ, **self._environment(tuner_id), CHIEF_PID_VARIABLE: str(os.getpid())},
        )
        log.close()

    def alive(self):
        return bool(self.processes)

    def check(self, oracle):
        """Restarts dead workers; fails trials that killed a worker twice."""
        from keras_tuner.engine.trial import TrialStatus

        for tuner_id, process in list(self.processes.items()):
            code = process.poll()
            if code is None:
                continue
            del self.processes[tuner_id]
            if code == 0:
                continue
            trial = oracle.ongoing_trials.get(tuner_id)
            if trial is not None:
                self.deaths[trial.trial_id] = self.deaths.get(trial.trial_id, 0) + 1
                if self.deaths[trial.trial_id] >= 2 or self.restarts[tuner_id] >= MAX_RESTARTS:
                    trial.status = TrialStatus.FAILED
                    trial.message = f"worker {tuner_id} died running it (exit status {code})"
                    oracle.end_trial(trial)
            if self.restarts[tuner_id] < MAX_RESTARTS:
                self.restarts[tuner_id] += 1
                self._spawn(tuner_id)
            else:
                oracle.tuner_ids.discard(tuner_id)

    def stop(self):
        """Terminates the workers still running and waits for them."""
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        for process in self.processes.values():
            process.wait()
        self.processes = {}


class _QuietParser(argparse.ArgumentParser):
    """Raises instead of printing: the full parser reports the error."""

    def error(self, message):
        raise ValueError(message)


def new_pool(argv, count, directory):
    """A `WorkerPool` of `count` workers for the search `argv`, on a free port."""
    threads = max(1, (os.cpu_count() or 1) // count)
    return WorkerPool(argv, count, free_port(), os.path.join(directory, LOG_FOLDER), threads)


def holds_only_worker_logs(directory):
    """Whether `directory` holds nothing but the worker logs a started pool writes."""
    return set(os.listdir(directory)) <= {LOG_FOLDER}


def plan(argv):
    """The pool of local workers that `argv` asks for, if its folder can take them.

    Reads only `--workers` and `--directory`, before TensorFlow is imported;
    anything else, and every error, is left to the full command-line check,
    which stops these workers again when it refuses the command. Plans
    nothing in a worker, in the chief of a multi-machine search
    (`KERASTUNER_ORACLE_IP` set), for `--help`, or when the folder is a file
    or holds something other than a search.

    Args:
        argv: list of str, the search's command-line arguments.

    Returns:
        A `WorkerPool`, not started yet, or `None`.
    """
    if "KERASTUNER_ORACLE_IP" in os.environ or {"-h", "--help"} & set(argv):
        return None
    early = _QuietParser(add_help=False)
    early.add_argument("--workers", default="0")
    early.add_argument("--directory", default=DEFAULT_DIRECTORY)
    try:
        known, _ = early.parse_known_args(argv)
        count = int(known.workers)
    except ValueError:
        return None
    directory = known.directory
    if count < 1 or os.path.isfile(directory):
        return None
    if os.path.isdir(directory) and not (os.path.isfile(os.path.join(directory, SETTINGS_FILE))
                                         or holds_only_worker_logs(directory)):
        return None
    return new_pool(argv, count, directory)
