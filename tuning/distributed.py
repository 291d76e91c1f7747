"""KerasTuner's distributed mode: the chief serves its oracle to the workers.

The chief holds the oracle and serves it over gRPC; each worker runs the same
command with `KERASTUNER_TUNER_ID=tunerK`, asks the chief for trials and
reports results. `serve` replaces KerasTuner's own chief loop, which polls
every 20 seconds once the search is over and waits forever for a worker that
died; here a dead local worker is restarted with its tuner ID (the chief then
hands it back its unfinished trial), a trial that kills its worker twice is
recorded as failed, and a worker that keeps dying is given up
(`tuning.workers.WorkerPool`).

Example:

>>> pool = tuning.workers.plan(["--task", "binary", "--workers", "2"])  # doctest: +SKIP
>>> pool.start()  # doctest: +SKIP
>>> serve(tuner.oracle, f"127.0.0.1:{pool.port}", pool)  # doctest: +SKIP
True
"""

import time
from concurrent import futures

import grpc

from tuning import keras_tuner_internals as internals

POLL_SECONDS = 0.2
# gRPC waits a second before its first reconnection attempt, then longer;
# a local worker that starts before its chief would idle that long.
RECONNECT_OPTIONS = [("grpc.initial_reconnect_backoff_ms", 50),
                     ("grpc.min_reconnect_backoff_ms", 50),
                     ("grpc.max_reconnect_backoff_ms", 1000)]


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
    servicer = internals.oracle_servicer(oracle)
    internals.add_servicer(servicer, server)
    server.add_insecure_port(address)
    server.start()

    def over():
        return internals.stop_requested(servicer) and internals.workers_done(oracle)

    try:
        while not over():
            time.sleep(POLL_SECONDS)
            if workers is not None:
                workers.check(oracle)
                if not workers.alive():
                    return over()
        return True
    finally:
        server.stop(grace=None)


def wait_for_chief(address, timeout=internals.CHIEF_TIMEOUT_SECONDS):
    """Blocks until the chief at `address` (`host:port`) serves its oracle.

    The chief serves only after it has accepted the search's folder, so a
    worker that waits here writes nothing into a folder the chief refuses.

    Args:
        address: str, the chief's `host:port`.
        timeout: float, seconds to wait; KerasTuner's own, an hour, by default.
    """
    with grpc.insecure_channel(address, options=RECONNECT_OPTIONS) as channel:
        grpc.channel_ready_future(channel).result(timeout=timeout)
