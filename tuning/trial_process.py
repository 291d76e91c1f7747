"""Runs each trial in a forked child process, so memory stays flat across trials.

Keras 3 on TensorFlow 2.21 keeps about 5 MB per trained model after the model
is gone, `keras.backend.clear_session()` and `gc.collect()` included: the
traced training functions' graphs stay referenced inside TensorFlow
(tensorflow/tensorflow#61791). A search of 30 five-fold trials trains 150
models and grew by about 950 MB that way. `run_isolated` therefore runs a
trial in a child forked from the search's process, which exits when the
trial ends and takes everything the trial left behind with it. Forking
costs about 70 ms a trial (starting the runtime in the child included);
the child starts with TensorFlow imported.

A fork is only safe before the forking process has started TensorFlow's
runtime or JAX's CPU client (their thread pools would be copied half-way):
a search forks its trials while its own process has run no TensorFlow or
JAX operation, and runs them in its own process otherwise (in a test or a notebook that already trained
a model, and on systems other than Linux).

Example:

>>> run_isolated(sum, [1, 2, 3])
6
"""

import contextlib
import ctypes
import gc
import os
import pickle
import signal
import struct
import sys
import traceback


def can_fork():
    """Whether this process may fork children that go on to run TensorFlow.

    Only on Linux (macOS' system libraries are not safe to use after a
    fork), and only while this process has not started TensorFlow's runtime
    or JAX's CPU client (it may have imported either): they hold thread
    pools that a fork would copy half-way. `run_isolated` forks trials, and
    `tuning.workers.WorkerPool.fork` local workers, only then.
    """
    if not sys.platform.startswith("linux"):
        return False
    return not _tensorflow_started() and not _jax_started()


def _tensorflow_started():
    if "tensorflow" not in sys.modules:
        return False
    from tensorflow.python.eager import context

    return context.context()._initialized  # no public way to ask


def _jax_started():
    # JAX starts its CPU client (and its threads) at the first computation.
    if "jax" not in sys.modules:
        return False
    from jax._src import xla_bridge

    return xla_bridge.backends_are_initialized()


def die_with_parent():
    """Linux: makes the calling process get SIGTERM when its parent dies (even by kill -9)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)


class TrialProcessError(RuntimeError):
    """The child running a trial ended without a result (killed, out of memory)."""


class _ChildTraceback(Exception):
    """The traceback of an error raised in the child, shown as its cause."""


def run_isolated(function, *args, **kwargs):
    """Returns `function(*args, **kwargs)`, computed in a forked child when `can_fork()`.

    The result must be picklable. An exception raised by `function` in the
    child is raised again here, with the child's traceback as its cause; a
    child that dies without answering (a signal, the out-of-memory killer)
    raises `TrialProcessError`. When this process is interrupted (Ctrl-C),
    the child is stopped before the interruption goes on.

    Args:
        function: callable to run.
        *args: its positional arguments.
        **kwargs: its keyword arguments.
    """
    return IsolatedCall(function, *args, **kwargs).result()


class IsolatedCall:
    """`function(*args, **kwargs)` started in a forked child; `result()` waits for it.

    Several calls started one after the other run side by side, e.g. to
    train several models at once on several cores. Where `can_fork()` is
    false, the call runs in this process when it is created. `result()`
    behaves as `run_isolated`.

    A call started with `IsolatedCall.held` keeps its child once it has
    answered: `send` runs another function there, with whatever the first
    left in memory (a search retrains its best trials in their own
    processes, with the programs they compiled), and `release` ends it.

    Example:

    >>> calls = [IsolatedCall(sum, [1, 2]), IsolatedCall(max, [1, 2])]
    >>> [call.result() for call in calls]
    [3, 2]
    >>> call = IsolatedCall.held(sum, [1, 2])
    >>> call.result(), call.send(max, [1, 2]).result()
    (3, 2)
    >>> call.release()
    """

    def __init__(self, function, *args, **kwargs):
        self._start(function, args, kwargs, held=False)

    @classmethod
    def held(cls, function, *args, **kwargs):
        """`IsolatedCall(function, *args, **kwargs)` whose child waits for `send` or `release` once it has answered."""
        call = cls.__new__(cls)
        call._start(function, args, kwargs, held=True)
        return call

    def _start(self, function, args, kwargs, held):
        self._pid, self._commands, self._answer = None, None, None
        self._held, self._inline = held, not can_fork()
        if self._inline:
            self._answer = _inline_answer(function, args, kwargs)
            return
        sys.stdout.flush()
        sys.stderr.flush()
        reader, writer = os.pipe()
        commands_reader, commands_writer = os.pipe() if held else (None, None)
        pid = os.fork()
        if pid == 0:
            os.close(reader)
            # The held children's command pipes (its own included): a copy
            # here would keep them from seeing their end when released.
            for inherited in [*_COMMAND_WRITERS, *([commands_writer] if held else [])]:
                with contextlib.suppress(OSError):
                    os.close(inherited)
            _COMMAND_WRITERS.clear()
            _run_in_child(writer, function, args, kwargs, commands_reader)
        os.close(writer)
        if held:
            os.close(commands_reader)
            _COMMAND_WRITERS.add(commands_writer)
        self._pid, self._answers, self._commands = pid, os.fdopen(reader, "rb"), commands_writer

    def send(self, function, *args, **kwargs):
        """Runs `function(*args, **kwargs)` next in a held call's child; returns this call.

        `result()` then returns its result; the previous result must have
        been read (else `ValueError`). Where `can_fork()` is false, it runs
        here and now.
        """
        if not self._held:
            raise ValueError("Only a call started with IsolatedCall.held runs more functions.")
        if self._inline:
            self._answer = _inline_answer(function, args, kwargs)
            return self
        if self._pid is None:
            raise TrialProcessError("the call's process has ended.")
        if self._answer is None:  # its answer would be taken for the next one's
            raise ValueError("Read the call's result() before sending it another function.")
        try:
            _write_message(self._commands, pickle.dumps((function, args, kwargs)))
        except OSError as error:  # it died
            self._end(stop=True)
            raise TrialProcessError(f"the call's process has ended ({error}).") from None
        self._answer = None
        return self

    def release(self):
        """Ends a held call's child (one still running a function is stopped)."""
        if self._pid is not None:
            self._end(stop=self._answer is None)

    def cancel(self):
        """Stops the child, if it still runs; `result()` then raises `TrialProcessError`."""
        if self._pid is not None:
            self._end(stop=True)
            self._answer = (False, TrialProcessError("the call was cancelled."), None)

    def result(self):
        """Waits for the call's answer and returns its result, or raises its error."""
        if self._answer is None:
            try:
                message = _read_message(self._answers)
            except BaseException:
                self._end(stop=True)
                raise
            if message is None:
                status = self._end(stop=False)
                raise TrialProcessError(
                    f"the trial's process ended without a result ({_describe(status)})."
                )
            self._answer = pickle.loads(message)
            if not self._held:  # the child ends once it has answered
                self._end(stop=False)
        ok, value, child_traceback = self._answer
        if ok:
            return value
        if child_traceback is None:
            raise value
        raise value from _ChildTraceback(child_traceback)

    def _end(self, stop):
        """Waits for the child to end, or stops it; returns its exit status."""
        pid, self._pid = self._pid, None
        if self._commands is not None:
            _COMMAND_WRITERS.discard(self._commands)
            os.close(self._commands)  # a held child then ends
            self._commands = None
        self._answers.close()
        if stop:
            return _stop(pid)
        _, status = os.waitpid(pid, 0)
        return status


# The command pipes of the held calls this process started (`IsolatedCall.held`).
_COMMAND_WRITERS = set()
# The length of a message between a call and its child, in bytes.
_HEADER = struct.Struct("!Q")


def _inline_answer(function, args, kwargs):
    try:
        return (True, function(*args, **kwargs), None)
    except Exception as error:  # noqa: BLE001 - raised again by result()
        return (False, error, None)


def _write_message(fd, payload):
    data = _HEADER.pack(len(payload)) + payload
    while data:
        data = data[os.write(fd, data):]


def _read_message(file):
    """The next message on `file`, or `None` where it ends first (its child died)."""
    header = file.read(_HEADER.size)
    if len(header) < _HEADER.size:
        return None
    size = _HEADER.unpack(header)[0]
    payload = file.read(size)
    return payload if len(payload) == size else None


def _run_in_child(writer, function, args, kwargs, commands=None):
    # Never returns: the child must not run the parent's code after the fork.
    status = 0
    try:
        die_with_parent()
        # The parent's objects live on here: a garbage collection (Keras and
        # KerasTuner run one per trial) then skips them instead of walking
        # them all (0.15 s each, a third of a second a trial).
        gc.freeze()
        _answer(writer, function, args, kwargs)
        if commands is not None:  # held: the parent's next calls, until it releases it
            with os.fdopen(commands, "rb") as incoming:
                while (message := _read_message(incoming)) is not None:
                    _answer(writer, *pickle.loads(message))
    except BaseException:  # noqa: B036, BLE001 - e.g. an unpicklable result
        traceback.print_exc()
        status = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)


def _answer(writer, function, args, kwargs):
    try:
        answer = (True, function(*args, **kwargs), None)
    except BaseException as error:  # noqa: B036, BLE001 - every error goes back to the parent
        answer = (False, _picklable(error), traceback.format_exc())
    _write_message(writer, pickle.dumps(answer))


def _picklable(error):
    try:
        pickle.loads(pickle.dumps(error))
        return error
    except Exception:  # noqa: BLE001 - whatever pickling raises, a plain error goes back
        return RuntimeError(f"{type(error).__name__}: {error}")


def _stop(pid):
    with contextlib.suppress(ProcessLookupError, ChildProcessError):
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


def _describe(status):
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        hint = " (out of memory?)" if number == signal.SIGKILL else ""
        return f"killed by signal {signal.Signals(number).name}{hint}"
    return f"exit status {os.waitstatus_to_exitcode(status)}"
