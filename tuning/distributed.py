"""KerasTuner's distributed mode on one host: a chief oracle and worker processes.

The chief holds the oracle and serves it over gRPC; each worker runs the same
command with `KERASTUNER_TUNER_ID=tunerK`, asks the chief for trials and
reports results. `serve` replaces KerasTuner's own chief loop, which polls
every 20 seconds once the search is over and waits forever for a worker that
died; here a dead local worker is restarted with its tuner ID (the chief then
hands it back its unfinished trial), a trial that kills its worker twice is
recorded as failed, and a worker that keeps dying is given up.

Example:

>>> with environment(KERASTUNER_TUNER_ID="chief"):
...     os.environ["KERASTUNER_TUNER_ID"]
'chief'
"""

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from concurrent import futures

import grpc
from keras_tuner.engine.trial import TrialStatus
from keras_tuner.src import protos
from keras_tuner.src.distribute import oracle_chief

LOCALHOST = "127.0.0.1"
MAX_RESTARTS = 3
POLL_SECONDS = 0.2


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


def _die_with_parent():
    # Linux: a worker gets SIGTERM when the chief dies (even by kill -9), so
    # no orphan keeps training.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)


class WorkerPool:
    """Local worker processes of one search, restarted when they die.

    Args:
        command: list of str, the command each worker runs (the search's
            own command line).
        count: int, the number of workers.
        port: int, the chief's port on 127.0.0.1.
        log_dir: str, where each worker's output goes (`tuner0.log`, ...).
        threads: int, TensorFlow threads per worker, passed as `--threads`.
    """

    def __init__(self, command, count, port, log_dir, threads):
        self.command = [*command, "--workers", "0", "--threads", str(threads)]
        self.ids = [f"tuner{index}" for index in range(count)]
        self.port = port
        self.log_dir = log_dir
        self.processes = {}
        self.restarts = dict.fromkeys(self.ids, 0)
        self.deaths = {}

    def start(self):
        os.makedirs(self.log_dir, exist_ok=True)
        for tuner_id in self.ids:
            self._spawn(tuner_id)

    def _spawn(self, tuner_id):
        env = {**os.environ, "KERASTUNER_TUNER_ID": tuner_id,
               "KERASTUNER_ORACLE_IP": LOCALHOST, "KERASTUNER_ORACLE_PORT": str(self.port)}
        log = open(os.path.join(self.log_dir, f"{tuner_id}.log"), "ab")
        self.processes[tuner_id] = subprocess.Popen(
            self.command, env=env, stdout=log, stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,
        )
        log.close()

    def alive(self):
        return bool(self.processes)

    def check(self, oracle):
        """Restarts dead workers; fails trials that killed a worker twice."""
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


def serve(oracle, address, workers=None):
    """Serves `oracle` to workers over gRPC until the search is over.

    The search is over when the oracle has told a worker to stop and no
    trial is running, or when every local worker is gone.

    Args:
        oracle: the chief's KerasTuner oracle.
        address: str, `host:port` to listen on.
        workers: optional `WorkerPool` to watch and restart.

    Returns:
        bool, whether the search ended normally (false: all workers gave up).
    """
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    servicer = oracle_chief.OracleServicer(oracle)
    protos.get_service_grpc().add_OracleServicer_to_server(servicer, server)
    server.add_insecure_port(address)
    server.start()
    try:
        while not (servicer.stop_triggered and oracle_chief.exit_chief(oracle)):
            time.sleep(POLL_SECONDS)
            if workers is not None:
                workers.check(oracle)
                if not workers.alive():
                    return servicer.stop_triggered and oracle_chief.exit_chief(oracle)
        return True
    finally:
        server.stop(grace=None)


def worker_command(argv):
    """The command that runs this search's worker: the same arguments."""
    return [sys.executable, "-m", "tuning.search", *argv]
