"""Keeps TensorFlow's C++ start-up lines off the terminal, and nothing else.

TensorFlow 2.21 writes lines such as `oneDNN custom operations are on`,
`cpu_feature_guard ... This TensorFlow binary is optimized` and, on a
machine without a CUDA driver, `E0000 ... failed call to cuInit` straight to
file descriptor 2, from C++, at two moments: when it is imported, and when a
process starts its runtime (the first TensorFlow operation or device query).
`TF_CPP_MIN_LOG_LEVEL` hides only some of them, and real errors with them.
A tuning search starts the runtime in every trial's forked process: without
this module, each trial line follows a `cuInit` line, and the lines bury the
one-line `error: ...` of the command-line tools.

`import_quietly` and `start_runtime_quietly` (both called when `templates`
is imported, so in every process of the kit, forked ones included) hold back
what is written to file descriptor 2 during those two moments and write it
back without the known start-up lines (`is_startup_line`). Anything else
written then, a Python warning or a real TensorFlow error, still reaches
stderr, and output outside those moments is never touched. A failed `cuInit`
is only hidden on a machine that has no CUDA driver, where it says nothing
new; with a driver it is a real error and is shown.

Example:

>>> is_startup_line(b"I0000 00:00:1795678499.617760 19161 port.cc:153] oneDNN custom operations are on.")
True
>>> is_startup_line(b"error: Received --epochs=0; expected an integer >= 1.")
False
"""

import contextlib
import ctypes
import os
import re
import sys
import tempfile

# What follows the severity letter of an absl log line: date, time, thread, file:line].
_ABSL = rb"\d{4} [\d:.]+ +\d+ [\w./-]+:\d+\] "
# Informational lines (severity I) are never errors; the others are the
# warnings TensorFlow prints at every start on a machine without a GPU.
_STARTUP = re.compile(
    rb"^I" + _ABSL
    + rb"|^WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    + rb"|^To enable the following instructions: "  # the second line of cpu_feature_guard's
    + rb"|^[WE]" + _ABSL + rb"(Unable to register cu(DNN|FFT|BLAS) factory|TF-TRT Warning)"
)
_NO_DRIVER_CUINIT = re.compile(rb"^E" + _ABSL + rb"failed call to cuInit")


def _has_cuda_driver():
    if not sys.platform.startswith("linux"):
        return False
    try:
        ctypes.CDLL("libcuda.so.1")
    except OSError:
        return False
    return True


_CUDA_DRIVER = _has_cuda_driver()


def is_startup_line(line):
    """Whether `line` (bytes) is one of TensorFlow's start-up log lines.

    Args:
        line: bytes, one line written to file descriptor 2.

    Returns:
        bool: true for informational absl lines, cpu_feature_guard's
        continuation line, and known start-up warnings; for a failed
        `cuInit` only where there is no CUDA driver.
    """
    if _STARTUP.search(line):
        return True
    return not _CUDA_DRIVER and bool(_NO_DRIVER_CUINIT.search(line))


@contextlib.contextmanager
def startup_lines_filtered():
    """Holds back file descriptor 2 inside the block; writes it back without start-up lines."""
    _flush_stderr()
    try:
        saved = os.dup(2)
    except OSError:  # no file descriptor 2 (closed): nothing to filter
        yield
        return
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            _flush_stderr()
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            kept = b"".join(line for line in held.read().splitlines(keepends=True)
                            if not is_startup_line(line))
            while kept:
                kept = kept[os.write(2, kept):]


def _flush_stderr():
    if sys.stderr is not None:
        sys.stderr.flush()


def import_quietly():
    """Imports TensorFlow without its start-up lines (a no-op once imported)."""
    if "tensorflow" in sys.modules:
        return
    with startup_lines_filtered():
        import tensorflow  # noqa: F401


# What starts TensorFlow's runtime in a process: creating the eager context
# and listing the physical devices (each loads the CUDA platform and calls
# cuInit). Private methods; tests/test_quiet_logs.py names them if they change.
RUNTIME_START_HOOKS = ("ensure_initialized", "_initialize_physical_devices")


def start_runtime_quietly():
    """Makes the first start of TensorFlow's runtime in this process quiet.

    Wraps `RUNTIME_START_HOOKS` of TensorFlow's eager `Context` so that
    their first call runs inside `startup_lines_filtered` and puts the
    original method back; later calls cost nothing extra. The runtime still
    starts when TensorFlow needs it, not now: a process that forks trials
    must not have started it (`tuning.trial_process.can_fork`), and each
    forked child's first call is quiet too.
    """
    from tensorflow.python.eager import context

    for name in RUNTIME_START_HOOKS:
        original = context.Context.__dict__.get(name)
        if original is None or getattr(original, "_quiet_first_call", False):
            continue

        def first_call(self, *args, _name=name, _original=original, **kwargs):
            setattr(context.Context, _name, _original)
            with startup_lines_filtered():
                return _original(self, *args, **kwargs)

        first_call._quiet_first_call = True
        setattr(context.Context, name, first_call)
